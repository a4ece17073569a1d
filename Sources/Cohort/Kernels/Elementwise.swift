/// z = x + y over `count` values (z may be x or y).
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func add<T: Scalar>(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ z: UnsafeMutablePointer<T>, count: Int) {
    for i in 0..<count { z[i] = x[i] + y[i] }
}

/// z = max(x + y, 0) over `count` values: a sum and the ReLU after it in one pass (z may be x or y).
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func addReLU<T: Scalar>(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ z: UnsafeMutablePointer<T>, count: Int) {
    for i in 0..<count { z[i] = max(x[i] + y[i], 0) }
}
