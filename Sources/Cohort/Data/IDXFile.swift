import CZlib
import Foundation

/// An IDX file of unsigned bytes (MNIST's format): big-endian magic `0x0000_08_0D` (type 0x08, D
/// dimensions), D 32-bit sizes, then the values row-major. Gzip-compressed or not: zlib reads both.
public struct IDXFile: Sendable {
    public let dimensions: [Int]
    public let bytes: [UInt8]

    /// Reads and checks `path`; every failure names the file.
    public init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CohortError("\(path): no such file")
        }
        guard !isDirectory.boolValue else { throw CohortError("\(path): is a directory, expected an IDX file") }
        let raw = try IDXFile.readDecompressed(path)
        guard raw.count >= 4 else { throw CohortError("\(path): not an IDX file (only \(raw.count) bytes)") }
        guard raw[0] == 0, raw[1] == 0 else { throw CohortError("\(path): not an IDX file (bad magic number)") }
        guard raw[2] == 0x08 else {
            throw CohortError("\(path): IDX element type 0x\(String(raw[2], radix: 16)) is not supported (expected 0x08, unsigned bytes)")
        }
        let rank = Int(raw[3])
        guard (1...4).contains(rank) else { throw CohortError("\(path): IDX file with \(rank) dimensions is not supported") }
        let headerSize = 4 + 4 * rank
        guard raw.count >= headerSize else { throw CohortError("\(path): truncated IDX header") }
        var dims: [Int] = []
        for d in 0..<rank {
            let o = 4 + 4 * d
            dims.append(Int(raw[o]) << 24 | Int(raw[o + 1]) << 16 | Int(raw[o + 2]) << 8 | Int(raw[o + 3]))
        }
        let present = raw.count - headerSize
        guard let expected = elementCount(dims), present >= expected else {
            throw CohortError("\(path): truncated: the header announces \(describe(dims)) values but the file holds \(present)")
        }
        guard present == expected else {
            throw CohortError("\(path): \(present - expected) bytes after the \(expected) values the header announces")
        }
        dimensions = dims
        bytes = Array(raw[headerSize...])
    }

    /// The file's content, inflated if it is gzip.
    private static func readDecompressed(_ path: String) throws -> [UInt8] {
        guard let file = gzopen(path, "rb") else { throw CohortError("\(path): cannot open (permission denied?)") }
        defer { gzclose(file) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
            if n < 0 {
                var code: Int32 = 0
                let message = gzerror(file, &code).map { String(cString: $0) } ?? "read error"
                throw CohortError("\(path): corrupt or unreadable gzip data (\(message))")
            }
            if n == 0 { break }
            result.append(contentsOf: chunk[0..<Int(n)])
        }
        // zlib reports a gzip stream cut short only as end of file: check the trailer was reached.
        var code: Int32 = 0
        if let message = gzerror(file, &code), code != Z_OK && code != Z_STREAM_END {
            throw CohortError("\(path): corrupt gzip data (\(String(cString: message)))")
        }
        return result
    }
}
