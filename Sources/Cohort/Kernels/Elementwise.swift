/// z = x + y over `count` values (z may be x or y).
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func add<T: Scalar>(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ z: UnsafeMutablePointer<T>, count: Int) {
    // In place as a loop of its own: the vectorised loop checks at run time that z does not
    // overlap x or y, and sends z = x to its scalar copy (perf: 97 % of `add`'s samples there).
    if UnsafePointer(z) == x {
        for i in 0..<count { z[i] += y[i] }
    } else if UnsafePointer(z) == y {
        for i in 0..<count { z[i] = x[i] + z[i] }
    } else {
        for i in 0..<count { z[i] = x[i] + y[i] }
    }
}

/// z = max(x + y, 0) over `count` values: a sum and the ReLU after it in one pass (z may be x or y).
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func addReLU<T: Scalar>(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ z: UnsafeMutablePointer<T>, count: Int) {
    for i in 0..<count { z[i] = max(x[i] + y[i], 0) }
}

/// values[i] = 0 for i < count, shared among a `ThreadTeam`'s threads when long. Specialised, so
/// that a generic layer's call is one vectorised loop rather than a value-witness call per element.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func fillZero<T: Scalar>(_ values: UnsafeMutablePointer<T>, count: Int) {
    forEachShare(of: count) { range in
        for i in range { values[i] = 0 }
    }
}

/// target[r, j] = source[r, j] (+ target[r, j] when accumulating) for j < columns, over the rows
/// `rows` of two row-major matrices whose rows lie `sourceStride` and `targetStride` values apart:
/// a block of columns copied or added from one matrix into another.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func copyColumns<T: Scalar>(_ source: UnsafePointer<T>, sourceStride: Int, into target: UnsafeMutablePointer<T>,
                            targetStride: Int, columns: Int, rows: Range<Int>, accumulate: Bool) {
    for r in rows {
        let from = source + r * sourceStride, to = target + r * targetStride
        if accumulate {
            for j in 0..<columns { to[j] += from[j] }
        } else {
            for j in 0..<columns { to[j] = from[j] }
        }
    }
}
