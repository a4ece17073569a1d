/// NumPy's `.npy` format, versions 1.0 to 3.0 (numpy.lib.format): the magic `\x93NUMPY`, a major
/// and a minor version byte, the header's length (2 bytes little-endian in 1.0, 4 in 2.0 and 3.0),
/// the header dictionary (`NumPyHeader`), then the values.
///
/// Only what Cohort can use without a copy is accepted: little-endian numbers in C order. Every
/// other file is refused with a message naming it and saying how to save it instead.
public enum NumPyFile {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    static func hasMagic(_ bytes: DataBytes) -> Bool {
        bytes.count >= magic.count && UnsafeRawBufferPointer(start: bytes.base, count: magic.count).elementsEqual(magic)
    }

    /// The element type of `descr`, or why it is refused.
    public static func element(_ descr: String) -> Result<ElementType, NumPyHeaderError> {
        // Without a byte-order character ('u1', 'f4': NumPy reads them, some writers write them) the
        // order is the machine's, as '='.
        let ordered = "<>|=".contains(descr.first ?? " ")
        let order = ordered ? descr.first! : "=", type = ordered ? descr.dropFirst() : Substring(descr)
        let known: [Substring: ElementType] = ["u1": .uint8, "i1": .int8, "u2": .uint16, "i2": .int16, "u4": .uint32,
                                               "i4": .int32, "u8": .uint64, "i8": .int64, "f4": .float32, "f8": .float64]
        guard !type.isEmpty else { return .failure(NumPyHeaderError("unknown dtype '\(descr)'")) }
        switch type.first {
        case "O": return .failure(NumPyHeaderError("holds Python objects (dtype '\(descr)'), not numbers; save a numeric array"))
        case "U", "S", "a": return .failure(NumPyHeaderError("holds strings (dtype '\(descr)'), not numbers; save a numeric array"))
        case "b" where type == "b1":
            return .failure(NumPyHeaderError("holds booleans (dtype '\(descr)'); save labels as integers: np.save(path, y.astype(np.int64))"))
        default: break
        }
        guard let element = known[type] else {
            return .failure(NumPyHeaderError("dtype '\(descr)' is not supported (images: uint8, float32 or float64; labels: an integer type)"))
        }
        if order == ">" && element.size > 1 {
            return .failure(NumPyHeaderError("holds big-endian values (dtype '\(descr)'); save them little-endian: a.astype('<\(type)')"))
        }
        return .success(element)
    }

    /// The length of the file whose first bytes are `prefix`, as its `.npy` header announces it;
    /// nil if they do not hold a whole header that `readHeader` accepts.
    static func announcedLength(_ prefix: UnsafeRawBufferPointer) -> Int? {
        guard prefix.count >= magic.count, prefix.prefix(magic.count).elementsEqual(magic),
              let (header, element, offset) = try? readHeader(prefix.baseAddress!.assumingMemoryBound(to: UInt8.self), count: prefix.count, path: "")
        else { return nil }
        guard let values = elementCount(header.shape), case let (size, overflow) = values.multipliedReportingOverflow(by: element.size),
              !overflow, size <= Int.max - offset else { return Int.max }
        return offset + size
    }

    /// The header of the `.npy` file whose first `count` bytes (its magic recognised) are at `raw`,
    /// the element type it names and the offset of the values; errors name `path`.
    private static func readHeader(_ raw: UnsafePointer<UInt8>, count: Int, path: String) throws -> (NumPyHeader, ElementType, offset: Int) {
        guard count >= 10 else { throw CohortError("\(path): truncated .npy file (\(count) bytes)") }
        let (major, minor) = (Int(raw[6]), Int(raw[7]))
        guard (1...3).contains(major) else {
            throw CohortError("\(path): .npy format version \(major).\(minor) is not supported (1.0 to 3.0 are)")
        }
        let lengthBytes = major == 1 ? 2 : 4
        let start = 8 + lengthBytes
        guard count >= start else { throw CohortError("\(path): truncated .npy file (\(count) bytes)") }
        var length = 0
        for i in (0..<lengthBytes).reversed() { length = length << 8 | Int(raw[8 + i]) }
        guard length <= count - start else {
            throw CohortError("\(path): the .npy header claims \(length) bytes but the file has \(count - start) after the length field (truncated, or the header lies about its size)")
        }
        let header: NumPyHeader
        do {
            header = try NumPyHeader(parsing: Array(UnsafeBufferPointer(start: raw + start, count: length)))
        } catch {
            throw CohortError("\(path): \(error.reason)")
        }
        switch NumPyFile.element(header.descr) {
        case .success(let element): return (header, element, start + length)
        case .failure(let error): throw CohortError("\(path): \(error.reason)")
        }
    }

    /// Checks the header of `bytes` against the file's size.
    static func array(_ bytes: DataBytes) throws -> StoredArray {
        let path = bytes.path, count = bytes.count
        let (header, element, offset) = try readHeader(bytes.base.assumingMemoryBound(to: UInt8.self), count: count, path: path)
        let shapeText = "(" + header.shape.map(String.init).joined(separator: ", ") + (header.shape.count == 1 ? ",)" : ")")
        // One dimension longer than 1 at most: Fortran and C order are then the same bytes.
        if header.fortranOrder && header.shape.filter({ $0 > 1 }).count > 1 {
            throw CohortError("\(path): the array \(shapeText) is in Fortran order; save it in C order: np.save(path, np.ascontiguousarray(a))")
        }
        guard let values = elementCount(header.shape), case let (size, overflow) = values.multipliedReportingOverflow(by: element.size), !overflow else {
            throw CohortError("\(path): the shape \(shapeText) in the header is too large")
        }
        let present = count - offset
        guard present >= size else {
            throw CohortError("\(path): truncated: the header announces \(shapeText) \(element.rawValue), \(size) bytes, but the file holds \(present) after its header")
        }
        guard present == size else {
            throw CohortError("\(path): \(present - size) bytes after the \(size) bytes of the \(shapeText) \(element.rawValue) values that the header announces")
        }
        guard offset % element.size == 0 else {
            throw CohortError("\(path): the values start at byte \(offset), not aligned to their \(element.size)-byte \(element.rawValue) (the header's padding is wrong)")
        }
        return StoredArray(bytes: bytes, shape: header.shape, element: element, offset: offset)
    }
}
