/// The element types of the arrays in data files, as NumPy names them.
public enum ElementType: String, Sendable {
    case uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32, float64

    public var size: Int {
        switch self {
        case .uint8, .int8: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64: 8
        }
    }

    public var isInteger: Bool { self != .float32 && self != .float64 }
}

/// An n-dimensional array in a data file, IDX or NumPy `.npy` (told apart by content): its shape,
/// element type and the offset of its first value, little-endian, C order, aligned to its element.
public struct StoredArray: Sendable {
    public let bytes: DataBytes
    public let shape: [Int]
    public let element: ElementType
    public let offset: Int
    public var path: String { bytes.path }

    init(bytes: DataBytes, shape: [Int], element: ElementType, offset: Int) {
        self.bytes = bytes; self.shape = shape; self.element = element; self.offset = offset
    }

    /// Opens `path` (gzip-compressed or not) as IDX or `.npy`; every failure names the file.
    public static func open(path: String) throws -> StoredArray {
        let bytes = try DataBytes(path: path) { NumPyFile.announcedLength($0) ?? IDXFile.announcedLength($0) }
        if NumPyFile.hasMagic(bytes) { return try NumPyFile.array(bytes) }
        return try IDXFile.array(bytes)
    }

    /// Element `index` of an integer array as stored (`integers` clamps a uint64 past Int.max), for messages.
    func integerText(at index: Int) -> String {
        guard element == .uint64 else { return String(integers()[index]) }
        return String((bytes.base + offset).assumingMemoryBound(to: UInt64.self)[index])
    }

    /// The values as `[Int]`, converted from any integer type.
    func integers() -> [Int] {
        let count = shape.reduce(1, *)
        let start = bytes.base + offset
        func read<T: BinaryInteger>(_: T.Type) -> [Int] {
            let typed = start.assumingMemoryBound(to: T.self)
            return (0..<count).map { Int(typed[$0]) }
        }
        switch element {
        case .uint8: return read(UInt8.self)
        case .int8: return read(Int8.self)
        case .uint16: return read(UInt16.self)
        case .int16: return read(Int16.self)
        case .uint32: return read(UInt32.self)
        case .int32: return read(Int32.self)
        case .uint64: return (0..<count).map { Int(clamping: start.assumingMemoryBound(to: UInt64.self)[$0]) }
        case .int64: return read(Int64.self)
        case .float32, .float64: return []
        }
    }
}
