import Foundation
import XCTest

/// What happens before a command's own work: the restart for faster BLAS kernels (on a Zen 4, see
/// `BLASKernels.selectFastKernels`), and stop signals that come while the process starts.
final class ProcessStartTests: XCTestCase {
    /// A SIGTERM that is already pending when `cohort train` starts (held by a blocked mask, as one
    /// that comes during the start-up's first milliseconds is held) stops the run after its first
    /// step with a checkpoint: it had ended the run by the signal, or, held, been lost (the run
    /// went on to its end with status 0).
    func testAStopSignalPendingAtStartStopsTheRunAfterItsFirstStep() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 2_000)
        let script = "cd \"$1\" && shift && kill -TERM $$ && exec \"$0\" \"$@\" >/dev/null 2>err.txt"
        let status = runWithSignalsBlocked([SIGTERM], "/bin/bash", ["-c", script, try cohortBinary().path, directory.path, "train", "c.yaml"])
        let err = (try? String(contentsOf: directory.appendingPathComponent("err.txt"), encoding: .utf8)) ?? ""
        XCTAssertEqual(status, 75, err)
        XCTAssertTrue(err.hasPrefix("stopped at step 1 by SIGTERM; checkpoint "), err)
        XCTAssertEqual(try String(contentsOf: directory.appendingPathComponent("run/checkpoints/latest"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines), "1")
    }

    /// Another command than `train` does not stop cleanly: a pending SIGTERM ends it by the signal,
    /// as it would any program (it is not held for ever).
    func testAStopSignalPendingAtStartEndsAnotherCommand() throws {
        let directory = try temporaryDirectory(self)
        let script = "cd \"$1\" && shift && kill -TERM $$ && exec \"$0\" \"$@\" >/dev/null 2>/dev/null"
        let status = runWithSignalsBlocked([SIGTERM], "/bin/bash", ["-c", script, try cohortBinary().path, directory.path, "bench", "cnn", "--steps", "100000"])
        XCTAssertEqual(status, 128 + SIGTERM)
    }

    /// Started as the dynamic loader's argument, /proc/self/exe is the loader: the restart had run
    /// the loader with the subcommand for a program ("eval: cannot open shared object file", 127).
    func testAProgramStartedThroughTheDynamicLoaderRuns() throws {
        let directory = try temporaryDirectory(self)
        let loader = "/lib64/ld-linux-x86-64.so.2"
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: loader), "no \(loader) on this x86-64 Linux")
        let result = try runProcess(URL(fileURLWithPath: loader), [try cohortBinary().path, "eval", "missing.yaml"], in: directory)
        XCTAssertEqual(result.status, 1, result.err)
        XCTAssertEqual(result.err, "error: missing.yaml: config file not found\n")
    }
}

/// Runs `executable` with `arguments` (argument 0 included) with `blocked` signals blocked from its
/// first instruction (posix_spawn's POSIX_SPAWN_SETSIGMASK) and waits for it; returns its exit
/// status, or 128 + the signal that ended it.
private func runWithSignalsBlocked(_ blocked: [Int32], _ executable: String, _ arguments: [String]) -> Int32 {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var mask = sigset_t()
    sigemptyset(&mask)
    for number in blocked { sigaddset(&mask, number) }
    posix_spawnattr_setsigmask(&attributes, &mask)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    var argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid = pid_t()
    let started = posix_spawn(&pid, executable, nil, &attributes, &argv, environ)
    guard started == 0 else {
        XCTFail("posix_spawn \(executable): \(String(cString: strerror(started)))")
        return -1
    }
    let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
    DispatchQueue.global().asyncAfter(deadline: .now() + 120, execute: watchdog)
    defer { watchdog.cancel() }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let signal = status & 0x7F
    return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
}
