import Foundation
import Cohort

/// A line of progress on standard output, at once. Best effort: a run goes on when nobody reads
/// its progress any more (a closed pipe, a full disk).
func printLine(_ line: String) {
    print(line)
    fflush(stdout)
}

/// A line on standard error (unbuffered), its control characters escaped (`oneLine`).
func printError(_ line: String) {
    FileHandle.standardError.write(Data((oneLine(line) + "\n").utf8))
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

/// Writes `text`, what the command was run for (eval's figures, the predictions), to standard
/// output, and throws when it does not get there (a full disk, a closed pipe: SIGPIPE is ignored,
/// see `CohortCommand.main`), naming `what`.
func printResult(_ text: String, what: String) throws {
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
    var status = stat()
    // The kernel follows the links itself: /dev/stdout into a pipe leads to "pipe:[N]", no path.
    if stat(path, &status) == 0 && (status.st_mode & S_IFMT) != S_IFREG {
        try writeInPlace(data, to: path, what: what)
        return
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

/// Writes `data` to what `path` opens as (a device, a FIFO, a pipe), from its start, whole.
private func writeInPlace(_ data: Data, to path: String, what: String) throws {
    func failure() -> CohortError { CohortError("\(path): cannot write \(what) (\(String(cString: strerror(errno))))") }
    let descriptor = open(path, O_WRONLY)
    guard descriptor >= 0 else { throw failure() }
    defer { close(descriptor) }
    try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw failure()
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
