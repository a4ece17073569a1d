import Foundation
import XCTest

/// `launch/local` stopped from a terminal: Ctrl-C (or a closed terminal's SIGHUP) goes to the whole
/// foreground process group, the script and everything it started. The workers must still stop
/// together after one checkpoint: a SIGINT or SIGTERM that reaches mpirun makes it end the job
/// itself, and the workers' checkpoint is lost when their step outlasts its grace or their output
/// fills the pipe it no longer reads (see launch/common.sh).
final class TerminalStopTests: XCTestCase {
    func testCtrlCAtTheTerminalStopsEveryWorkerAfterACheckpoint() throws {
        try stopFromTheTerminal(with: SIGINT, twice: true)
    }

    func testAClosedTerminalStopsEveryWorkerAfterACheckpoint() throws {
        try stopFromTheTerminal(with: SIGHUP, twice: false)
    }

    /// `timeout` and `kill -- -PGID` send SIGTERM to the whole group too: it ended the script's
    /// readers of mpirun's output, and the stop line was lost (exit 75 6 s later, no word).
    func testASIGTERMToTheGroupStopsEveryWorkerAfterACheckpoint() throws {
        try stopFromTheTerminal(with: SIGTERM, twice: false)
    }

    /// Starts `launch/local -n 2` as the leader of a process group of its own (as a shell starts a
    /// foreground job), sends `signal` to the group once training has checkpointed (`twice`: again
    /// a moment later, an impatient user), and checks the stop.
    private func stopFromTheTerminal(with signal: Int32, twice: Bool) throws {
        let directory = try temporaryDirectory(self)
        // A toy run that writes thousands of lines a second: mpirun, had it been told to end the job,
        // would stop reading them, and the workers would block on the full pipe before their checkpoint.
        let latest = try writeEndlessRun(in: directory)
        // Foundation starts the child as the leader of a process group of its own.
        let (process, err) = try start(projectDirectory.appendingPathComponent("launch/local"), ["-n", "2", "c.yaml"], in: directory,
                                       environment: ["COHORT_BIN": try cohortBinary().path])
        let group = process.processIdentifier
        XCTAssertEqual(getpgid(group), group, "the launcher does not lead a process group of its own")
        // Should the stop fail, nothing may outlive the test: the launcher's group, and mpirun's session.
        let watchdog = DispatchWorkItem { kill(-group, SIGKILL); killMPIRunsOf(directory) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 120, execute: watchdog)
        defer { watchdog.cancel() }
        XCTAssertTrue(MPIJob.waitFor(latest.path), "no checkpoint within a minute")
        kill(-group, signal)
        if twice {
            usleep(300_000)
            kill(-group, signal)
        }
        let launcher = projectDirectory.appendingPathComponent("launch/local").path
        // The stop line names the signal the user sent (it said SIGUSR1, what the script passes on).
        let step = try assertStopped(process, err, latest: latest, by: signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "SIGHUP", continueWith: "\(launcher) -n 2 c.yaml --resume auto")
        // Nothing goes on after the launcher has returned.
        sleep(2)
        XCTAssertEqual(try String(contentsOf: latest, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), step)
    }
}

/// A run in `directory` (`writeSmallRun`'s) of more steps than any test waits for, a checkpoint every
/// 2,000 steps; returns its `checkpoints/latest`.
private func writeEndlessRun(in directory: URL) throws -> URL {
    try writeSmallRun(in: directory, steps: 100_000_000)
    let config = directory.appendingPathComponent("c.yaml")
    try String(contentsOf: config, encoding: .utf8)
        .replacingOccurrences(of: "checkpoint: {dir: run}", with: "checkpoint: {dir: run, every_steps: 2000}")
        .write(to: config, atomically: true, encoding: .utf8)
    return directory.appendingPathComponent("run/checkpoints/latest")
}

/// Waits for `process` and checks that it stopped after a checkpoint: exit 75 and, on `err`, "stopped
/// at step N by `signal`" for the step in `latest` and the command to continue with. Returns N.
@discardableResult
private func assertStopped(_ process: Process, _ err: Pipe, latest: URL, by signal: String, continueWith command: String,
                           file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    XCTAssertEqual(process.terminationReason, .exit, message, file: file, line: line)
    XCTAssertEqual(process.terminationStatus, 75, message, file: file, line: line)
    let step = try String(contentsOf: latest, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    XCTAssertTrue(message.contains("stopped at step \(step) by \(signal)"), message, file: file, line: line)
    XCTAssertTrue(message.contains("continue with: \(command)"), message, file: file, line: line)
    return step
}

/// Starts `executable` in `directory`, its standard output discarded; returns it and its standard error.
private func start(_ executable: URL, _ arguments: [String], in directory: URL,
                   environment: [String: String] = [:]) throws -> (Process, Pipe) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.currentDirectoryURL = directory
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let err = Pipe()
    process.standardOutput = FileHandle.nullDevice
    process.standardError = err
    try process.run()
    return (process, err)
}

