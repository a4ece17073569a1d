import Foundation
import XCTest
@testable import Cohort

/// `train.accumulate: k`: each step's global batch in k micro-batches, their gradients summed
/// before the one allreduce and update.
final class AccumulationTests: XCTestCase {
    var data: IDXPair!
    var directory: URL!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self)
        data = try writeSyntheticData(in: directory, name: "train", count: 600, rows: 6, columns: 6, classes: 5, seed: 4)
    }

    func train(_ name: String, workers: Int, maxSteps: Int = 20, accumulate: Int, batchNorm: Bool = true,
               schedule: String = "cosine", resume: Bool = false) throws -> [String: SafeTensors.Tensor] {
        let run = directory.appendingPathComponent(name)
        let path = directory.appendingPathComponent("\(name).yaml").path
        try distributedConfig(data: data, run: run, maxSteps: maxSteps, schedule: schedule, batchNorm: batchNorm,
                              train: ", accumulate: \(accumulate)")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let job = try MPIJob(workers: workers, arguments: ["train", path] + (resume ? ["--resume", "auto"] : []), configPath: path).wait()
        XCTAssertEqual(job.status, 0, job.error)
        return try SafeTensors.read(path: run.appendingPathComponent("checkpoints/\(maxSteps)/model.safetensors").path).tensors
    }

    /// Without batch norm a step's gradient is the same sum in another order (dropout masks are
    /// keyed by each sample's global index, whatever micro-batch it is in).
    func testWithoutBatchNormFourMicroBatchesTrainTheWeightsOfOne() throws {
        let one = try train("one", workers: 1, accumulate: 1, batchNorm: false)
        let four = try train("four", workers: 1, accumulate: 4, batchNorm: false)
        assertSameWeights(one, four, tolerance: 1e-5, "accumulate 4 against 1")
    }

    /// Micro-batches are cut from the global batch before the workers split them, so batch norm
    /// sees the same samples on any number of workers (a batch of 50 in micro-batches of 17, 17, 16).
    func testOneTwoAndThreeWorkersTrainTheSameWeightsWithAccumulation() throws {
        let one = try train("w1", workers: 1, accumulate: 3)
        assertSameWeights(one, try train("w2", workers: 2, accumulate: 3), tolerance: 1e-5, "2 workers against 1")
        assertSameWeights(one, try train("w3", workers: 3, accumulate: 3), tolerance: 1e-5, "3 workers against 1")
    }

    /// Batch norm over micro-batches is another model: the weights differ from `accumulate: 1`.
    func testWithBatchNormMicroBatchesAreNormalisedOnTheirOwn() throws {
        let one = try train("bn1", workers: 1, maxSteps: 5, accumulate: 1)
        let two = try train("bn2", workers: 1, maxSteps: 5, accumulate: 2)
        XCTAssertGreaterThan(relativeError(try XCTUnwrap(one["0.weight"]).doubles(), try XCTUnwrap(two["0.weight"]).doubles()), 1e-4)
    }

    func testResumeWithAccumulationIsBitwiseIdentical() throws {
        _ = try train("straight", workers: 2, maxSteps: 20, accumulate: 2, schedule: "constant")
        _ = try train("resumed", workers: 2, maxSteps: 9, accumulate: 2, schedule: "constant")
        _ = try train("resumed", workers: 2, maxSteps: 20, accumulate: 2, schedule: "constant", resume: true)
        XCTAssertEqual(try Data(contentsOf: directory.appendingPathComponent("straight/checkpoints/20/model.safetensors")),
                       try Data(contentsOf: directory.appendingPathComponent("resumed/checkpoints/20/model.safetensors")))
    }

    func testMicroBatchesTooSmallForTheWorkersAreAnErrorNamingTheKey() throws {
        let run = directory.appendingPathComponent("small")
        let path = directory.appendingPathComponent("small.yaml").path
        try distributedConfig(data: data, run: run, maxSteps: 2, batch: 6, train: ", accumulate: 4")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let job = try MPIJob(workers: 2, arguments: ["train", path], configPath: path).wait()
        XCTAssertNotEqual(job.status, 0)
        XCTAssertEqual(job.error, "error: \(path): train.accumulate: 4 micro-batches of train.batch_size 6 leave a worker of 2 without samples (each step needs batch_size >= accumulate x workers = 8)\n")
    }
}
