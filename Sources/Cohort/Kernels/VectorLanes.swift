/// A run of up to 16 consecutive elements, starting at `start`, that the recurrent cell steps
/// compute as one SIMD16 vector: a pass over a row is written once, as vector arithmetic, for the
/// whole vectors and the last partial one alike (its missing lanes read as zero and are not
/// stored), so every element gets the same operations as in a plain loop.
///
/// Plain loops over many pointers vectorise behind a run-time check that no pointer's range
/// overlaps another's; where two of them derive from one buffer (the gates of a row), the check
/// fails and the scalar copy runs (perf annotate: 65-70 % of the GRU steps' samples on scalar
/// instructions).
struct VectorLanes {
    let start: Int
    let width: Int

    /// Runs `body` over `0..<count` in runs of 16 (the last one shorter).
    @inline(__always)
    static func forEach(_ count: Int, _ body: (VectorLanes) -> Void) {
        var start = 0
        while start < count {
            body(VectorLanes(start: start, width: min(16, count - start)))
            start += 16
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
