import Foundation
import XCTest
@testable import Cohort

/// A residual net trained as users train it: on several workers (synchronised batch norm in both
/// branches) and across a resume.
final class ResidualTrainingTests: XCTestCase {
    var directory: URL!
    let fixture = fixtureDirectory.appendingPathComponent("resnet_nesterov.yaml").path

    override func setUpWithError() throws { directory = try temporaryDirectory(self) }

    func run(_ name: String) -> URL { directory.appendingPathComponent(name) }

    func weights(_ run: URL, step: Int) throws -> [String: SafeTensors.Tensor] {
        try SafeTensors.read(path: run.appendingPathComponent("checkpoints/\(step)/model.safetensors").path).tensors
    }

    func train(workers: Int, run: URL, steps: Int = 12) throws {
        let job = try MPIJob(workers: workers, arguments: ["train", fixture, "--set", "checkpoint.dir=\(run.path)",
                                                           "--set", "train.max_steps=\(steps)"], configPath: fixture).wait()
        XCTAssertEqual(job.status, 0, job.error)
        XCTAssertTrue(job.output.contains("world=\(workers)"), job.output)
    }

    /// The PyTorch fixture's 12 steps on 1, 2 and 3 workers (slices of 16, 8 + 8, 6 + 5 + 5).
    func testOneTwoAndThreeWorkersTrainPyTorchsWeights() throws {
        let expected = try SafeTensors.read(path: fixtureDirectory.appendingPathComponent("resnet_nesterov-expected.safetensors").path).tensors
        var results: [[String: SafeTensors.Tensor]] = []
        for workers in 1...3 {
            try train(workers: workers, run: run("world\(workers)"))
            results.append(try weights(run("world\(workers)"), step: 12))
        }
        assertSameWeights(expected, results[2], tolerance: 1e-4, "3 workers against PyTorch")
        assertSameWeights(results[0], results[1], tolerance: 1e-5, "2 workers against 1")
        assertSameWeights(results[0], results[2], tolerance: 1e-5, "3 workers against 1")
    }

    /// 17 steps, then a resume to 40: byte for byte the weights of 40 steps straight.
    func testResumeIsBitwiseIdentical() throws {
        func trainer(_ run: URL, steps: Int) throws -> Trainer {
            var config = try ConfigLoader.load(path: fixture)
            config.checkpoint.dir = run.path
            config.train.maxSteps = steps
            return Trainer(config: config, communicator: SoloCommunicator(), log: { _ in })
        }
        XCTAssertEqual(try trainer(run("straight"), steps: 40).run(resume: .fresh).steps, 40)
        XCTAssertEqual(try trainer(run("resumed"), steps: 17).run(resume: .fresh).steps, 17)
        let resumed = try trainer(run("resumed"), steps: 40).run(resume: .auto)
        XCTAssertEqual(resumed.startStep, 17)
        let a = try Data(contentsOf: run("straight").appendingPathComponent("checkpoints/40/model.safetensors"))
        let b = try Data(contentsOf: run("resumed").appendingPathComponent("checkpoints/40/model.safetensors"))
        XCTAssertEqual(a, b, "the resumed residual net differs from the uninterrupted one")
    }
}
