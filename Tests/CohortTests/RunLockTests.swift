import Foundation
import XCTest
@testable import Cohort

/// Two runs on one checkpoint.dir at once (a `cohort train` started twice, a batch job rerun beside
/// its resubmission) wrote their checkpoints and curves among each other's; the second is refused.
final class RunLockTests: XCTestCase {
    func testTheLockIsHeldUntilReleased() throws {
        let directory = try temporaryDirectory(self)
        var first: RunLock? = try RunLock.acquire(directory, key: "c.yaml: checkpoint.dir: run")
        XCTAssertNotNil(first)
        XCTAssertThrowsError(try RunLock.acquire(directory, key: "c.yaml: checkpoint.dir: run")) { error in
            XCTAssertEqual((error as? CohortError)?.message,
                           "c.yaml: checkpoint.dir: run: another training run (pid \(getpid()) on \(localHostName())) is writing checkpoints there; wait for it to end, stop it, or give this run another checkpoint.dir")
        }
        first = nil
        XCTAssertNotNil(try RunLock.acquire(directory, key: "c.yaml: checkpoint.dir: run"), "the released lock is free again")
    }

    /// A second `cohort train` on a running one's directory is refused with one line naming the
    /// first; once the first is killed (no chance to let go itself), the directory is free.
    func testASecondRunIsRefusedAndAKilledRunLeavesNoLock() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 100_000_000, extra: "checkpoint: {dir: run, every_steps: 50}\n")
        let config = directory.appendingPathComponent("c.yaml")
        try String(contentsOf: config, encoding: .utf8).replacingOccurrences(of: "checkpoint: {dir: run}\n", with: "")
            .write(to: config, atomically: true, encoding: .utf8)
        let binary = try cohortBinary()
        let first = Process()
        first.executableURL = binary
        first.arguments = ["train", "c.yaml"]
        first.currentDirectoryURL = directory
        first.standardOutput = FileHandle.nullDevice
        first.standardError = FileHandle.nullDevice
        try first.run()
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        let latest = directory.appendingPathComponent("run/checkpoints/latest")
        XCTAssertTrue(MPIJob.waitFor(latest.path), "no checkpoint within a minute")
        let second = try runProcess(binary, ["train", "c.yaml"], in: directory)
        XCTAssertEqual(second.status, 1, second.err)
        XCTAssertEqual(second.err, "error: c.yaml: checkpoint.dir: run: another training run (pid \(first.processIdentifier) on \(localHostName())) is writing checkpoints there; wait for it to end, stop it, or give this run another checkpoint.dir\n")
        XCTAssertTrue(first.isRunning, "the first run goes on")
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let step = try XCTUnwrap(Int(try String(contentsOf: latest, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let resumed = try runProcess(binary, ["train", "c.yaml", "--resume", "auto", "--set", "train.max_steps=\(step + 5)"], in: directory)
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.out.contains("resumed from"), resumed.out)
    }
}
