import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Turns the SIGBUS of reading a memory-mapped data file that shrank under the run (rewritten in
/// place by `np.save`, truncated) into the one-line error of any other bad input, naming the file,
/// and exit status 1: the default would end the worker with a signal and a backtrace.
///
/// The handler may only call async-signal-safe functions, so each file's message is written when
/// it is mapped, into a fixed table the handler searches by the faulting address.
enum MappedFileFaults {
    private struct Entry {
        var start: UInt = 0
        var end: UInt = 0
        var message: UnsafeMutablePointer<CChar>?
        var length = 0
    }

    private static let capacity = 256
    nonisolated(unsafe) private static let table: UnsafeMutablePointer<Entry> = {
        let table = UnsafeMutablePointer<Entry>.allocate(capacity: capacity)
        table.initialize(repeating: Entry(), count: capacity)
        return table
    }()
    nonisolated(unsafe) private static var installed = false
    nonisolated(unsafe) private static let otherMessage = strdup("error: bus error: memory the process had mapped is gone (a memory-mapped file shrank, or /dev/shm is full)\n")!

    /// Names `path` in the error of a fault in `[base, base + count)` (and installs the handler once).
    static func register(base: UnsafeRawPointer, count: Int, path: String) {
        installIfNeeded()
        guard let slot = (0..<capacity).first(where: { table[$0].message == nil }) else { return }
        let text = "error: \(path): the file changed under the run (it shrank while memory-mapped: rewritten or truncated); let a run finish before replacing its data, or write the new data under another name\n"
        let start = UInt(bitPattern: base)
        // The length is stored before the message, which the handler takes as the entry's mark.
        table[slot].start = start
        table[slot].end = start + UInt(count)
        table[slot].length = strlen(text)
        table[slot].message = strdup(text)
    }

    static func unregister(base: UnsafeRawPointer) {
        let start = UInt(bitPattern: base)
        guard let index = (0..<capacity).first(where: { table[$0].message != nil && table[$0].start == start }) else { return }
        let message = table[index].message
        table[index].message = nil
        free(message)
    }

    private static func installIfNeeded() {
        guard !installed else { return }
        installed = true
        _ = table
        _ = otherMessage
        var action = sigaction()
        action.sa_flags = SA_SIGINFO
        sigemptyset(&action.sa_mask)
        action.__sigaction_handler.sa_sigaction = { _, info, _ in
            let address = UInt(bitPattern: info?.pointee._sifields._sigfault.si_addr)
            var message: UnsafeMutablePointer<CChar> = MappedFileFaults.otherMessage
            var length = strlen(message)
            for index in 0..<MappedFileFaults.capacity {
                let entry = MappedFileFaults.table[index]
                if let text = entry.message, address >= entry.start, address < entry.end {
                    message = text
                    length = entry.length
                    break
                }
            }
            _ = write(STDERR_FILENO, message, length)
            _exit(1)
        }
        sigaction(SIGBUS, &action, nil)
    }
}
