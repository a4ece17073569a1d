import ArgumentParser
import Cohort
import Foundation

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pictures of what a checkpoint's model learned: filters, feature maps, favourite and misclassified samples.",
        discussion: """
            Writes PNG images and an index.html that shows them (open it in a
            browser; no server needed): the filters of the first convolution, the
            feature maps of every convolution for a few test samples, the test
            samples that activate each channel of the last convolution most, the
            misclassified test samples, and for a recurrent model its hidden state
            over the time steps. The model runs in inference mode on data.test.

            Examples:
              cohort inspect configs/mnist-cnn.yaml
              cohort inspect configs/mnist-lstm.yaml --checkpoint runs/mnist-lstm/checkpoints/620 --output /tmp/lstm
            """)

    @Argument(help: "The YAML config of the run.")
    var config: String

    @Option(help: ArgumentHelp("'auto' (the newest checkpoint under checkpoint.dir) or a checkpoint directory.", valueName: "auto|DIR"))
    var checkpoint = "auto"

    @Option(help: ArgumentHelp("Where to write the pictures and index.html (default: <checkpoint.dir>/inspect).", valueName: "DIR"))
    var output: String?

    @OptionGroup var overrides: ConfigOverrides

    func run() throws {
        runWorker { communicator in
            let config = try ConfigLoader.load(path: config, overrides: overrides.parsed)
            let model = try Model<Float>.built(from: config)
            let transform = try InputTransform(config.data, inputShape: model.inputShape, seed: config.seed, file: config.sourcePath)
            let test = try config.data.test.map { try Dataset($0, transform: transform, classes: model.classes, role: "data.test") }
            let directory = try loadCheckpoint(checkpoint, into: model, config: config, purpose: "inspect", communicator: communicator)
            try communicator.completeSetup()
            // One process draws the pictures; under mpirun the other workers only wait.
            guard communicator.isCoordinator else { return 0 }
            guard output?.isEmpty != true else { throw CohortError("--output: expected a directory for the page, got an empty string") }
            let outputURL = URL(fileURLWithPath: output ?? URL(fileURLWithPath: config.checkpoint.dir).appendingPathComponent("inspect").path)
            let name = URL(fileURLWithPath: config.sourcePath).lastPathComponent
            let page: InspectPage
            do {
                page = try Inspector.run(model: model, test: test, output: outputURL, title: "cohort inspect \(name)",
                                         summary: "Config \(config.sourcePath), checkpoint \(directory.path), model input \(model.inputShape), \(model.layers.count) layers.")
            } catch let error as Predictor.NonFiniteOutputs {
                throw CohortError(error.message(checkpoint: directory.path, data: config.data.test.map { $0.described(as: "data.test") } ?? "data.test", consequence: "there is nothing to picture"))
            }
            printLine("inspect: \(page.files.count) picture\(page.files.count == 1 ? "" : "s") in \(outputURL.appendingPathComponent("index.html").path) world=\(communicator.worldSize)")
            return 0
        }
    }
}
