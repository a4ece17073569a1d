import Foundation

/// `<checkpoint.dir>/.lock`, held by the coordinator for as long as its run trains: a second run
/// on the same directory (a `cohort train` started twice, a batch job rerun beside its
/// resubmission), on this host or another that shares the directory (Linux's NFS client emulates
/// flock with POSIX locks), is refused instead of writing its checkpoints and curves among this
/// one's. The kernel lets go when the process ends, however it ends: no lock outlives its run.
/// The file says which process holds it, for the message of the one refused.
public final class RunLock {
    private let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    /// Takes the lock of the run directory `directory` (which exists), or throws naming the
    /// process that holds it; `key` names the directory in messages. On a file system without
    /// locks (some parallel file systems mounted without them) the run goes on unlocked: nil.
    public static func acquire(_ directory: URL, key: String) throws -> RunLock? {
        let path = directory.appendingPathComponent(".lock").path
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CohortError("\(key): cannot open \(path) (\(String(cString: strerror(errno))))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let failure = errno
            defer { close(descriptor) }
            if failure == EWOULDBLOCK {
                let holder = holderDescription(descriptor)
                throw CohortError("\(key): another training run\(holder.map { " (\($0))" } ?? "") is writing checkpoints there; wait for it to end, stop it, or give this run another checkpoint.dir")
            }
            if [ENOLCK, ENOTSUP, EOPNOTSUPP, ENOSYS, EINVAL].contains(failure) { return nil }
            throw CohortError("\(key): cannot lock \(path) (\(String(cString: strerror(failure))))")
        }
        let holder = Array("pid \(getpid()) on \(localHostName())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = holder.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        return RunLock(descriptor: descriptor)
    }

    /// What the holder wrote ("pid N on HOST"), if it reads as such.
    private static func holderDescription(_ descriptor: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.hasPrefix("pid ") && !text.contains("\n") ? text : nil
    }
}
