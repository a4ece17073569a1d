/// Element-wise activations over `count` values. Backward passes take the forward output `y`,
/// from which each derivative follows without keeping the input.

@_specialize(where T == Float)
@_specialize(where T == Double)
public func reluForward<T: Scalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, count: Int) {
    for i in 0..<count { y[i] = x[i] > 0 ? x[i] : 0 }
}

/// dx = dy where y > 0, else 0.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func reluBackward<T: Scalar>(
    _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, count: Int
) {
    for i in 0..<count { dx[i] = y[i] > 0 ? dy[i] : 0 }
}

@_specialize(where T == Float)
@_specialize(where T == Double)
public func sigmoidForward<T: Scalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, count: Int) {
    for i in 0..<count { y[i] = sigmoid(x[i]) }
}

/// σ(v) = 1 / (1 + e^-v), written for both signs so that exp never overflows.
@inline(__always)
func sigmoid<T: Scalar>(_ v: T) -> T {
    if v >= 0 { return 1 / (1 + T.exp(-v)) }
    let e = T.exp(v)
    return e / (1 + e)
}

/// dx = dy * y * (1 - y).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func sigmoidBackward<T: Scalar>(
    _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, count: Int
) {
    for i in 0..<count { dx[i] = dy[i] * y[i] * (1 - y[i]) }
}

@_specialize(where T == Float)
@_specialize(where T == Double)
public func tanhForward<T: Scalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, count: Int) {
    for i in 0..<count { y[i] = T.tanh(x[i]) }
}

/// dx = dy * (1 - y^2).
@_specialize(where T == Float)
@_specialize(where T == Double)
public func tanhBackward<T: Scalar>(
    _ y: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, count: Int
) {
    for i in 0..<count { dx[i] = dy[i] * (1 - y[i] * y[i]) }
}
