import Foundation
import XCTest

/// The launch scripts' own checks: every failure is one line that says what is wrong.
final class LaunchScriptTests: XCTestCase {
    func hosts(_ hostfile: String, in directory: URL) throws -> ProcessResult {
        try hostfile.write(to: directory.appendingPathComponent("hosts"), atomically: true, encoding: .utf8)
        return try runProcess(projectDirectory.appendingPathComponent("launch/hosts"), ["hosts", "c.yaml"], in: directory,
                              environment: ["COHORT_BIN": try cohortBinary().path])
    }

    /// OpenMPI's complaint about a hostfile was hidden by --quiet: it failed with status 1 and nothing said.
    func testAHostfileThatIsNotOneIsNamed() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        for (text, expected) in [("garbage line here ===\n", "error: hosts: line 1: expected a host name then options such as slots=N, got 'garbage line here ==='\n"),
                                 ("# only a comment\n\n", "error: hosts: no hosts in the hostfile\n"),
                                 ("localhost slots=two\n", "error: hosts: line 1: expected a host name then options such as slots=N, got 'localhost slots=two'\n")] {
            let result = try hosts(text, in: directory)
            XCTAssertEqual(result.status, 2, text)
            XCTAssertEqual(result.err, expected)
        }
        let good = try hosts("# this machine\nlocalhost slots=2 # both cores\n", in: directory)
        XCTAssertEqual(good.status, 0, good.err)
        XCTAssertTrue(good.out.contains("world=2"), good.out)
    }

    /// mpirun refuses slots given to a host on two lines, and a directory is no hostfile: both were
    /// an unexplained "mpirun failed" or bash's own errors.
    func testAHostListedTwiceWithSlotsOrADirectoryIsNamed() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let twice = try hosts("localhost\nlocalhost slots=1\n", in: directory)
        XCTAssertEqual(twice.status, 2)
        XCTAssertEqual(twice.err, "error: hosts: line 2: localhost is on an earlier line too (give the host one line with all its slots)\n")
        let folder = try runProcess(projectDirectory.appendingPathComponent("launch/hosts"), [directory.path, "c.yaml"], in: directory,
                                    environment: ["COHORT_BIN": try cohortBinary().path])
        XCTAssertEqual(folder.status, 2)
        XCTAssertEqual(folder.err, "error: \(directory.path): not a file (expected an OpenMPI hostfile)\n")
    }

    /// A stop signal that comes once mpirun has ended, while the script waits out its poll: the kill
    /// it forwards finds no process, which under `set -e` ended the script with status 1 and no word.
    /// An `mpirun` that succeeds at once stands in for a run that has just finished.
    func testAStopSignalAfterMpirunEndedLeavesTheStatusAlone() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let bin = directory.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let fake = bin.appendingPathComponent("mpirun")
        try "#!/bin/sh\nexit 0\n".write(to: fake, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: fake.path)
        let path = bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let process = Process()
        process.executableURL = projectDirectory.appendingPathComponent("launch/local")
        process.arguments = ["-n", "1", "c.yaml"]
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(["COHORT_BIN": try cohortBinary().path, "PATH": path]) { $1 }
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        try process.run()
        usleep(400_000)  // within the script's one-second poll, mpirun long gone
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertEqual(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self), "")
    }

    /// A host whose daemon cannot be started (here a remote shell that fails, as ssh does for an
    /// unknown host): the launch says nothing ran, where it advised --resume auto as for a host lost mid-run.
    func testAHostThatCannotBeReachedIsNotALostRun() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let shell = directory.appendingPathComponent("unreachable-rsh")
        try "#!/bin/sh\necho \"unreachable-rsh: $1: no route to host\" >&2\nexit 255\n".write(to: shell, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: shell.path)
        try "localhost slots=1\nfarhost slots=1\n".write(to: directory.appendingPathComponent("hosts"), atomically: true, encoding: .utf8)
        let result = try runProcess(projectDirectory.appendingPathComponent("launch/hosts"), ["hosts", "c.yaml"], in: directory,
                                    environment: ["COHORT_BIN": try cohortBinary().path, "COHORT_MPIRUN_ARGS": "--mca plm_rsh_agent \(shell.path)"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.err, "unreachable-rsh: farhost: no route to host\n"
                       + "error: mpirun could not start its daemon on every host (exit 255; the lines above may say why, as ssh's do); no worker ran\n")
    }

    /// mpirun's reason, in one line: its page of text for an unknown binding, and nothing at all (it
    /// was hidden by --quiet) for a binding of more workers than cores.
    func testMpirunFailingBeforeTheWorkersSaysWhyInOneLine() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        for (workers, options, reason) in [(2, "--bind-to nonsense", "The specified binding policy is not recognized: Policy: nonsense"),
                                           (cores + 1, "--bind-to core", "binding more processes than cpus")] {
            let result = try runProcess(projectDirectory.appendingPathComponent("launch/local"), ["-n", "\(workers)", "c.yaml"], in: directory,
                                        environment: ["COHORT_BIN": try cohortBinary().path, "COHORT_MPIRUN_ARGS": options])
            XCTAssertEqual(result.status, 1, options)
            XCTAssertTrue(result.err.hasPrefix("error: mpirun failed (status 1): "), result.err)
            XCTAssertTrue(result.err.contains(reason), result.err)
            XCTAssertEqual(result.err.split(separator: "\n").count, 1, result.err)
        }
    }
}
