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

    /// Parses a safetensors file's bytes; `name` labels errors.
    public static func decode(_ data: Data, name: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        func bad(_ why: String) -> CohortError { CohortError("\(name): not a valid safetensors file (\(why))") }
        guard data.count >= 8 else { throw bad("shorter than its 8-byte header length") }
        let length = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian }
        guard length > 1, length <= UInt64(data.count - 8), length < 100_000_000 else {
            throw bad("header length \(length) does not fit a file of \(data.count) bytes")
        }
        let headerBytes = data.subdata(in: 8..<(8 + Int(length)))
        guard let header = (try? JSONSerialization.jsonObject(with: headerBytes)) as? [String: Any] else {
            throw bad("the header is not a JSON object")
        }
        let body = data.subdata(in: (8 + Int(length))..<data.count)
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (key, value) in header {
            if key == "__metadata__" {
                metadata = value as? [String: String] ?? [:]
                continue
            }
            guard let entry = value as? [String: Any],
                  let dtypeName = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int],
                  let offsets = entry["data_offsets"] as? [Int], offsets.count == 2 else {
                throw bad("tensor '\(key)' has a malformed entry")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw CohortError("\(name): tensor '\(key)' has dtype \(dtypeName); Cohort reads F16, BF16, F32 and F64 tensors, and I64 (or F32) num_batches_tracked")
            }
            guard let count = elementCount(shape), count <= body.count, offsets[0] >= 0, offsets[0] <= offsets[1],
                  offsets[1] <= body.count, offsets[1] - offsets[0] == count * dtype.size else {
                throw bad("tensor '\(key)' has data offsets that do not match its shape \(describe(shape)) or the file size")
            }
            tensors[key] = Tensor(dtype: dtype, shape: shape, data: Array(body[offsets[0]..<offsets[1]]))
        }
        return (tensors, metadata)
    }

    public static func read(path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CohortError("\(path): no such file or not readable")
        }
        return try decode(data, name: path)
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
