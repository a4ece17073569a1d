import Foundation
import XCTest

/// The launch scripts leave the transports to OpenMPI (shared memory within a host) and let the
/// user's own mpirun options win. OpenMPI's `btl_base_verbose 1` names the transport each worker
/// uses to reach each other worker (`mca: bml: Using vader btl for send to ...`).
final class TransportTests: XCTestCase {
    func launchLocal(in directory: URL, mpirunArgs: String) throws -> ProcessResult {
        try writeSmallRun(in: directory, steps: 3)
        return try runProcess(projectDirectory.appendingPathComponent("launch/local"), ["-n", "2", "c.yaml"], in: directory,
                              environment: ["COHORT_BIN": try cohortBinary().path, "COHORT_MPIRUN_ARGS": mpirunArgs])
    }

    func testTwoWorkersOnOneHostUseSharedMemory() throws {
        let job = try launchLocal(in: try temporaryDirectory(self), mpirunArgs: "--mca btl_base_verbose 1")
        XCTAssertEqual(job.status, 0, job.err)
        XCTAssertEqual(job.err.components(separatedBy: "Using vader btl for send to").count - 1, 2, job.err)
        XCTAssertFalse(job.err.contains("Using tcp btl"), job.err)
    }

    /// A user's transport (and binding) replace the script's: mpirun starts, and the workers use it.
    func testAUsersTransportChoiceWins() throws {
        let job = try launchLocal(in: try temporaryDirectory(self), mpirunArgs: "--mca btl ^vader --bind-to none --mca btl_base_verbose 1")
        XCTAssertEqual(job.status, 0, job.err)
        // One line per peer and TCP interface (this machine may have several).
        XCTAssertGreaterThanOrEqual(job.err.components(separatedBy: "Using tcp btl for send to").count - 1, 2, job.err)
        XCTAssertFalse(job.err.contains("Using vader btl"), job.err)
    }
}
