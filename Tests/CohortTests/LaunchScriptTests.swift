import Foundation
import XCTest

/// The launch scripts' own checks: every failure is one line that says what is wrong.
final class LaunchScriptTests: XCTestCase {
    func hosts(_ hostfile: String, in directory: URL) throws -> ProcessResult {
        try hostfile.write(to: directory.appendingPathComponent("hosts"), atomically: true, encoding: .utf8)
        return try runProcess(projectDirectory.appendingPathComponent("launch/hosts"), ["hosts", "c.yaml"], in: directory,
                              environment: ["COHORT_BIN": try cohortBinary().path])
    }

    /// OpenMPI's complaint about a hostfile is hidden by --quiet: it failed with status 1 and nothing said.
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

    func testMpirunFailingBeforeTheWorkersSaysSo() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let result = try runProcess(projectDirectory.appendingPathComponent("launch/local"), ["-n", "2", "c.yaml"], in: directory,
                                    environment: ["COHORT_BIN": try cohortBinary().path, "COHORT_MPIRUN_ARGS": "--bind-to nonsense"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.err.hasSuffix("error: mpirun failed (status 1) before any worker reported an error\n"), result.err)
    }
}
