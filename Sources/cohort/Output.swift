import Foundation
import Cohort

/// A line of progress on standard output, at once. Best effort: a run goes on when nobody reads
/// its progress any more (a closed pipe, a full disk).
func printLine(_ line: String) {
    print(line)
    fflush(stdout)
}

/// A line on standard error (unbuffered), its control characters escaped (`oneLine`). Best effort:
/// standard error that cannot be written (a full disk, a reader gone, a descriptor open only for
/// reading) loses the line, where `FileHandle.write` had ended the process on SIGILL (status 132
/// instead of the command's own: 75 after a clean stop, which a launcher resubmits on).
func printError(_ line: String) {
    try? writeAll(Data((oneLine(line) + "\n").utf8), to: 2, path: "standard error", what: "an error line")
}

/// `text` with its control characters written as escapes (`\n`, `\u{1B}`): a message that quotes
/// a file's bytes (a .npy header's key, say) stays one line and cannot drive the terminal.
func oneLine(_ text: String) -> String {
    var line = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\n": line.append(contentsOf: "\\n".unicodeScalars)
        case "\r": line.append(contentsOf: "\\r".unicodeScalars)
        case "\t": line.append(scalar)
        case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value):
            line.append(contentsOf: "\\u{\(String(scalar.value, radix: 16, uppercase: true))}".unicodeScalars)
        default: line.append(scalar)
        }
    }
    return String(line)
}

/// Which of standard input, output and error the process started without (`>&-`):
/// `holdStandardDescriptors` then put /dev/null there, and what the command was run for has
/// nowhere to go through them.
nonisolated(unsafe) var standardDescriptorWasClosed = [false, false, false]

var standardOutputWasClosed: Bool { standardDescriptorWasClosed[1] }

/// What standard descriptor `descriptor` (0, 1 or 2) is called.
private func standardName(_ descriptor: Int32) -> String {
    ["standard input", "standard output", "standard error"][Int(descriptor)]
}

/// The descriptors above 2 the process started with (what a shell's `3>file` gives it): the only
/// ones `--output /dev/fd/N` may name. The others are the process's own (MPI's: one of them hung
/// the write, another took the predictions into OpenMPI's shared-memory file).
nonisolated(unsafe) var descriptorsOpenAtStart: Set<Int32> = []

/// Puts /dev/null on standard input, output or error where the process started without them, so
/// that no file, pipe or socket opened later (MPI's, OpenBLAS's) takes their numbers and receives
/// what is written to standard output, and notes the other descriptors open at start
/// (`descriptorsOpenAtStart`). Call first thing.
func holdStandardDescriptors() {
    let listed = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    // The listing's own descriptor is closed by now.
    descriptorsOpenAtStart = Set(listed.compactMap { Int32($0) }.filter { $0 > 2 && fcntl($0, F_GETFD) != -1 })
    for descriptor: Int32 in 0...2 where fcntl(descriptor, F_GETFD) == -1 {
        standardDescriptorWasClosed[Int(descriptor)] = true
        let opened = open("/dev/null", O_RDWR)
        if opened >= 0 && opened != descriptor {
            dup2(opened, descriptor)
            close(opened)
        }
    }
}

/// Writes `text`, what the command was run for (eval's figures, the predictions), to standard
/// output, and throws when it does not get there (a full disk, a closed pipe: SIGPIPE is ignored,
/// see `CohortCommand.main`), naming `what`.
func printResult(_ text: String, what: String) throws {
    if standardOutputWasClosed { throw CohortError("standard output: cannot write \(what) (it is closed)") }
    errno = 0
    if fputs(text, stdout) < 0 || fflush(stdout) != 0 || ferror(stdout) != 0 {
        let reason = errno != 0 ? String(cString: strerror(errno)) : "write error"
        clearerr(stdout)
        throw CohortError("standard output: cannot write \(what) (\(reason))")
    }
}

