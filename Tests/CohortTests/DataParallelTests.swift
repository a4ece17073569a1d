import Foundation
import XCTest
@testable import Cohort

/// Training under `mpirun`: the result does not depend on the number of workers, and no failure
/// of a worker hangs the job.
final class DataParallelTests: XCTestCase {
    var data: IDXPair!
    var directory: URL!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self)
        data = try writeSyntheticData(in: directory, name: "train", count: 600, rows: 6, columns: 6, classes: 5, seed: 4)
    }

    /// Writes a config and returns its path.
    func config(_ name: String, maxSteps: Int, everySteps: Int = 0, timeout: Int = 60, schedule: String = "cosine") throws -> (path: String, run: URL) {
        let run = directory.appendingPathComponent(name)
        let path = directory.appendingPathComponent("\(name).yaml").path
        try distributedConfig(data: data, run: run, maxSteps: maxSteps, everySteps: everySteps, timeout: timeout, schedule: schedule)
            .write(toFile: path, atomically: true, encoding: .utf8)
        return (path, run)
    }

    func train(_ config: (path: String, run: URL), workers: Int, resume: Bool = false) throws -> (status: Int32, output: String, error: String) {
        try MPIJob(workers: workers, arguments: ["train", config.path] + (resume ? ["--resume", "auto"] : []), configPath: config.path).wait()
    }

    func weights(_ run: URL, step: Int) throws -> [String: SafeTensors.Tensor] {
        try SafeTensors.read(path: run.appendingPathComponent("checkpoints/\(step)/model.safetensors").path).tensors
    }

    /// A batch of 50 over 3 workers (slices of 17, 17 and 16), with batch norm, dropout and shuffle.
    func testOneTwoAndThreeWorkersTrainTheSameWeights() throws {
        var results: [[String: SafeTensors.Tensor]] = []
        for workers in 1...3 {
            let c = try config("world\(workers)", maxSteps: 20)
            let job = try train(c, workers: workers)
            XCTAssertEqual(job.status, 0, job.error)
            XCTAssertTrue(job.output.contains("world=\(workers)"), job.output)
            results.append(try weights(c.run, step: 20))
        }
        assertSameWeights(results[0], results[1], tolerance: 1e-5, "2 workers against 1")
        assertSameWeights(results[0], results[2], tolerance: 1e-5, "3 workers against 1")
    }

    /// Workers of one node sum the gradients through shared memory; with `COHORT_NODE_SUM=mpi`,
    /// through messages (`reduceScatterAllgatherSum`). Both sum each element in the same order, so
    /// the weights are bitwise the same: 2 workers (a + b), 3 (rank order), 4 (a tree of pairs).
    func testSharedMemoryAndMessagesSumToTheSameWeights() throws {
        for workers in 2...4 {
            var checkpoints: [Data] = []
            for sum in ["shared", "mpi"] {
                let c = try config("\(sum)\(workers)", maxSteps: 12)
                let job = try MPIJob(workers: workers, arguments: ["train", c.path], configPath: c.path,
                                     environment: ["COHORT_NODE_SUM": sum]).wait()
                XCTAssertEqual(job.status, 0, job.error)
                checkpoints.append(try Data(contentsOf: c.run.appendingPathComponent("checkpoints/12/model.safetensors")))
            }
            XCTAssertEqual(checkpoints[0], checkpoints[1], "\(workers) workers: shared memory and messages differ")
        }
    }

    /// Where MPI cannot make a shared-memory window (its `osc sm` component left out), the workers
    /// agree to sum through messages instead: the same weights, no error.
    func testWithoutSharedMemoryWindowsTheSumFallsBackToMessages() throws {
        var checkpoints: [Data] = []
        for (name, environment) in [("window", [String: String]()), ("nowindow", ["OMPI_MCA_osc": "^sm"])] {
            let c = try config(name, maxSteps: 6)
            let job = try MPIJob(workers: 2, arguments: ["train", c.path], configPath: c.path, environment: environment).wait()
            XCTAssertEqual(job.status, 0, job.error)
            checkpoints.append(try Data(contentsOf: c.run.appendingPathComponent("checkpoints/6/model.safetensors")))
        }
        XCTAssertEqual(checkpoints[0], checkpoints[1])
    }

    /// `COHORT_NODE_SUM` takes shared or mpi; anything else ends the job before training, said once.
    func testAnUnknownNodeSumIsOneError() throws {
        let c = try config("bogus", maxSteps: 2)
        let job = try MPIJob(workers: 2, arguments: ["train", c.path], configPath: c.path, environment: ["COHORT_NODE_SUM": "fast"]).wait()
        XCTAssertNotEqual(job.status, 0)
        XCTAssertEqual(job.error, "error: COHORT_NODE_SUM: unknown value 'fast' (expected shared or mpi)\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.run.appendingPathComponent("checkpoints").path))
    }

    /// 2 workers for 9 steps, then 3 workers extending the run to 20: the same weights as 1 worker
    /// straight through (a constant rate, so that the run's length does not change the schedule).
    func testResumeOnAnotherNumberOfWorkers() throws {
        let straight = try config("straight", maxSteps: 20, schedule: "constant")
        XCTAssertEqual(try train(straight, workers: 1).status, 0)
        let elastic = try config("elastic", maxSteps: 9, schedule: "constant")
        XCTAssertEqual(try train(elastic, workers: 2).status, 0)
        let resumed = try config("elastic", maxSteps: 20, schedule: "constant")
        let job = try train(resumed, workers: 3, resume: true)
        XCTAssertEqual(job.status, 0, job.error)
        XCTAssertTrue(job.output.contains("resumed from"), job.output)
        assertSameWeights(try weights(straight.run, step: 20), try weights(elastic.run, step: 20), tolerance: 1e-5, "2 then 3 workers")
    }

    /// A worker killed with SIGKILL ends the job with a non-zero status, and `--resume auto`
    /// then finishes with exactly the weights of an uninterrupted run.
    func testAKilledWorkerEndsTheJobAndResumeFinishesBitwise() throws {
        let straight = try config("uninterrupted", maxSteps: 400, everySteps: 400)
        XCTAssertEqual(try train(straight, workers: 2).status, 0)
        let killed = try config("killed", maxSteps: 400, everySteps: 5)
        let job = try MPIJob(workers: 2, arguments: ["train", killed.path], configPath: killed.path)
        XCTAssertTrue(MPIJob.waitFor(killed.run.appendingPathComponent("checkpoints/latest").path), "no checkpoint appeared")
        let workers = job.workerPIDs()
        XCTAssertEqual(workers.count, 2)
        kill(try XCTUnwrap(workers.last), SIGKILL)
        let ended = job.wait()
        XCTAssertNotEqual(ended.status, 0, "the job survived a killed worker")
        let resumed = try train(killed, workers: 2, resume: true)
        XCTAssertEqual(resumed.status, 0, resumed.error)
        XCTAssertTrue(resumed.output.contains("resumed from"), resumed.output)
        let a = try Data(contentsOf: straight.run.appendingPathComponent("checkpoints/400/model.safetensors"))
        let b = try Data(contentsOf: killed.run.appendingPathComponent("checkpoints/400/model.safetensors"))
        XCTAssertEqual(a, b, "resumed weights differ from the uninterrupted run")
    }

    /// SIGTERM to one worker: all stop at the same step, the coordinator checkpoints it, the job
    /// exits 75 with a message saying how to resume, and resuming is bitwise identical.
    func testSIGTERMToAWorkerCheckpointsAndResumesBitwise() throws {
        let straight = try config("whole", maxSteps: 400, everySteps: 400)
        XCTAssertEqual(try train(straight, workers: 2).status, 0)
        let stopped = try config("stopped", maxSteps: 400, everySteps: 5)
        let job = try MPIJob(workers: 2, arguments: ["train", stopped.path], configPath: stopped.path)
        XCTAssertTrue(MPIJob.waitFor(stopped.run.appendingPathComponent("checkpoints/latest").path))
        kill(try XCTUnwrap(job.workerPIDs().last), SIGTERM)
        let ended = job.wait()
        XCTAssertEqual(ended.status, 75, ended.error)
        XCTAssertTrue(ended.error.contains("continue with: mpirun -np 2 cohort train \(stopped.path) --resume auto"), ended.error)
        let latest = try String(contentsOf: stopped.run.appendingPathComponent("checkpoints/latest"), encoding: .utf8)
        let step = try XCTUnwrap(Int(latest.trimmingCharacters(in: .whitespacesAndNewlines)))
        XCTAssertLessThan(step, 400)
        XCTAssertTrue(ended.output.contains("stopped at step \(step) of 400"), ended.output)
        let resumed = try train(stopped, workers: 2, resume: true)
        XCTAssertEqual(resumed.status, 0, resumed.error)
        XCTAssertEqual(try Data(contentsOf: straight.run.appendingPathComponent("checkpoints/400/model.safetensors")),
                       try Data(contentsOf: stopped.run.appendingPathComponent("checkpoints/400/model.safetensors")))
    }

    /// A stalled worker (SIGSTOP) ends the job through the collective timeout, with the message that says so.
    func testAStalledWorkerEndsTheJobThroughTheTimeout() throws {
        let stalled = try config("stalled", maxSteps: 100_000, everySteps: 5, timeout: 3)
        let started = Date()
        let job = try MPIJob(workers: 2, arguments: ["train", stalled.path], configPath: stalled.path)
        XCTAssertTrue(MPIJob.waitFor(stalled.run.appendingPathComponent("checkpoints/latest").path))
        let workers = job.workerPIDs()
        kill(try XCTUnwrap(workers.last), SIGSTOP)
        let ended = job.wait()
        for pid in workers { kill(pid, SIGKILL) }
        XCTAssertNotEqual(ended.status, 0)
        XCTAssertTrue(ended.error.contains("timed out on rank"), ended.error)
        XCTAssertTrue(ended.error.contains("after 3 s"), ended.error)
        // With a checkpoint behind it, the run goes on from there (the line said only what timed out).
        XCTAssertTrue(ended.error.hasSuffix("; continue with --resume auto\n"), ended.error)
        XCTAssertEqual(ended.error.split(separator: "\n").count, 1, ended.error)
        XCTAssertLessThan(Date().timeIntervalSince(started), 40)
    }

    /// A job suspended for longer than its timeout and resumed (`scontrol suspend` / `resume`
    /// stop and continue every worker) goes on: a worker's own stop is not the others' delay. It had
    /// ended with every worker's timeout error the moment it was continued.
    func testASuspendedAndResumedJobGoesOn() throws {
        let suspended = try config("suspended", maxSteps: 3000, everySteps: 5, timeout: 2)
        let job = try MPIJob(workers: 2, arguments: ["train", suspended.path], configPath: suspended.path)
        XCTAssertTrue(MPIJob.waitFor(suspended.run.appendingPathComponent("checkpoints/latest").path))
        let workers = job.workerPIDs()
        XCTAssertEqual(workers.count, 2)
        // The second stopped first, so that the first is surely waiting for it in a collective
        // when it stops too; continued first, it finds its wait older than the timeout.
        kill(workers[1], SIGSTOP)
        Thread.sleep(forTimeInterval: 1)
        kill(workers[0], SIGSTOP)
        Thread.sleep(forTimeInterval: 3)
        kill(workers[0], SIGCONT)
        Thread.sleep(forTimeInterval: 0.5)
        kill(workers[1], SIGCONT)
        let ended = job.wait()
        XCTAssertEqual(ended.status, 0, ended.error)
        XCTAssertTrue(ended.output.contains("done: 3000 steps"), ended.output)
    }

    /// A config error met by every worker is reported once.
    func testAnErrorOnEveryWorkerIsPrintedOnce() throws {
        let path = directory.appendingPathComponent("bad.yaml").path
        try "seed: 1\noptimizer: {lr: 0.1}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let job = try MPIJob(workers: 2, arguments: ["train", path], configPath: path).wait()
        XCTAssertNotEqual(job.status, 0)
        XCTAssertEqual(job.error, "error: \(path): data: missing: the training data is required\n")
    }
}
