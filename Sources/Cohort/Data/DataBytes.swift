import CZlib
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Bytes of data, read-only: a file memory-mapped when it is stored plainly, or memory of our own
/// (a gzip file inflated whole, since its stream cannot be read at an offset; CIFAR's pixels).
///
/// A mapped file costs no memory until its pages are read, and `didRead` hands read pages back, so
/// a worker that reads only its own samples never holds a whole large file. Read by one thread at a
/// time (the worker's training loop), like the rest of a worker's state.
public final class DataBytes: @unchecked Sendable {
    public let path: String
    public let base: UnsafeRawPointer
    public let count: Int
    /// Whether the bytes are the file's pages (mmap) rather than a copy in memory.
    public let isMapped: Bool

    /// Bytes this process holds whatever it reads: the whole content unless it is mapped.
    public var residentBytes: Int { isMapped ? 0 : count }

    /// Opens `path`; every failure names it. `announcedLength` reads the size the content's own
    /// header announces from its first bytes (nil: none known), so that a gzip file too large to
    /// inflate in memory is refused on them rather than after inflating as much as memory allows.
    public init(path: String, announcedLength: (UnsafeRawBufferPointer) -> Int? = { _ in nil }) throws {
        try DataBytes.checkIsAFile(path)
        self.path = path
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw CohortError("\(path): cannot open (\(String(cString: strerror(errno))))") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw CohortError("\(path): cannot read its size") }
        let size = Int(status.st_size)
        var magic = [UInt8](repeating: 0, count: 2)
        let isGzip = size >= 2 && pread(descriptor, &magic, 2, 0) == 2 && magic == [0x1F, 0x8B]
        if isGzip {
            let (bytes, length) = try DataBytes.inflate(path, announcedLength: announcedLength)
            (base, count, isMapped) = (UnsafeRawPointer(bytes), length, false)
        } else if size == 0 {
            (base, count, isMapped) = (UnsafeRawPointer(malloc(1)!), 0, false)
        } else {
            guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), mapped != MAP_FAILED else {
                throw CohortError("\(path): cannot memory-map (\(String(cString: strerror(errno))))")
            }
            // Samples are read in shuffled order: read-ahead would only bring in other workers' pages.
            madvise(mapped, size, MADV_RANDOM)
            (base, count, isMapped) = (UnsafeRawPointer(mapped), size, true)
            MappedFileFaults.register(base: base, count: count, path: path)
        }
    }

    /// Throws unless `path` is a regular file (or a link to one), naming what it is instead: a FIFO
    /// would block the open until something wrote to it (a hang), and a pipe or a device has no
    /// size to map.
    static func checkIsAFile(_ path: String) throws {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw CohortError(errno == ENOENT ? "\(path): no such file" : "\(path): cannot open (\(String(cString: strerror(errno))))")
        }
        switch status.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: throw CohortError("\(path): is a directory, expected a data file")
        case S_IFIFO: throw CohortError("\(path): is a pipe (FIFO), not a file; Cohort reads data from files it can map (IDX, .npy, CIFAR, or gzip)")
        default: throw CohortError("\(path): is a device or a socket, not a data file")
        }
    }

    /// Takes ownership of `count` bytes at `bytes`, from `malloc`.
    public init(owning bytes: UnsafeMutableRawPointer, count: Int, path: String) {
        (self.path, base, self.count, isMapped) = (path, UnsafeRawPointer(bytes), count, false)
    }

    deinit {
        if isMapped {
            MappedFileFaults.unregister(base: base)
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else { free(UnsafeMutableRawPointer(mutating: base)) }
    }

    /// How many bytes of a mapped file's pages a process may hold before `didRead` hands them back:
    /// what a worker holds of it at most, besides what the kernel keeps in its page cache.
    public static let mappedBudget = 64 << 20
    /// What one read of a few bytes may map: Linux maps the pages around a faulting page that are
    /// in the page cache too (fault-around, 64 KiB by default), and `MADV_RANDOM` does not stop it.
    static let faultAroundBytes = 64 << 10
    private var heldSinceRelease = 0

    /// Counts `samples` reads of `size` bytes each; once the pages they may have mapped pass
    /// `mappedBudget`, drops this process's hold on all the pages of a mapped file. They stay in
    /// the page cache, and reading them maps them again.
    public func didRead(samples: Int, of size: Int) {
        guard isMapped else { return }
        heldSinceRelease += samples * max(size + 4096, DataBytes.faultAroundBytes)
        if heldSinceRelease > DataBytes.mappedBudget { releaseAll() }
    }

    /// Drops this process's hold on the pages of a mapped file.
    public func releaseAll() {
        guard isMapped else { return }
        madvise(UnsafeMutableRawPointer(mutating: base), count, MADV_DONTNEED)
        heldSinceRelease = 0
    }

    /// The file's content inflated, in memory from `malloc` that the caller frees, and its length.
    private static func inflate(_ path: String, announcedLength: (UnsafeRawBufferPointer) -> Int?) throws -> (UnsafeMutableRawPointer, Int) {
        guard let file = gzopen(path, "rb") else { throw CohortError("\(path): cannot open (permission denied?)") }
        defer { gzclose(file) }
        var capacity = 1 << 20, length = 0
        var buffer = malloc(capacity)!
        var done = false
        defer { if !done { free(buffer) } }
        // Checked as it grows: past a cgroup's limit the kernel would kill the worker, not fail malloc.
        let budget = MemoryBudget.current()
        var announced: Int?
        while true {
            if capacity - length < 1 << 16 {
                capacity *= 2
                guard budget.holds(Double(capacity)) else {
                    throw CohortError(String(format: "%@: inflated whole it needs more than %.1f GiB, more than %@; decompress it (gunzip -k) so that it is memory-mapped",
                                             path, Double(capacity) / 1_073_741_824, budget.allowance))
                }
                guard let grown = realloc(buffer, capacity) else { throw CohortError("\(path): out of memory inflating the gzip file") }
                buffer = grown
            }
            let n = gzread(file, buffer + length, UInt32(min(capacity - length, 1 << 30)))
            if n < 0 {
                var code: Int32 = 0
                let message = gzerror(file, &code).map { String(cString: $0) } ?? "read error"
                throw CohortError("\(path): corrupt or unreadable gzip data (\(message))")
            }
            if n == 0 { break }
            if length == 0 {
                announced = announcedLength(UnsafeRawBufferPointer(start: buffer, count: Int(n)))
                if let announced, !budget.holds(Double(announced)) {
                    throw CohortError(String(format: "%@: its header announces %.1f GiB of data, more than %@ to inflate in memory; decompress it (gunzip -k) so that it is memory-mapped",
                                             path, Double(announced) / 1_073_741_824, budget.allowance))
                }
            }
            length += Int(n)
            // Data past what the header announces is an error whatever its length: not inflated on
            // (3 GB of zeros after a 144-byte array had taken 8 s and 3.1 GB before the error).
            if let announced, length > announced {
                throw CohortError("\(path): inflates to more than the \(announced) bytes its header announces (data after the values, or another file's header)")
            }
        }
        // zlib reports a gzip stream cut short only as end of file: check the trailer was reached.
        var code: Int32 = 0
        if let message = gzerror(file, &code), code != Z_OK && code != Z_STREAM_END {
            throw CohortError("\(path): corrupt gzip data (\(String(cString: message)))")
        }
        done = true
        return (buffer, length)
    }
}
