/// A run of up to 16 consecutive elements, starting at `start`, that the recurrent cell steps
/// compute as one SIMD16 vector: a pass over a row is written once, as vector arithmetic, for the
/// whole vectors and the last partial one alike (its missing lanes read as zero and are not
/// stored), so every element gets the same operations as in a plain loop.
///
/// Written as plain loops over many pointers, the LSTM backward and GRU steps ran the compiler's
/// scalar copy of the loops, not the vectorised one, which runs only when a run-time check finds
/// the pointers' ranges apart (perf annotate: 65-70 % of the GRU steps' samples on scalar
/// instructions). The filter transform of `Winograd.swift` stores through it too.
struct VectorLanes {
    let start: Int
    let width: Int

    /// The runs of `0..<count`, 16 elements each but the last: `for v in VectorLanes.over(count)`.
    /// A loop rather than a closure, whose body the compiler kept out of line (a call per run).
    static func over(_ count: Int) -> Runs { Runs(count: count) }

    struct Runs: Sequence, IteratorProtocol {
        let count: Int
        var start = 0

        @inline(__always)
        mutating func next() -> VectorLanes? {
            guard start < count else { return nil }
            defer { start += 16 }
            return VectorLanes(start: start, width: Swift.min(16, count - start))
        }
    }

    /// p[start ..< start + width], zeros after.
    @inline(__always)
    func load<T: Scalar>(_ p: UnsafePointer<T>) -> SIMD16<T> {
        if width == 16 { return UnsafeRawPointer(p + start).loadUnaligned(as: SIMD16<T>.self) }
        var v = SIMD16<T>()
        for l in 0..<width { v[l] = p[start + l] }
        return v
    }

    @inline(__always)
    func load<T: Scalar>(_ p: UnsafeMutablePointer<T>) -> SIMD16<T> { load(UnsafePointer(p)) }

    /// p[start ..< start + width] = v's first `width` lanes.
    @inline(__always)
    func store<T: Scalar>(_ v: SIMD16<T>, _ p: UnsafeMutablePointer<T>) {
        if width == 16 { return UnsafeMutableRawPointer(p + start).storeBytes(of: v, as: SIMD16<T>.self) }
        for l in 0..<width { p[start + l] = v[l] }
    }
}
