import Foundation
import XCTest
@testable import Cohort

/// Augmentation draws from (seed, epoch, sample index) only: 1, 2 and 3 workers train the same
/// weights with it, and a resumed run is bitwise the uninterrupted one.
final class AugmentedTrainingTests: XCTestCase {
    var data: IDXPair!
    var directory: URL!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self)
        data = try writeSyntheticData(in: directory, name: "train", count: 600, rows: 6, columns: 6, classes: 5, seed: 4)
    }

    /// The distributed tests' model (batch norm, dropout, shuffle; 12 steps per epoch), augmented and normalised.
    func config(_ name: String, maxSteps: Int, augment: Bool = true) throws -> (path: String, run: URL) {
        let run = directory.appendingPathComponent(name)
        let path = directory.appendingPathComponent("\(name).yaml").path
        let augmentation = augment ? "\n  augment: {random_crop: {padding: 2}, horizontal_flip: 0.5}" : ""
        let text = distributedConfig(data: data, run: run, maxSteps: maxSteps, schedule: "constant")
            .replacingOccurrences(of: "data: {train: {images: \(data.images), labels: \(data.labels)}, shuffle: true}", with: """
                data:
                  train: {images: \(data.images), labels: \(data.labels)}
                  normalize: {mean: [0.25], std: [0.2]}\(augmentation)
                """)
        precondition(text.contains("normalize"))
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, run)
    }

    func weights(_ run: URL, step: Int) throws -> [String: SafeTensors.Tensor] {
        try SafeTensors.read(path: run.appendingPathComponent("checkpoints/\(step)/model.safetensors").path).tensors
    }

    func testOneTwoAndThreeWorkersTrainTheSameWeightsWithAugmentation() throws {
        var results: [[String: SafeTensors.Tensor]] = []
        for workers in 1...3 {
            let c = try config("world\(workers)", maxSteps: 20)
            let job = try MPIJob(workers: workers, arguments: ["train", c.path], configPath: c.path).wait()
            XCTAssertEqual(job.status, 0, job.error)
            XCTAssertTrue(job.output.contains("world=\(workers)"), job.output)
            results.append(try weights(c.run, step: 20))
        }
        assertSameWeights(results[0], results[1], tolerance: 1e-5, "2 workers against 1")
        assertSameWeights(results[0], results[2], tolerance: 1e-5, "3 workers against 1")
    }

    /// Stopped in the second epoch (step 15) and resumed: the same bytes as straight through, and
    /// not those of a run without augmentation (so the augmentation did something).
    func testAResumedAugmentedRunIsBitwiseTheUninterruptedOne() throws {
        func train(_ c: (path: String, run: URL), resume: ResumeMode = .fresh, stopAfter: Int? = nil) throws {
            let trainer = Trainer(config: try ConfigLoader.load(path: c.path), communicator: SoloCommunicator(), log: { _ in })
            trainer.stopAfterStep = stopAfter
            _ = try trainer.run(resume: resume)
        }
        let straight = try config("straight", maxSteps: 30)
        try train(straight)
        let stopped = try config("stopped", maxSteps: 30)
        try train(stopped, stopAfter: 15)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stopped.run.appendingPathComponent("checkpoints/30").path))
        try train(stopped, resume: .auto)
        let model = "checkpoints/30/model.safetensors"
        XCTAssertEqual(try Data(contentsOf: straight.run.appendingPathComponent(model)),
                       try Data(contentsOf: stopped.run.appendingPathComponent(model)))
        let plain = try config("plain", maxSteps: 30, augment: false)
        try train(plain)
        XCTAssertNotEqual(try Data(contentsOf: straight.run.appendingPathComponent(model)),
                          try Data(contentsOf: plain.run.appendingPathComponent(model)))
    }
}
