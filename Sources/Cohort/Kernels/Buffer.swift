/// A fixed-size, zero-initialised block of memory that frees itself: workspace allocated once, up front.
public final class Buffer<T> {
    public let pointer: UnsafeMutablePointer<T>
    public let count: Int

    public init(count: Int, zero: T) {
        self.count = count
        pointer = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
        pointer.initialize(repeating: zero, count: max(count, 1))
    }

    deinit { pointer.deallocate() }

    public var buffer: UnsafeMutableBufferPointer<T> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}

extension Buffer where T: Numeric {
    public convenience init(count: Int) { self.init(count: count, zero: 0) }
}
