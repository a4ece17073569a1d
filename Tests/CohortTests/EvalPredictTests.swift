import Foundation
import XCTest
@testable import Cohort

/// `cohort eval`'s confusion matrix and `cohort predict`'s CSV.
final class EvalPredictTests: XCTestCase {
    func testConfusionMatrixCountsTrueAgainstPredictedLabels() {
        var matrix = ConfusionMatrix(classes: 3)
        let logits: [Float] = [5, 1, 0,    // true 0, predicted 0
                               0, 1, 2,    // true 0, predicted 2
                               0, 3, 1,    // true 1, predicted 1
                               2, 2, 1]    // true 2, predicted 0 (the first of equal ones)
        let labels: [Int32] = [0, 0, 1, 2]
        matrix.add(logits: logits, labels: labels, batch: 4)
        XCTAssertEqual(matrix.counts, [1, 0, 1,
                                       0, 1, 0,
                                       1, 0, 0])
        XCTAssertEqual(matrix.accuracy(of: 0), 0.5)
        XCTAssertEqual(matrix.accuracy(of: 1), 1)
        XCTAssertEqual(matrix.accuracy(of: 2), 0)
        XCTAssertEqual(matrix.total(of: 0), 2)
    }

    /// The matrix rows of `cohort eval`'s output: per true label, the predicted counts.
    func matrixRows(_ output: String, classes: Int) throws -> [[Int]] {
        let lines = output.split(separator: "\n").map(String.init)
        let header = try XCTUnwrap(lines.firstIndex { $0.contains("true\\pred") }, output)
        return try (0..<classes).map { truth in
            let fields = lines[header + 1 + truth].split(separator: " ").map(String.init)
            XCTAssertEqual(fields.first, "\(truth)")
            XCTAssertEqual(fields.count, 1 + classes + 2, "label, counts, samples, accuracy")
            return try fields[1...classes].map { try XCTUnwrap(Int($0)) }
        }
    }

