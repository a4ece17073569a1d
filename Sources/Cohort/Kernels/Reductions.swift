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
    var total = horizontalSum((a + b) + (c + d))
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
    var s = horizontalSum(s0 + s1), q = horizontalSum(q0 + q1)
    while i < count { s += x[i]; q += x[i] * x[i]; i += 1 }
    return (s, q)
}

/// The sums of g and of g * (x - mean) * inverseStd over `count` values, in 16 lanes as
/// `sumAndSquares` does it; g = dy, or, with `relu`, dy where x * scale + shift (the input of a
/// ReLU) is positive and 0 elsewhere.
@inline(__always)
func gradientSums<T: Scalar>(_ dy: UnsafePointer<T>, _ x: UnsafePointer<T>, relu: (scale: T, shift: T)?, mean: T, inverseStd: T,
                             count: Int) -> (sumDy: T, sumDyXhat: T) {
    var s0 = SIMD8<T>(), s1 = SIMD8<T>(), q0 = SIMD8<T>(), q1 = SIMD8<T>()
    var i = 0
    let m = SIMD8<T>(repeating: mean), r = SIMD8<T>(repeating: inverseStd)
    @inline(__always) func load(_ p: UnsafePointer<T>, _ i: Int) -> SIMD8<T> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<T>.self)
    }
    // Two loops rather than the optional inside one.
    if let relu {
        let a = SIMD8<T>(repeating: relu.scale), b = SIMD8<T>(repeating: relu.shift)
        while i + 16 <= count {
            let x0 = load(x, i), x1 = load(x, i + 8)
            let u = T.throughReLU(load(dy, i), output: x0 * a + b)
            let v = T.throughReLU(load(dy, i + 8), output: x1 * a + b)
            s0 += u; s1 += v
            q0 += u * ((x0 - m) * r); q1 += v * ((x1 - m) * r)
            i += 16
        }
    } else {
        while i + 16 <= count {
            let u = load(dy, i), v = load(dy, i + 8)
            s0 += u; s1 += v
            q0 += u * ((load(x, i) - m) * r); q1 += v * ((load(x, i + 8) - m) * r)
            i += 16
        }
    }
    var s = horizontalSum(s0 + s1), q = horizontalSum(q0 + q1)
    while i < count {
        var g = dy[i]
        if let relu, !(x[i] * relu.scale + relu.shift > 0) { g = 0 }
        s += g
        q += g * ((x[i] - mean) * inverseStd)
        i += 1
    }
    return (s, q)
}

/// The sum of a vector's lanes, halves added pairwise: `SIMD.sum()` compiles to a loop through the
/// stack, slow in a kernel that reduces many short rows.
@inline(__always)
func horizontalSum<T: Scalar>(_ v: SIMD8<T>) -> T {
    let quarter = v.lowHalf + v.highHalf
    let pair = quarter.lowHalf + quarter.highHalf
    return pair[0] + pair[1]
}
