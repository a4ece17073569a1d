import CZlib
import Foundation

/// A minimal PNG encoder (W3C PNG, 3rd edition): 8-bit greyscale or RGB, no interlacing, every
/// row with filter type 0 (none), the image data deflated by zlib in one `IDAT` chunk.
///
/// A chunk is a big-endian length, a 4-byte type, the data, and the CRC-32 (zlib's `crc32`, the
/// same polynomial PNG specifies) of type and data. Filtering would compress better; these images
/// are a few kilobytes each, so the simplest encoding wins.
public enum PNGWriter {
    /// PNG's colour types, as stored in `IHDR`.
    public enum ColourType: UInt8, Sendable {
        case greyscale = 0
        case rgb = 2

        public var channels: Int { self == .greyscale ? 1 : 3 }
    }

    /// The PNG file of an image. pixels: `[height, width, channels]` row-major, one byte per sample.
    public static func encode(width: Int, height: Int, colour: ColourType, pixels: [UInt8]) -> Data {
        precondition(width > 0 && height > 0 && pixels.count == width * height * colour.channels,
                     "PNG of \(width)x\(height)x\(colour.channels) given \(pixels.count) bytes")
        var header = Data()
        appendBigEndian(UInt32(width), to: &header)
        appendBigEndian(UInt32(height), to: &header)
        header.append(contentsOf: [8, colour.rawValue, 0, 0, 0])
        let rowBytes = width * colour.channels
        var raw = [UInt8](repeating: 0, count: height * (rowBytes + 1))
        for y in 0..<height {
            for x in 0..<rowBytes { raw[y * (rowBytes + 1) + 1 + x] = pixels[y * rowBytes + x] }
        }
        var file = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        appendChunk("IHDR", header, to: &file)
        appendChunk("IDAT", deflate(raw), to: &file)
        appendChunk("IEND", Data(), to: &file)
        return file
    }

    /// Writes the PNG of an image to `url`.
    public static func write(_ url: URL, width: Int, height: Int, colour: ColourType, pixels: [UInt8]) throws {
        do {
            try encode(width: width, height: height, colour: colour, pixels: pixels).write(to: url, options: .atomic)
        } catch {
            throw CohortError("\(url.path): cannot write the image (\(reason(error)))")
        }
    }

    /// zlib's stream (RFC 1950) of `bytes` at the default level.
    static func deflate(_ bytes: [UInt8]) -> Data {
        var size = compressBound(uLong(bytes.count))
        var output = [UInt8](repeating: 0, count: Int(size))
        let status = compress2(&output, &size, bytes, uLong(bytes.count), Z_DEFAULT_COMPRESSION)
        precondition(status == Z_OK, "zlib compress2 failed with status \(status)")
        return Data(output[0..<Int(size)])
    }

    private static func appendChunk(_ type: String, _ data: Data, to file: inout Data) {
        let body = Data(type.utf8) + data
        appendBigEndian(UInt32(data.count), to: &file)
        file.append(body)
        let crc = body.withUnsafeBytes { raw in
            crc32(0, raw.bindMemory(to: UInt8.self).baseAddress, uInt(raw.count))
        }
        appendBigEndian(UInt32(crc), to: &file)
    }

    private static func appendBigEndian(_ value: UInt32, to data: inout Data) {
        withUnsafeBytes(of: value.bigEndian) { data.append(contentsOf: $0) }
    }
}
