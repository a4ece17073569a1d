import Foundation

/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
/// mapping each name to `{dtype, shape, data_offsets}` (offsets relative to the data that follows),
/// then the raw little-endian data.
public enum SafeTensors {
    /// The dtypes Cohort reads; it writes F32 and I64, as PyTorch's float32 state dicts hold.
    public enum DType: String, Sendable { case f16 = "F16", bf16 = "BF16", f32 = "F32", f64 = "F64", i64 = "I64"
        var size: Int {
            switch self {
            case .f16, .bf16: 2
            case .f32: 4
            case .f64, .i64: 8
            }
        }
        var isFloatingPoint: Bool { self != .i64 }
    }

    public struct Tensor: Sendable {
        public var dtype: DType
        public var shape: [Int]
        public var data: [UInt8]
        public var count: Int { shape.reduce(1, *) }

        public init(dtype: DType, shape: [Int], data: [UInt8]) {
            self.dtype = dtype; self.shape = shape; self.data = data
        }

        public init(floats: UnsafePointer<Float>, shape: [Int]) {
            let count = shape.reduce(1, *)
            self.init(dtype: .f32, shape: shape, data: Array(UnsafeRawBufferPointer(start: floats, count: count * 4)))
        }

        public init(floats: [Float], shape: [Int]) {
            self.init(dtype: .f32, shape: shape, data: floats.withUnsafeBytes { Array($0) })
        }

        public init(int64: [Int64], shape: [Int]) {
            self.init(dtype: .i64, shape: shape, data: int64.withUnsafeBytes { Array($0) })
        }

        /// The values as Float (F16, BF16 and F32 exactly, F64 rounded to nearest).
        public func floats() -> [Float] {
            data.withUnsafeBytes { raw in
                switch dtype {
                case .f32: return Array(raw.bindMemory(to: Float.self))
                default: return doubles().map(Float.init)
                }
            }
        }

        public func doubles() -> [Double] {
            data.withUnsafeBytes { raw in
                switch dtype {
                case .f16: return raw.bindMemory(to: UInt16.self).map { Double(halfToFloat(UInt16(littleEndian: $0))) }
                case .bf16: return raw.bindMemory(to: UInt16.self).map { Double(Float(bitPattern: UInt32(UInt16(littleEndian: $0)) << 16)) }
                case .f32: return raw.bindMemory(to: Float.self).map(Double.init)
                case .f64: return Array(raw.bindMemory(to: Double.self))
                case .i64: return raw.bindMemory(to: Int64.self).map(Double.init)
                }
            }
        }

        /// The values as Int64; floating-point values truncate towards zero, as PyTorch's copy does.
        public func int64s() -> [Int64] {
            data.withUnsafeBytes { raw in
                switch dtype {
                case .i64: return Array(raw.bindMemory(to: Int64.self))
                default: return doubles().map { $0.isFinite && abs($0) < 9.2e18 ? Int64($0) : 0 }
                }
            }
        }
    }

    /// Serialises named tensors (in the given order) with optional string metadata.
    public static func encode(_ tensors: [(String, Tensor)], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for (name, tensor) in tensors {
            header[name] = ["dtype": tensor.dtype.rawValue, "shape": tensor.shape, "data_offsets": [offset, offset + tensor.data.count]]
            offset += tensor.data.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // The data starts 8-byte aligned, padded with spaces, as the reference writer does.
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(json)
        for (_, tensor) in tensors { out.append(contentsOf: tensor.data) }
        return out
    }

    /// The largest header Cohort reads, as the reference library's limit.
    static let largestHeader = 100_000_000

    /// Parses a safetensors file's bytes; `name` labels errors. As strict as the reference library:
    /// the tensors' data must tile the data area in order of offset, with no overlap, gap or
    /// trailing byte (a tensor whose offsets overlap another's would silently take its values).
    public static func decode(_ data: Data, name: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let length = try headerLength(data.prefix(8), fileSize: data.count, name: name)
        let (entries, metadata) = try parseHeader(data.subdata(in: 8..<(8 + length)), dataSize: data.count - 8 - length, name: name)
        return (tensors(entries, body: data.subdata(in: (8 + length)..<data.count)), metadata)
    }

    /// The tensors `entries` describe, their bytes taken from `body` (the data after the header).
    private static func tensors(_ entries: [Entry], body: Data) -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        for entry in entries {
            tensors[entry.name] = Tensor(dtype: entry.dtype, shape: entry.shape, data: Array(body[body.startIndex + entry.offsets.lowerBound ..< body.startIndex + entry.offsets.upperBound]))
        }
        return tensors
    }

