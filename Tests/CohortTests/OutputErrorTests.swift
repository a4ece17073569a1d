import Foundation
import XCTest

/// What eval and predict write is what they were run for: when it cannot be written (a full disk,
/// a closed pipe) they say so and fail, and --output never replaces anything but a regular file.
final class OutputErrorTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory)
        XCTAssertEqual(try runCohort(["train", "c.yaml"], in: directory).status, 0)
    }

    /// Runs cohort with its standard output on `output`; returns the status and standard error.
    func run(_ arguments: [String], output: FileHandle) throws -> (reason: Process.TerminationReason, status: Int32, err: String) {
        let process = Process()
        process.executableURL = try cohortBinary()
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let err = Pipe()
        process.standardOutput = output
        process.standardError = err
        try process.run()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationReason, process.terminationStatus, message)
    }

    func testAFullDiskOnStandardOutputIsAnError() throws {
        let full = try XCTUnwrap(FileHandle(forWritingAtPath: "/dev/full"))
        let predicted = try run(["predict", "c.yaml", "test-images.idx"], output: full)
        XCTAssertEqual(predicted.status, 1, predicted.err)
        XCTAssertEqual(predicted.err, "error: standard output: cannot write the predictions (No space left on device)\n")
        let evaluated = try run(["eval", "c.yaml", "--json"], output: full)
        XCTAssertEqual(evaluated.status, 1, evaluated.err)
        XCTAssertEqual(evaluated.err, "error: standard output: cannot write the evaluation (No space left on device)\n")
    }

    func testAClosedPipeIsAnErrorNotASignal() throws {
        let pipe = Pipe()
        try pipe.fileHandleForReading.close()
        let predicted = try run(["predict", "c.yaml", "test-images.idx"], output: pipe.fileHandleForWriting)
        XCTAssertEqual(predicted.reason, .exit, "ended by a signal")
        XCTAssertEqual(predicted.status, 1, predicted.err)
        XCTAssertEqual(predicted.err, "error: standard output: cannot write the predictions (Broken pipe)\n")
    }

    /// `--output /dev/stdout` with standard output a pipe writes into the pipe: the link leads to
    /// "pipe:[N]", which is no path to follow by hand (it said "The file doesn't exist").
    func testOutputToStandardOutputGoesIntoAPipe() throws {
        let pipe = Pipe()
        let predicted = try run(["predict", "c.yaml", "test-images.idx", "--output", "/dev/stdout"], output: pipe.fileHandleForWriting)
        try pipe.fileHandleForWriting.close()
        let csv = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(predicted.status, 0, predicted.err)
        XCTAssertEqual(predicted.err, "")
        XCTAssertEqual(csv.split(separator: "\n").count, 21, csv)
        XCTAssertTrue(csv.hasPrefix("index,label,p0,p1,p2,p3\n0,"), csv)
    }

    /// `--output /dev/stdout` with standard output a file writes where the file stands (after what
    /// a shell wrote there), not by replacing the file, which lost that; with standard output
    /// closed it is an error, as the plain output's is, not a write into whatever took its number.
    func testOutputToStandardOutputKeepsAFilesEarlierContentAndRefusesAClosedOne() throws {
        let log = directory.appendingPathComponent("log.txt")
        try Data("earlier\n".utf8).write(to: log)
        let handle = try FileHandle(forWritingTo: log)
        try handle.seekToEnd()
        let appended = try run(["predict", "c.yaml", "test-images.idx", "--output", "/dev/stdout"], output: handle)
        try handle.close()
        XCTAssertEqual(appended.status, 0, appended.err)
        let text = try String(contentsOf: log, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("earlier\nindex,label,"), text)
        XCTAssertEqual(text.split(separator: "\n").count, 22, text)
        for (arguments, message) in [(["--output", "/dev/stdout"], "error: /dev/stdout: cannot write the predictions (standard output is closed)\n"),
                                     ([], "error: standard output: cannot write the predictions (it is closed)\n")] {
            let closed = try runProcess(URL(fileURLWithPath: "/bin/bash"),
                                        ["-c", "exec \"$0\" \"$@\" >&-", try cohortBinary().path, "predict", "c.yaml", "test-images.idx"] + arguments,
                                        in: directory)
            XCTAssertEqual(closed.status, 1, closed.err)
            XCTAssertEqual(closed.err, message)
        }
    }

    /// `--output /dev/stdin` or `/dev/stderr` where that descriptor was closed at start is an error,
    /// as `/dev/stdout` is: the predictions went into the /dev/null put there, with exit status 0.
    func testOutputToAClosedStandardInputOrErrorIsRefused() throws {
        let cohort = try cohortBinary().path
        let input = try runProcess(URL(fileURLWithPath: "/bin/bash"),
                                   ["-c", "exec \"$0\" \"$@\" <&-", cohort, "predict", "c.yaml", "test-images.idx", "--output", "/dev/stdin"],
                                   in: directory)
        XCTAssertEqual(input.status, 1, input.err)
        XCTAssertEqual(input.err, "error: /dev/stdin: cannot write the predictions (standard input is closed)\n")
        // Standard error closed too: nothing to read the message from, the status says it.
        let error = try runProcess(URL(fileURLWithPath: "/bin/bash"),
                                   ["-c", "exec \"$0\" \"$@\" 2>&-", cohort, "predict", "c.yaml", "test-images.idx", "--output", "/dev/stderr"],
                                   in: directory)
        XCTAssertEqual(error.status, 1)
        XCTAssertEqual(error.out, "")
    }

    /// `--output /dev/fd/N` writes into a descriptor the process started with (`3>file`), and
    /// refuses any other: those are its own (MPI's; one hung the write, another took the
    /// predictions into OpenMPI's shared-memory file).
    func testOutputToADescriptorMustNameOneOpenAtStart() throws {
        let cohort = try cohortBinary().path
        let given = try runProcess(URL(fileURLWithPath: "/bin/bash"),
                                   ["-c", "exec \"$0\" \"$@\" 3>p.csv", cohort, "predict", "c.yaml", "test-images.idx", "--output", "/dev/fd/3"],
                                   in: directory)
        XCTAssertEqual(given.status, 0, given.err)
        let csv = try String(contentsOf: directory.appendingPathComponent("p.csv"), encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, 21, csv)
        for descriptor in [7, 12, 16] {
            let other = try runProcess(try cohortBinary(), ["predict", "c.yaml", "test-images.idx", "--output", "/dev/fd/\(descriptor)"], in: directory)
            XCTAssertEqual(other.status, 1, other.err)
            XCTAssertEqual(other.err, "error: /dev/fd/\(descriptor): cannot write the predictions (descriptor \(descriptor) was not open when cohort started: open it in the shell, as \(descriptor)>FILE, or give a file name)\n")
        }
    }

    /// A standard error that cannot be written (a full disk, a descriptor open only for reading)
    /// loses the error line but not the exit status: the write had ended the process on SIGILL (132).
    func testAnUnwritableStandardErrorKeepsTheExitStatus() throws {
        let cohort = try cohortBinary().path
        for (redirection, arguments, status) in [("2>/dev/full", ["train", "--bogus"], Int32(64)),
                                                 ("2</dev/null", ["eval", "missing.yaml"], 1),
                                                 ("2>/dev/full", ["predict", "c.yaml", "missing.idx"], 1)] {
            let result = try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", "exec \"$0\" \"$@\" \(redirection)", cohort] + arguments,
                                        in: directory)
            XCTAssertEqual(result.status, status, "\(arguments) \(redirection)")
        }
    }

    /// --output through a link to a device writes to the device and leaves the link (a temporary
    /// file renamed over it replaced /dev/full itself, run as root); through a link to a file, the file.
    func testOutputGoesThroughLinksAndIntoDevices() throws {
        let device = directory.appendingPathComponent("full.csv"), file = directory.appendingPathComponent("link.csv")
        try FileManager.default.createSymbolicLink(atPath: device.path, withDestinationPath: "/dev/full")
        try FileManager.default.createSymbolicLink(atPath: file.path, withDestinationPath: "p.csv")
        let full = try runCohort(["predict", "c.yaml", "test-images.idx", "--output", "full.csv"], in: directory)
        XCTAssertEqual(full.status, 1, full.err)
        XCTAssertEqual(full.err, "error: full.csv: cannot write the predictions (No space left on device)\n")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: device.path), "/dev/full")
        let linked = try runCohort(["predict", "c.yaml", "test-images.idx", "--output", "link.csv"], in: directory)
        XCTAssertEqual(linked.status, 0, linked.err)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: file.path), "p.csv")
        let csv = try String(contentsOf: directory.appendingPathComponent("p.csv"), encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, 21, csv)
    }

    /// A loop of links is an error that leaves the links, not a file that replaces one of them.
    func testOutputThroughALoopOfLinksIsAnError() throws {
        try FileManager.default.createSymbolicLink(atPath: directory.appendingPathComponent("a.csv").path, withDestinationPath: "b.csv")
        try FileManager.default.createSymbolicLink(atPath: directory.appendingPathComponent("b.csv").path, withDestinationPath: "a.csv")
        let looped = try runCohort(["predict", "c.yaml", "test-images.idx", "--output", "a.csv"], in: directory)
        XCTAssertEqual(looped.status, 1, looped.err)
        XCTAssertEqual(looped.err, "error: a.csv: cannot write the predictions (Too many levels of symbolic links)\n")
        for (name, other) in [("a.csv", "b.csv"), ("b.csv", "a.csv")] {
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: directory.appendingPathComponent(name).path), other)
        }
    }
}