/// Ends with SIGKILL every mpirun (and its workers) started in `directory`, found by their working directory.
private func killMPIRunsOf(_ directory: URL) {
    let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    for entry in procs {
        guard let pid = Int32(entry),
              let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/cwd"),
              cwd == directory.path || cwd == directory.resolvingSymlinksInPath().path else { continue }
        kill(pid, SIGKILL)
    }
}

/// A lone `cohort train` whose terminal closes (SIGHUP) stops as on Ctrl-C: a checkpoint, exit 75.
final class HangupTests: XCTestCase {
    /// Starts an endless lone run (through `bash -c shell`, which ends by exec'ing it, when given),
    /// waits for its first checkpoint and calls `body` with the process, its standard error and
    /// the run's `checkpoints/latest`; the run is killed after two minutes regardless.
    func withEndlessRun(through shell: String? = nil, _ body: (Process, Pipe, URL) throws -> Void) throws {
        let directory = try temporaryDirectory(self)
        let latest = try writeEndlessRun(in: directory)
        let cohort = try cohortBinary()
        let (process, err) = try shell.map { try start(URL(fileURLWithPath: "/bin/bash"), ["-c", $0, cohort.path, "train", "c.yaml"], in: directory) }
            ?? start(cohort, ["train", "c.yaml"], in: directory)
        let watchdog = DispatchWorkItem { [pid = process.processIdentifier] in kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 120, execute: watchdog)
        defer { watchdog.cancel() }
        XCTAssertTrue(MPIJob.waitFor(latest.path), "no checkpoint within a minute")
        try body(process, err, latest)
    }

    /// Calls `signal` with the pid of an endless lone run after its first checkpoint, and checks
    /// that it stopped by `name` after a checkpoint.
    func checkALoneRunStops(by name: String, _ signal: (pid_t) -> Void) throws {
        try withEndlessRun { process, err, latest in
            signal(process.processIdentifier)
            try assertStopped(process, err, latest: latest, by: name, continueWith: "cohort train c.yaml --resume auto")
        }
    }

    func testAClosedTerminalStopsALoneRunAfterACheckpoint() throws {
        try checkALoneRunStops(by: "SIGHUP") { kill($0, SIGHUP) }
    }

    /// Under `nohup` (SIGHUP ignored at start) a closed terminal does not stop the run: the handler
    /// had replaced the ignored disposition. SIGTERM still stops it.
    func testSIGHUPIgnoredAtStartStaysIgnored() throws {
        try withEndlessRun(through: "trap '' HUP; exec \"$0\" \"$@\"") { process, err, latest in
            kill(process.processIdentifier, SIGHUP)
            sleep(1)
            XCTAssertTrue(process.isRunning, "SIGHUP, ignored at start, stopped the run")
            kill(process.processIdentifier, SIGTERM)
            try assertStopped(process, err, latest: latest, by: "SIGTERM", continueWith: "cohort train c.yaml --resume auto")
        }
    }

    /// The process keeps its name (`ps`, `pgrep -x cohort`) where it restarts itself for faster BLAS
    /// kernels (a Zen 4): an exec of /proc/self/exe had named it "exe".
    func testARunIsNamedCohort() throws {
        try checkALoneRunStops(by: "SIGTERM") { pid in
            XCTAssertEqual(try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8), "cohort\n")
            kill(pid, SIGTERM)
        }
    }

    /// A run whose standard error is a full disk still stops with status 75 after its checkpoint
    /// (the stop line is lost): writing that line had ended the process on SIGILL (132), and a
    /// launcher that resubmits on 75 would not have.
    func testAStopWithStandardErrorOnAFullDiskKeepsStatus75() throws {
        try withEndlessRun(through: "exec \"$0\" \"$@\" 2>/dev/full") { process, _, _ in
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .exit)
            XCTAssertEqual(process.terminationStatus, 75)
        }
    }

    /// Slurm at a job's time limit signals each task twice at once (through srun and directly): the
    /// same signal again within a second is not the second signal that ends a run at once.
    func testTheSameSignalTwiceAtOnceStillStopsAfterACheckpoint() throws {
        try checkALoneRunStops(by: "SIGTERM") { pid in
            kill(pid, SIGTERM)
            usleep(20_000)  // handled apart (two pending at once would be one)
            kill(pid, SIGTERM)
        }
    }
}