    /// The header's length from the file's first 8 bytes, checked against the file's size.
    private static func headerLength(_ prefix: Data, fileSize: Int, name: String) throws -> Int {
        guard prefix.count == 8 else { throw invalid(name, "shorter than its 8-byte header length") }
        let length = prefix.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian }
        guard length <= UInt64(largestHeader) else {
            throw invalid(name, "its header would be \(length) bytes, more than the \(largestHeader) Cohort reads")
        }
        guard length > 1, Int(length) <= fileSize - 8 else {
            throw invalid(name, "header length \(length) does not fit a file of \(fileSize) bytes")
        }
        return Int(length)
    }

    private struct Entry {
        var name: String
        var dtype: DType
        var shape: [Int]
        var offsets: Range<Int>
    }

    /// The header's tensors in order of offset, each checked against its shape, and the data they
    /// tile: `dataSize` bytes.
    private static func parseHeader(_ bytes: Data, dataSize: Int, name: String) throws -> (entries: [Entry], metadata: [String: String]) {
        guard let header = (try? JSONSerialization.jsonObject(with: bytes)) as? [String: Any] else {
            throw invalid(name, "the header is not a JSON object")
        }
        // Foundation's parser keeps one entry of a name given twice, silently.
        var seen = Set<String>()
        if let twice = topLevelKeys(bytes).first(where: { !seen.insert($0).inserted }) {
            throw invalid(name, "'\(twice)' is listed twice in the header")
        }
        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        for (key, value) in header.sorted(by: { $0.key < $1.key }) {
            if key == "__metadata__" {
                guard let strings = value as? [String: Any], strings.values.allSatisfy({ $0 is String }) else {
                    throw invalid(name, "__metadata__ is not a map of strings")
                }
                metadata = strings.mapValues { $0 as! String }
                continue
            }
            guard let entry = value as? [String: Any],
                  let dtypeName = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int],
                  let offsets = entry["data_offsets"] as? [Int], offsets.count == 2 else {
                throw invalid(name, "tensor '\(key)' has a malformed entry")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw CohortError("\(name): tensor '\(key)' has dtype \(dtypeName); Cohort reads F16, BF16, F32 and F64 tensors, and I64 (or F32) num_batches_tracked")
            }
            guard let count = elementCount(shape), count <= dataSize, offsets[0] >= 0, offsets[0] <= offsets[1],
                  offsets[1] - offsets[0] == count * dtype.size else {
                throw invalid(name, "tensor '\(key)' has data offsets \(offsets) that do not match its shape \(describe(shape)) and dtype \(dtypeName)")
            }
            entries.append(Entry(name: key, dtype: dtype, shape: shape, offsets: offsets[0]..<offsets[1]))
        }
        entries.sort { ($0.offsets.lowerBound, $0.offsets.upperBound, $0.name) < ($1.offsets.lowerBound, $1.offsets.upperBound, $1.name) }
        let described = entries.map(\.offsets.upperBound).max() ?? 0
        if described > dataSize {
            throw invalid(name, "truncated: its header describes \(described) bytes of tensor data, the file holds \(dataSize)")
        }
        var end = 0
        for entry in entries {
            guard entry.offsets.lowerBound == end else {
                throw invalid(name, entry.offsets.lowerBound < end
                    ? "tensor '\(entry.name)' overlaps the data of the tensor before it (offsets \(entry.offsets.lowerBound) < \(end))"
                    : "bytes \(end)..<\(entry.offsets.lowerBound) of the data belong to no tensor")
            }
            end = entry.offsets.upperBound
        }
        guard end == dataSize else { throw invalid(name, "\(dataSize - end) bytes after the last tensor's data belong to no tensor") }
        return (entries, metadata)
    }

    /// The keys of a JSON object's top level in order, as written (escapes left as they are), every
    /// one of a key given twice. `bytes` is a valid JSON object (`JSONSerialization` read it).
    static func topLevelKeys(_ bytes: Data) -> [String] {
        var keys: [String] = [], depth = 0, expectingKey = false, index = bytes.startIndex
        /// The end of the string whose opening quote is at `start`.
        func stringEnd(_ start: Data.Index) -> Data.Index {
            var i = start + 1
            while i < bytes.endIndex && bytes[i] != UInt8(ascii: "\"") { i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1 }
            return min(i, bytes.endIndex - 1)
        }
        while index < bytes.endIndex {
            switch bytes[index] {
            case UInt8(ascii: "\""):
                let end = stringEnd(index)
                if depth == 1 && expectingKey {
                    keys.append(String(decoding: bytes[(index + 1)..<end], as: UTF8.self))
                    expectingKey = false
                }
                index = end
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                expectingKey = depth == 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            case UInt8(ascii: ","): expectingKey = depth == 1
            default: break
            }
            index += 1
        }
        return keys
    }

    private static func invalid(_ name: String, _ why: String) -> CohortError {
        CohortError("\(name): not a valid safetensors file (\(why))")
    }

    /// Reads and parses the file at `path`, its header checked before its data is read (a large
    /// file that is not one is refused on its first bytes, not read into memory).
    public static func read(path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            let weights = URL(fileURLWithPath: path).appendingPathComponent("model.safetensors").path
            throw CohortError("\(path): is a directory (expected a .safetensors file"
                              + (FileManager.default.fileExists(atPath: weights) ? ": a checkpoint's weights are \(weights))" : ")"))
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CohortError("\(path): no such file or not readable") }
        defer { try? handle.close() }
        do {
            let size = Int(try handle.seekToEnd())
            try handle.seek(toOffset: 0)
            let length = try headerLength(try handle.read(upToCount: 8) ?? Data(), fileSize: size, name: path)
            let header = try handle.read(upToCount: length) ?? Data()
            let (entries, metadata) = try parseHeader(header, dataSize: size - 8 - length, name: path)
            let body = try handle.readToEnd() ?? Data()
            guard body.count == size - 8 - length else { throw CohortError("\(path): the file changed while it was read") }
            return (tensors(entries, body: body), metadata)
        } catch let error as CohortError {
            throw error
        } catch {
            throw CohortError("\(path): cannot read (\(reason(error)))")
        }
    }
}

/// IEEE 754 half precision (binary16) to Float, subnormals, infinities and NaN included.
func halfToFloat(_ bits: UInt16) -> Float {
    let sign: UInt32 = UInt32(bits & 0x8000) << 16
    let exponent = Int(bits >> 10) & 0x1F
    let fraction = UInt32(bits & 0x3FF)
    switch exponent {
    case 0:
        let magnitude = Float(fraction) * 0x1p-24
        return sign == 0 ? magnitude : -magnitude
    case 0x1F:
        return Float(bitPattern: sign | 0x7F80_0000 | (fraction << 13))
    default:
        return Float(bitPattern: sign | UInt32(exponent + 112) << 23 | (fraction << 13))
    }
}
