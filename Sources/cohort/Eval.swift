import ArgumentParser
import Cohort
import Foundation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a checkpoint on data.test in inference mode (running statistics, no dropout).",
        discussion: """
            Examples:
              cohort eval configs/mnist-cnn.yaml
              cohort eval configs/mnist-cnn.yaml --checkpoint runs/mnist-cnn/checkpoints/750 --json
            """)

    @Argument(help: "The YAML config of the run.")
    var config: String

    @Option(help: ArgumentHelp("'auto' (the newest checkpoint under checkpoint.dir) or a checkpoint directory.", valueName: "auto|DIR"))
    var checkpoint = "auto"

    @Flag(help: "End with one JSON line: {\"loss\": ..., \"accuracy\": ..., \"samples\": ...}.")
    var json = false

    @OptionGroup var overrides: ConfigOverrides

    func run() throws {
        runWorker { communicator in
            let config = try ConfigLoader.load(path: config, overrides: overrides.parsed)
            let model = try Model<Float>.built(from: config)
            guard let testFiles = config.data.test else {
                throw CohortError("\(config.sourcePath): data.test: missing: eval needs test data")
            }
            let transform = try InputTransform(config.data, inputShape: model.inputShape, seed: config.seed, file: config.sourcePath)
            let test = try Dataset(testFiles, transform: transform, classes: model.classes, role: "data.test")
            let directory = try loadCheckpoint(checkpoint, into: model, config: config, purpose: "evaluate", communicator: communicator)
            try communicator.completeSetup()
            let result = try Evaluator.evaluate(model: model, data: test, communicator: communicator)
            guard result.loss.isFinite else {
                throw CohortError("\(directory.path): the model's outputs on \(testFiles.described(as: "data.test")) are NaN or infinite, so its accuracy means nothing (\(Predictor.nonFiniteCause))")
            }
            guard communicator.isCoordinator else { return 0 }
            test.images.notes(transform, scale: config.data.scale).forEach(printError)
            var lines = [String(format: "checkpoint %@: test loss %.4f accuracy %.4f (%d samples)",
                                directory.path, result.loss, result.accuracy, result.samples)]
            lines += ConfusionTable.lines(result.confusion)
            if json {
                lines.append("{\"loss\": \(jsonNumber(result.loss)), \"accuracy\": \(jsonNumber(result.accuracy)), \"samples\": \(result.samples)}")
            }
            try printResult(lines.map { $0 + "\n" }.joined(), what: "the evaluation")
            return 0
        }
    }
}

/// `value` with 6 decimals, or null: JSON has no NaN or infinity.
private func jsonNumber(_ value: Double) -> String {
    value.isFinite ? String(format: "%.6f", value) : "null"
}
