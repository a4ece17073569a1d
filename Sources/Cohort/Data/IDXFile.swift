/// An IDX file of unsigned bytes (MNIST's format): big-endian magic `0x0000_08_0D` (type 0x08, D
/// dimensions), D 32-bit sizes, then the values row-major. Plain files are memory-mapped, gzip
/// files inflated whole (see `DataBytes`).
public struct IDXFile: Sendable {
    public let array: StoredArray
    public var dimensions: [Int] { array.shape }
    /// A copy of the values.
    public var bytes: [UInt8] {
        Array(UnsafeRawBufferPointer(start: array.bytes.base + array.offset, count: array.bytes.count - array.offset))
    }

    /// Reads and checks `path`; every failure names the file.
    public init(path: String) throws {
        array = try IDXFile.array(DataBytes(path: path, announcedLength: IDXFile.announcedLength))
    }

    /// The length of the file whose first bytes are `prefix`, as its IDX header announces it; nil
    /// if they are not an IDX header of unsigned bytes.
    static func announcedLength(_ prefix: UnsafeRawBufferPointer) -> Int? {
        guard prefix.count >= 4, prefix[0] == 0, prefix[1] == 0, prefix[2] == 0x08, (1...4).contains(Int(prefix[3])) else { return nil }
        let rank = Int(prefix[3])
        guard prefix.count >= 4 + 4 * rank else { return nil }
        let dims = dimensions(prefix.baseAddress!.assumingMemoryBound(to: UInt8.self), rank: rank)
        guard let values = elementCount(dims), values <= Int.max - 20 else { return Int.max }
        return values + 4 + 4 * rank
    }

    /// The `rank` big-endian 32-bit sizes after an IDX file's 4-byte magic at `raw`.
    private static func dimensions(_ raw: UnsafePointer<UInt8>, rank: Int) -> [Int] {
        (0..<rank).map { d in (0..<4).reduce(0) { $0 << 8 | Int(raw[4 + 4 * d + $1]) } }
    }

    /// Checks the IDX header of `bytes` against its size.
    static func array(_ bytes: DataBytes) throws -> StoredArray {
        let path = bytes.path, count = bytes.count
        let raw = bytes.base.assumingMemoryBound(to: UInt8.self)
        guard count > 0 else { throw CohortError("\(path): an empty file, not an IDX or NumPy .npy array") }
        guard count >= 4 else { throw CohortError("\(path): not an IDX file (only \(count) bytes)") }
        guard raw[0] == 0, raw[1] == 0 else {
            // The likeliest other files, by their first bytes: a zip (np.savez's .npz, torch.save's
            // archive), a pickle (pickle.dump, an old torch.save), another compression than gzip,
            // and CIFAR's batches (no magic: records of a label and 3,072 pixels) given where an
            // array is read.
            if raw[0] == 0x50, raw[1] == 0x4B, raw[2] == 3, raw[3] == 4 {
                throw CohortError("\(path): a zip archive (np.savez's .npz or torch.save's), not an array; save each array with np.save(path, a) (a tensor: t.numpy())")
            }
            if raw[0] == 0x80, (2...5).contains(raw[1]) {
                throw CohortError("\(path): a Python pickle (pickle.dump or torch.save), not an array; save the array with np.save(path, a) (a tensor: t.numpy())")
            }
            for (magic, name) in [([0xFD, 0x37, 0x7A, 0x58], "xz"), ([0x42, 0x5A, 0x68], "bzip2"), ([0x28, 0xB5, 0x2F, 0xFD], "zstd")] as [([UInt8], String)]
                where count >= magic.count && magic.indices.allSatisfy({ raw[$0] == magic[$0] }) {
                throw CohortError("\(path): compressed with \(name); Cohort reads gzip or uncompressed files: decompress it")
            }
            let cifar = count % 3073 == 0 ? "CIFAR-10" : count % 3074 == 0 ? "CIFAR-100" : nil
            throw CohortError("\(path): not an IDX file nor NumPy .npy (bad magic number)"
                              + (cifar.map { "; if it is a \($0) batch, give it as data.train/test's \($0.lowercased().replacingOccurrences(of: "-", with: "")) list, or save its images as .npy for predict" } ?? ""))
        }
        guard raw[2] == 0x08 else {
            throw CohortError("\(path): IDX element type 0x\(String(raw[2], radix: 16)) is not supported (expected 0x08, unsigned bytes)")
        }
        let rank = Int(raw[3])
        guard (1...4).contains(rank) else { throw CohortError("\(path): IDX file with \(rank) dimensions is not supported") }
        let headerSize = 4 + 4 * rank
        guard count >= headerSize else { throw CohortError("\(path): truncated IDX header") }
        let dims = dimensions(raw, rank: rank)
        let present = count - headerSize
        guard let expected = elementCount(dims), present >= expected else {
            throw CohortError("\(path): truncated: the header announces \(describe(dims)) values but the file holds \(present)")
        }
        guard present == expected else {
            throw CohortError("\(path): \(present - expected) bytes after the \(expected) values the header announces")
        }
        return StoredArray(bytes: bytes, shape: dims, element: .uint8, offset: headerSize)
    }
}