/// Writes `data` to the file `path` names. A regular file (or a new one) is replaced whole, through
/// a temporary file beside it, so that a failed write leaves the old one; a symbolic link is
/// followed, and anything else (a device such as /dev/stdout, a FIFO, a pipe) is written in place:
/// the temporary file would replace it.
func writeResult(_ data: Data, to path: String, what: String) throws {
    // This process's own descriptors, written where they stand (a file's offset, an append), not
    // reopened: replacing the file that /dev/stdout leads to lost what a shell had written there.
    if let descriptor = ownDescriptor(path) {
        if (0...2).contains(descriptor) && standardDescriptorWasClosed[Int(descriptor)] {
            throw CohortError("\(path): cannot write \(what) (\(standardName(descriptor)) is closed)")
        }
        if descriptor > 2 && !descriptorsOpenAtStart.contains(descriptor) {
            throw CohortError("\(path): cannot write \(what) (descriptor \(descriptor) was not open when cohort started: open it in the shell, as \(descriptor)>FILE, or give a file name)")
        }
        try writeAll(data, to: descriptor, path: path, what: what)
        return
    }
    var status = stat()
    // The kernel follows the links itself: /dev/stdout into a pipe leads to "pipe:[N]", no path.
    let found = stat(path, &status) == 0
    if found && (status.st_mode & S_IFMT) != S_IFREG {
        try writeInPlace(data, to: path, what: what)
        return
    }
    // A new file, or a link to one, is made; a loop of links (ELOOP) or a path through a file
    // (ENOTDIR) is an error, not a file that replaces the last link.
    if !found && errno != ENOENT {
        throw CohortError("\(path): cannot write \(what) (\(String(cString: strerror(errno))))")
    }
    let target = followingLinks(URL(fileURLWithPath: path))
    let directory = target.deletingLastPathComponent().path
    guard FileManager.default.fileExists(atPath: directory) else {
        throw CohortError("\(path): cannot write \(what) (no such directory: \(directory))")
    }
    do {
        try data.write(to: target, options: .atomic)
    } catch {
        throw CohortError("\(path): cannot write \(what) (\(describeFileError(error)))")
    }
}

/// The descriptor a path names that stands for one of this process's own: /dev/stdin,
/// /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N.
private func ownDescriptor(_ path: String) -> Int32? {
    switch path {
    case "/dev/stdin": return 0
    case "/dev/stdout": return 1
    case "/dev/stderr": return 2
    default:
        for prefix in ["/dev/fd/", "/proc/self/fd/"] where path.hasPrefix(prefix) {
            return Int32(path.dropFirst(prefix.count))
        }
        return nil
    }
}

/// Writes `data` to what `path` opens as (a device, a FIFO), whole.
private func writeInPlace(_ data: Data, to path: String, what: String) throws {
    let descriptor = open(path, O_WRONLY)
    guard descriptor >= 0 else { throw CohortError("\(path): cannot write \(what) (\(String(cString: strerror(errno))))") }
    defer { close(descriptor) }
    try writeAll(data, to: descriptor, path: path, what: what)
}

/// Writes `data` to `descriptor` whole, or throws naming `path` and `what`.
private func writeAll(_ data: Data, to descriptor: Int32, path: String, what: String) throws {
    try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw CohortError("\(path): cannot write \(what) (\(String(cString: strerror(errno))))")
            }
            offset += written
        }
    }
}

/// Foundation's reason for a failed file operation, without its "The operation could not be
/// completed." preamble; the POSIX reason where there is one.
func describeFileError(_ error: Error) -> String {
    let error = error as NSError
    if let posix = error.userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(posix.code)))
    }
    if error.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(error.code))) }
    let preamble = "The operation could not be completed. "
    let text = error.localizedDescription
    return text.hasPrefix(preamble) ? String(text.dropFirst(preamble.count)) : text
}

/// Where `url` leads through symbolic links, also to a file that does not exist yet (which
/// `resolvingSymlinksInPath` leaves at the link).
private func followingLinks(_ url: URL) -> URL {
    var current = url
    for _ in 0..<40 {
        guard let destination = try? FileManager.default.destinationOfSymbolicLink(atPath: current.path) else { break }
        current = destination.hasPrefix("/") ? URL(fileURLWithPath: destination)
            : current.deletingLastPathComponent().appendingPathComponent(destination)
    }
    return current.standardizedFileURL
}