    func trainedRun() throws -> URL {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory)
        let trained = try runCohort(["train", "c.yaml"], in: directory)
        XCTAssertEqual(trained.status, 0, trained.err)
        return directory
    }

    func testEvalPrintsAConfusionMatrixAndKeepsItsJSONLastLine() throws {
        let directory = try trainedRun()
        let result = try runCohort(["eval", "c.yaml", "--json"], in: directory)
        XCTAssertEqual(result.status, 0, result.err)
        let last = try XCTUnwrap(result.out.split(separator: "\n").last.map(String.init))
        XCTAssertTrue(last.hasPrefix("{\"loss\": "), last)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        XCTAssertEqual(Set(object.keys), ["loss", "accuracy", "samples"])
        let accuracy = try XCTUnwrap(object["accuracy"] as? Double)
        let rows = try matrixRows(result.out, classes: 4)
        XCTAssertEqual(rows.joined().reduce(0, +), 20, "each test sample counts once")
        let correct = (0..<4).map { rows[$0][$0] }.reduce(0, +)
        XCTAssertEqual(Double(correct) / 20, accuracy, accuracy: 1e-9)
        XCTAssertTrue(result.out.contains("per-class accuracy"), result.out)
    }

    /// `--checkpoint auto` past a `latest` naming no complete checkpoint says which one it takes,
    /// as `--resume auto` does (it had taken the newest silently).
    func testEvalPastADanglingLatestSaysWhichCheckpointItTakes() throws {
        let directory = try trainedRun()
        let checkpoints = directory.appendingPathComponent("run/checkpoints")
        try "999\n".write(to: checkpoints.appendingPathComponent("latest"), atomically: true, encoding: .utf8)
        let result = try runCohort(["eval", "c.yaml"], in: directory)
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertEqual(result.err, "note: \(checkpoints.path)/latest names step 999, which has no complete checkpoint; taking the newest complete checkpoint, \(checkpoints.path)/20 (pass --checkpoint DIR to choose another)\n")
        XCTAssertTrue(result.out.hasPrefix("checkpoint \(checkpoints.path)/20: test loss "), result.out)
    }

    func testEvalMatrixUnderMPIIsSummedOverTheWorkers() throws {
        let directory = try trainedRun()
        let alone = try runCohort(["eval", "c.yaml"], in: directory)
        XCTAssertEqual(alone.status, 0, alone.err)
        let path = directory.appendingPathComponent("c.yaml").path
        let job = try MPIJob(workers: 3, arguments: ["eval", path, "--checkpoint", directory.appendingPathComponent("run/checkpoints/20").path],
                             configPath: path)
        let together = job.wait()
        XCTAssertEqual(together.status, 0, together.error)
        XCTAssertEqual(try matrixRows(together.output, classes: 4), try matrixRows(alone.out, classes: 4))
    }

    func testPredictWritesOneCSVLinePerImage() throws {
        let directory = try trainedRun()
        let result = try runCohort(["predict", "c.yaml", "test-images.idx"], in: directory)
        XCTAssertEqual(result.status, 0, result.err)
        let lines = result.out.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "index,label,p0,p1,p2,p3")
        XCTAssertEqual(lines.count, 21)
        let truth = try IDXFile(path: directory.appendingPathComponent("test-labels.idx").path).bytes
        var correct = 0
        for (row, line) in lines.dropFirst().enumerated() {
            let fields = line.split(separator: ",").map(String.init)
            XCTAssertEqual(fields.count, 6)
            XCTAssertEqual(fields[0], "\(row)")
            let label = try XCTUnwrap(Int(fields[1]))
            let probabilities = try fields[2...].map { try XCTUnwrap(Double($0)) }
            XCTAssertEqual(probabilities.reduce(0, +), 1, accuracy: 1e-5)
            XCTAssertEqual(probabilities.firstIndex(of: probabilities.max()!), label)
            if label == Int(truth[row]) { correct += 1 }
        }
        let evaluated = try runCohort(["eval", "c.yaml", "--json"], in: directory)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(evaluated.out.split(separator: "\n").last!.utf8)) as? [String: Any])
        XCTAssertEqual(Double(correct) / 20, try XCTUnwrap(json["accuracy"] as? Double), accuracy: 1e-9,
                       "predict and eval see the same model and inputs")
    }

    func testPredictWritesToAFile() throws {
        let directory = try trainedRun()
        let toStdout = try runCohort(["predict", "c.yaml", "test-images.idx", "--checkpoint", "run/checkpoints/20"], in: directory)
        let toFile = try runCohort(["predict", "c.yaml", "test-images.idx", "--output", "p.csv"], in: directory)
        XCTAssertEqual(toFile.status, 0, toFile.err)
        XCTAssertEqual(toFile.out, "")
        XCTAssertEqual(try String(contentsOf: directory.appendingPathComponent("p.csv"), encoding: .utf8), toStdout.out)
    }

    /// A checkpoint whose weights overflow float32 at inference (edited, its manifest rewritten; a
    /// negative running_var, the first way found, is now refused as it loads) makes outputs that
    /// are not finite: eval reported the accuracy of an argmax over NaN (every sample class 0) and
    /// predict wrote -nan.
    func testNaNOutputsAreAnErrorNotAResult() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 1)
        let trained = try runCohort(["train", "c.yaml"], in: directory)
        XCTAssertEqual(trained.status, 0, trained.err)
        let store = CheckpointStore(runDirectory: directory.appendingPathComponent("run").path, keep: 10)
        let checkpoint = try XCTUnwrap(try store.latestDirectory())
        var files = try CheckpointStore.readVerified(checkpoint)
        var tensors = try SafeTensors.decode(XCTUnwrap(files[TrainingCheckpoint.modelFile]), name: "m").tensors
        let weight = try XCTUnwrap(tensors["1.weight"])
        tensors["1.weight"] = SafeTensors.Tensor(floats: [Float](repeating: 3e38, count: weight.count), shape: weight.shape)
        files[TrainingCheckpoint.modelFile] = try SafeTensors.encode(tensors.sorted { $0.key < $1.key })
        try store.write(step: try XCTUnwrap(Int(checkpoint.lastPathComponent)), files: files.map { ($0.key, $0.value) })
        let evaluated = try runCohort(["eval", "c.yaml", "--json"], in: directory)
        XCTAssertEqual(evaluated.status, 1)
        XCTAssertTrue(evaluated.err.hasSuffix("the model's outputs on data.test (\(directory.path)/test-images.idx) are NaN or infinite, so its accuracy means nothing (its weights or batch norms' running statistics, values that overflow float32 say, do not make a model)\n"), evaluated.err)
        let predicted = try runCohort(["predict", "c.yaml", "test-images.idx"], in: directory)
        XCTAssertEqual(predicted.status, 1)
        XCTAssertEqual(predicted.err, "error: \(checkpoint.path): the model's outputs on test-images.idx are NaN or infinite (first on sample 0), so it predicts nothing (its weights or batch norms' running statistics, values that overflow float32 say, do not make a model)\n")
        XCTAssertEqual(predicted.out, "")
        let inspected = try runCohort(["inspect", "c.yaml"], in: directory)
        XCTAssertEqual(inspected.status, 1)
        XCTAssertTrue(inspected.err.hasPrefix("error: \(checkpoint.path): the model's outputs on data.test (\(directory.path)/test-images.idx) are NaN or infinite (first on sample 0), so there is nothing to picture"), inspected.err)
    }

    /// Inference on a checkpoint runs in batches of up to 256 that fit the memory budget as
    /// training counts it (a deep ResNet's eval, predict and inspect at 256 had ended with a failed
    /// allocation under a ulimit its training passed), and refuses where one sample does not fit;
    /// inspect, which keeps every layer's activations, counts training's buffers.
    func testInferenceBatchesFitTheMemoryBudget() throws {
        let model = try Model<Float>(layers: [Dense<Float>(input: [100], outFeatures: 50, bias: true, initializer: LayerInit(), index: 0),
                                              Activation<Float>(.tanh, input: [50]),
                                              Dense<Float>(input: [50], outFeatures: 10, bias: true, initializer: LayerInit(), index: 2)],
                                     inputShape: [100])
        let perSample = 2 * model.inferenceBytes(maxBatch: 1)
        XCTAssertLessThan(model.inferenceBytes(maxBatch: 1), model.activationBytes(maxBatch: 1))
        func budget(_ samples: Double) -> MemoryBudget { MemoryBudget(bytes: samples * perSample / 0.8, description: "a test's") }
        XCTAssertEqual(try model.inferenceBatch(upTo: 256, budget: budget(1e6)), 256)
        XCTAssertEqual(try model.inferenceBatch(upTo: 256, budget: budget(40.5)), 40)
        XCTAssertEqual(try model.inferenceBatch(upTo: 256, budget: budget(1)), 1)
        XCTAssertThrowsError(try model.inferenceBatch(upTo: 256, budget: budget(0.5))) {
            XCTAssertEqual(($0 as? CohortError)?.message, "model.layers: the activations of one sample need about 0 MB, more than 80 % of a test's; make the model smaller (fewer or narrower layers, a smaller model.input)")
        }
        let keeping = 2 * model.activationBytes(maxBatch: 1) / perSample
        XCTAssertEqual(try model.inferenceBatch(upTo: 256, keepingActivations: true, budget: budget(40.5 * keeping)), 40)
    }

    func testPredictErrorsAreOneLineNamingTheFile() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory)
        let noCheckpoint = try runCohort(["predict", "c.yaml", "test-images.idx"], in: directory)
        XCTAssertEqual(noCheckpoint.status, 1)
        XCTAssertEqual(noCheckpoint.err, "error: \(directory.appendingPathComponent("run/checkpoints").path): no checkpoint to predict with (train first, or pass --checkpoint DIR)\n")
        let missingDirectory = try runCohort(["predict", "c.yaml", "test-images.idx", "--checkpoint", "nowhere"], in: directory)
        XCTAssertEqual(missingDirectory.status, 1)
        XCTAssertTrue(missingDirectory.err.hasPrefix("error: ") && missingDirectory.err.contains("nowhere"), missingDirectory.err)
        XCTAssertEqual(missingDirectory.err.split(separator: "\n").count, 1)

        try writeIDX([UInt8](repeating: 7, count: 3 * 25), dimensions: [3, 5, 5], to: directory.appendingPathComponent("big.idx"))
        let wrongSize = try runCohort(["predict", "c.yaml", "big.idx"], in: directory)
        XCTAssertEqual(wrongSize.status, 1)
        XCTAssertEqual(wrongSize.err, "error: big.idx: images are [5, 5] (25 values) but model.input [1, 4, 4] needs 16\n")
        let labels = try runCohort(["predict", "c.yaml", "test-labels.idx"], in: directory)
        XCTAssertEqual(labels.err, "error: test-labels.idx: expected images [count, rows, columns], got [20] (is this a labels file?)\n")
        let absent = try runCohort(["predict", "c.yaml", "absent.idx"], in: directory)
        XCTAssertEqual(absent.err, "error: absent.idx: no such file\n")
    }
}
