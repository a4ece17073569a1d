/// The sum of `count` values, in 32 independent lanes (four SIMD8 accumulators) so that the adds
/// pipeline and vectorise: Swift keeps floating-point addition in order, so a plain loop cannot.
@inline(__always)
func sum<T: Scalar>(_ x: UnsafePointer<T>, count: Int) -> T {
    var a = SIMD8<T>(), b = SIMD8<T>(), c = SIMD8<T>(), d = SIMD8<T>()
    var i = 0
    let raw = UnsafeRawPointer(x)
    let stride = MemoryLayout<T>.stride
    while i + 32 <= count {
        a += raw.loadUnaligned(fromByteOffset: i * stride, as: SIMD8<T>.self)
        b += raw.loadUnaligned(fromByteOffset: (i + 8) * stride, as: SIMD8<T>.self)
        c += raw.loadUnaligned(fromByteOffset: (i + 16) * stride, as: SIMD8<T>.self)
        d += raw.loadUnaligned(fromByteOffset: (i + 24) * stride, as: SIMD8<T>.self)
        i += 32
    }
    var total = ((a + b) + (c + d)).sum()
    while i < count { total += x[i]; i += 1 }
    return total
}

/// The sums of `count` values and of their squares, as `sum(_:count:)` does it.
@inline(__always)
func sumAndSquares<T: Scalar>(_ x: UnsafePointer<T>, count: Int) -> (sum: T, squares: T) {
    var s0 = SIMD8<T>(), s1 = SIMD8<T>(), q0 = SIMD8<T>(), q1 = SIMD8<T>()
    var i = 0
    let raw = UnsafeRawPointer(x)
    let stride = MemoryLayout<T>.stride
    while i + 16 <= count {
        let u = raw.loadUnaligned(fromByteOffset: i * stride, as: SIMD8<T>.self)
        let v = raw.loadUnaligned(fromByteOffset: (i + 8) * stride, as: SIMD8<T>.self)
        s0 += u; s1 += v
        q0 += u * u; q1 += v * v
        i += 16
    }
    var s = (s0 + s1).sum(), q = (q0 + q1).sum()
    while i < count { s += x[i]; q += x[i] * x[i]; i += 1 }
    return (s, q)
}
