/// Element-wise activations over `count` values. Backward passes take the forward output `y`,
/// from which each derivative follows without keeping the input.

@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func reluForward<T: Scalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, count: Int) {
    for i in 0..<count { y[i] = max(x[i], 0) }
}

/// dx = dy where y > 0, else 0.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func reluBackward<T: Scalar>(
    _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, count: Int
) {
    // A multiply by a 0/1 mask rather than a branch: the signs are random, so a branch mispredicts half the time.
    for i in 0..<count {
        let open: T = y[i] > 0 ? 1 : 0
        dx[i] = dy[i] * open
    }
}

@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func sigmoidForward<T: Scalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, count: Int) {
    for i in 0..<count { y[i] = sigmoid(x[i]) }
}

/// σ(v) = 1 / (1 + e^-v) for v >= 0 and e^v / (1 + e^v) below, so that exp never overflows;
/// written as a select rather than a branch, which the sign of a gate would mispredict.
@inline(__always)
func sigmoid<T: Scalar>(_ v: T) -> T {
    let e = T.vectorizableExp(-abs(v))
    return (v >= 0 ? 1 : e) / (1 + e)
}

/// tanh(v) through one exp: sign(v) (1 - 2 / (e^{2|v|} + 1)), and below |v| < 0.1, where that
/// subtraction would cancel, its Taylor series to v^9. Within 1.5e-7 of tanh (and 1.3e-6 of it,
/// relative) in Float, 1e-12 relative in Double; several times faster than the C library's tanh,
/// which goes through expm1. Both forms are computed and one selected: a branch on |v| < 0.1
/// would be mispredicted for a good share of a layer's pre-activations.
@inline(__always)
func fastTanh<T: Scalar>(_ v: T) -> T {
    let s = v * v
    let c3: T = -1 / 3, c5: T = 2 / 15, c7: T = -17 / 315, c9: T = 62 / 2835
    let series = v * (1 + s * (c3 + s * (c5 + s * (c7 + s * c9))))
    let a = abs(v)
    let t = T(signOf: v, magnitudeOf: 1 - 2 / (T.vectorizableExp(2 * a) + 1))
    return a < 0.1 ? series : t
}

/// dx = dy * y * (1 - y).
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func sigmoidBackward<T: Scalar>(
    _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, count: Int
) {
    for i in 0..<count { dx[i] = dy[i] * y[i] * (1 - y[i]) }
}

@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func tanhForward<T: Scalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, count: Int) {
    for i in 0..<count { y[i] = T.tanh(x[i]) }
}

/// dx = dy * (1 - y^2).
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func tanhBackward<T: Scalar>(
    _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, count: Int
) {
    for i in 0..<count { dx[i] = dy[i] * (1 - y[i] * y[i]) }
}
