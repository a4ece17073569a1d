import ArgumentParser
import Cohort
import Foundation

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict the class of each image of an IDX or .npy file with a checkpoint, in inference mode.",
        discussion: """
            Writes CSV with a header: the image's index in the file (from 0), the
            predicted label and the probability of each class (the softmax of the
            logits), one line per image. Pixels are scaled by data.scale and
            normalised by data.normalize, as in evaluation (no augmentation).

            Examples:
              cohort predict configs/mnist-cnn.yaml images.idx
              cohort predict configs/mnist-cnn.yaml images.idx.gz --output p.csv
              cohort predict configs/mnist-cnn.yaml images.idx --checkpoint DIR
              cohort predict configs/mnist-cnn.yaml x_test.npy
            """)

    @Argument(help: "The YAML config of the run (the model and checkpoint.dir).")
    var config: String

    @Argument(help: ArgumentHelp("IDX (gzip-compressed or not) or .npy file of images, each of the model's input size.", valueName: "images.idx"))
    var images: String

    @Option(help: ArgumentHelp("'auto' (the newest checkpoint under checkpoint.dir) or a checkpoint directory.", valueName: "auto|DIR"))
    var checkpoint = "auto"

    @Option(help: ArgumentHelp("Write the CSV to FILE instead of standard output.", valueName: "FILE"))
    var output: String?

    @OptionGroup var overrides: ConfigOverrides

    func run() throws {
        runWorker { communicator in
            let config = try ConfigLoader.load(path: config, overrides: overrides.parsed)
            let model = try Model<Float>.built(from: config)
            let file = try Predictor.readImages(path: images, inputShape: model.inputShape)
            let transform = try InputTransform(config.data, inputShape: model.inputShape, seed: config.seed, file: config.sourcePath)
            let directory = try loadCheckpoint(checkpoint, into: model, config: config, purpose: "predict with", communicator: communicator)
            try communicator.completeSetup()
            // One process is plenty for inference on a file; under mpirun the others only wait.
            guard communicator.isCoordinator else { return 0 }
            var isDirectory: ObjCBool = false
            if output?.isEmpty == true { throw CohortError("--output: expected the name of the CSV file to write, got an empty string") }
            if let output, FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory), isDirectory.boolValue {
                throw CohortError("\(output): --output: is a directory, expected the name of the CSV file to write")
            }
            var csv = "index,label," + (0..<model.classes).map { "p\($0)" }.joined(separator: ",") + "\n"
            do {
                try Predictor.predict(model: model, images: file, transform: transform) { index, label, probabilities in
                    csv += "\(index),\(label)," + probabilities.map { String(format: "%.6f", $0) }.joined(separator: ",") + "\n"
                }
            } catch let error as Predictor.NonFiniteOutputs {
                throw CohortError(error.message(checkpoint: directory.path, data: images, consequence: "it predicts nothing"))
            }
            // After the images passed their checks: a note beside an error about them says nothing.
            file.notes(transform, scale: config.data.scale).forEach(printError)
            if let output {
                try writeResult(Data(csv.utf8), to: output, what: "the predictions")
            } else {
                try printResult(csv, what: "the predictions")
            }
            return 0
        }
    }
}
