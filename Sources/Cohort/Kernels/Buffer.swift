/// A fixed-size, zero-initialised block of memory that frees itself: workspace allocated once, up front.
///
/// It starts on a cache line (64 bytes), as the 16-float vectors of the kernels and BLAS's want:
/// `UnsafeMutablePointer.allocate` gives 16 bytes (glibc's malloc), so that every 64-byte load or
/// store of a vector spanned two cache lines.
public final class Buffer<T> {
    public let pointer: UnsafeMutablePointer<T>
    public let count: Int
    /// Whether the buffer allocated its memory (and frees it); false: `init(borrowing:count:)`.
    private let owns: Bool

    /// Bytes the first element is aligned to.
    public static var alignment: Int { 64 }

    public init(count: Int, zero: T) {
        self.count = count
        let capacity = max(count, 1)
        pointer = UnsafeMutableRawPointer.allocate(byteCount: capacity * MemoryLayout<T>.stride,
                                                   alignment: max(Self.alignment, MemoryLayout<T>.alignment))
            .bindMemory(to: T.self, capacity: capacity)
        pointer.initialize(repeating: zero, count: capacity)
        owns = true
    }

    /// `count` elements of memory that someone else allocated and frees, after this buffer's last use.
    public init(borrowing pointer: UnsafeMutablePointer<T>, count: Int) {
        self.pointer = pointer
        self.count = count
        owns = false
    }

    deinit { if owns { UnsafeMutableRawPointer(pointer).deallocate() } }

    public var buffer: UnsafeMutableBufferPointer<T> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}

extension Buffer where T: Numeric {
    public convenience init(count: Int) { self.init(count: count, zero: 0) }
}
