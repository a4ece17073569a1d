import Foundation
import XCTest
@testable import Cohort

/// The gradient allreduce overlapped with backward (`distributed.overlap`, on by default): buckets
/// of whole layers from the end of the gradient buffer, summed by a communication thread. Between
/// hosts, where messages carry the sums: the workers here run with `COHORT_NODE_SUM=mpi`, since on
/// one host the float sum otherwise goes through shared memory after backward (`DataParallelTests`).
final class OverlapTests: XCTestCase {
    var data: IDXPair!
    var directory: URL!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self)
        data = try writeSyntheticData(in: directory, name: "train", count: 600, rows: 6, columns: 6, classes: 5, seed: 4)
    }

    func testBucketsAreWholeLayersFromTheEnd() {
        let buckets = GradientBuckets(layerSizes: [10, 0, 300, 5, 2000, 7], targetCount: 1000)
        XCTAssertEqual(buckets.ranges, [315..<2322, 0..<315])
        XCTAssertEqual(GradientBuckets(layerSizes: [4, 4, 4], targetCount: 1).ranges, [8..<12, 4..<8, 0..<4])
        XCTAssertEqual(GradientBuckets(layerSizes: [0, 0], targetCount: 1).ranges, [])
    }

    /// The test model (757 parameters) in buckets of at least 52 values: the last dense layer, the
    /// batch norm and dense layer before it, the convolution and its batch norm.
    func testTheTestModelIsCutIntoSeveralBuckets() throws {
        let config = try ConfigLoader.parse(distributedConfig(data: data, run: directory, maxSteps: 1, distributed: ", bucket_mb: 0.0002"), file: "c.yaml")
        let model = try Model<Float>(config.model)
        XCTAssertEqual(GradientBuckets(model: model, targetCount: config.distributed.bucketCount).ranges.count, 3)
    }

    func train(_ name: String, workers: Int, maxSteps: Int = 20, overlap: Bool, hidden: Int = 16, bucketMB: Double = 0.0002,
               train extra: String = "", resume: Bool = false) throws -> URL {
        let run = directory.appendingPathComponent(name)
        let path = directory.appendingPathComponent("\(name).yaml").path
        try distributedConfig(data: data, run: run, maxSteps: maxSteps, schedule: "constant", hidden: hidden, train: extra,
                              distributed: ", overlap: \(overlap), bucket_mb: \(bucketMB)")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let job = try MPIJob(workers: workers, arguments: ["train", path] + (resume ? ["--resume", "auto"] : []), configPath: path,
                             environment: ["COHORT_NODE_SUM": "mpi"]).wait()
        XCTAssertEqual(job.status, 0, job.error)
        return run.appendingPathComponent("checkpoints/\(maxSteps)/model.safetensors")
    }

    /// Each element is the same sum of two workers' values whatever the message it travels in.
    func testOverlapTrainsBitwiseTheWeightsOfOneAllreduceOnTwoWorkers() throws {
        let after = try train("after", workers: 2, overlap: false)
        let during = try train("during", workers: 2, overlap: true)
        XCTAssertEqual(try Data(contentsOf: after), try Data(contentsOf: during))
    }

    /// On one host the communication thread is not started for float32 gradients, which shared
    /// memory sums after backward; it is for bfloat16 ones, which travel as messages.
    func testNoCommunicationThreadBesideASharedMemorySum() throws {
        let config = try ConfigLoader.parse(distributedConfig(data: data, run: directory, maxSteps: 1), file: "c.yaml")
        let communicator = OneHostCommunicator()
        for (compression, expected) in [(GradientCompression.none, 0), (.bf16, 1)] {
            let model = try Model<Float>(config.model)
            let stepper = TrainingStep(model: model, optimizer: SGD(momentum: 0, dampening: 0, nesterov: false, weightDecay: 0,
                                                                    count: model.parameters.count),
                                       communicator: communicator, seed: 0, maxLocalBatch: 4)
            stepper.compression = compression
            communicator.duplicates = 0
            try stepper.overlapCommunication()
            XCTAssertEqual(communicator.duplicates, expected, "\(compression)")
        }
    }

    func testOverlapWithAccumulationTrainsBitwiseTheWeightsOfOneAllreduceOnTwoWorkers() throws {
        let after = try train("after", workers: 2, overlap: false, train: ", accumulate: 3")
        let during = try train("during", workers: 2, overlap: true, train: ", accumulate: 3")
        XCTAssertEqual(try Data(contentsOf: after), try Data(contentsOf: during))
    }

    /// 22,581 parameters, summed by a reduce-scatter and an allgather: on 3 and 6 workers in rank order (parts of 7,527;
    /// 3,763 or 3,764), on 4 by halving and doubling (parts of 5,645 or 5,646).
    func testScatteredAllreducesTrainTheWeightsOfOneWorker() throws {
        let one = try SafeTensors.read(path: try train("one", workers: 1, overlap: false, hidden: 512).path).tensors
        for (workers, overlap) in [(3, false), (4, true), (6, false)] {
            let name = "scattered\(workers)"
            let many = try SafeTensors.read(path: try train(name, workers: workers, overlap: overlap, hidden: 512, bucketMB: 1).path).tensors
            assertSameWeights(one, many, tolerance: 1e-5, "\(workers) workers through reduce-scatter and allgather against 1")
        }
    }

    /// Each element's sum depends on the number of workers only: one allreduce of the whole buffer
    /// and buckets of 2,565 to 18,944 values give bitwise the same weights, on 2, 3 and 4 workers.
    func testScatteredAllreduceTrainsBitwiseTheWeightsOfSmallBuckets() throws {
        for workers in 2...4 {
            let whole = try train("whole\(workers)", workers: workers, overlap: false, hidden: 512, bucketMB: 1)
            let buckets = try train("buckets\(workers)", workers: workers, overlap: true, hidden: 512, bucketMB: 0.01)
            XCTAssertEqual(try Data(contentsOf: whole), try Data(contentsOf: buckets), "\(workers) workers")
        }
    }

    func testOverlapOnThreeWorkersTrainsTheWeightsOfOne() throws {
        let one = try SafeTensors.read(path: try train("one", workers: 1, overlap: true).path).tensors
        let three = try SafeTensors.read(path: try train("three", workers: 3, overlap: true).path).tensors
        assertSameWeights(one, three, tolerance: 1e-5, "3 workers with overlap against 1")
    }

    /// The same buckets every step: a resumed run finishes bitwise.
    func testResumeWithOverlapIsBitwiseIdentical() throws {
        let straight = try train("straight", workers: 2, overlap: true)
        _ = try train("resumed", workers: 2, maxSteps: 9, overlap: true)
        XCTAssertEqual(try Data(contentsOf: straight), try Data(contentsOf: try train("resumed", workers: 2, overlap: true, resume: true)))
    }
}
