import Foundation
import XCTest
@testable import Cohort

/// The config shown to users, checked against the code that reads it.
final class DocumentationTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The first ```yaml block under a heading of README.md.
    func yamlBlock(after heading: String) throws -> String {
        let text = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try XCTUnwrap(text.range(of: "\n\(heading)\n"), "README has no \(heading)")
        let start = try XCTUnwrap(text.range(of: "```yaml\n", range: section.upperBound..<text.endIndex))
        let end = try XCTUnwrap(text.range(of: "```", range: start.upperBound..<text.endIndex))
        return String(text[start.upperBound..<end.lowerBound])
    }

    func testTheREADMEConfigReferenceIsAValidConfig() throws {
        let text = try yamlBlock(after: "## Config").replacingOccurrences(of: "PATH", with: "file")
        let config = try ConfigLoader.parse(text, file: "README.md")
        XCTAssertNoThrow(try Model<Float>(config.model))
    }

    /// The example of the public contract (shared/spec/interface.md), copied word for word.
    func testTheSpecExampleConfigIsAValidConfig() throws {
        let spec = """
            seed: 5                          # every random choice (init, shuffle, dropout) derives from it
            data:
              train: {images: PATH, labels: PATH}     # IDX files, gzip-compressed or not (MNIST's own format)
              test:  {images: PATH, labels: PATH}     # optional for train; needed by eval
              scale: 0.00392156862745098               # pixel byte -> float multiplier (default 1/255)
              shuffle: true                            # default true; false = file order
            model:
              input: [1, 28, 28]             # [C, H, W] for images; [T, F] for sequences (rows as time steps)
              layers:                        # a list; layer i owns tensors named "i.<name>"
                - conv2d: {out_channels: 32, kernel_size: 3, stride: 1, padding: 1, bias: true}
                - batchnorm: {momentum: 0.1, eps: 1.0e-5}   # 2d after conv, 1d after dense: inferred
                - relu: {}
                - maxpool2d: {kernel_size: 2}               # stride defaults to kernel_size
                - flatten: {}
                - dense: {out_features: 128, bias: true}
                - dropout: {p: 0.5}
                - dense: {out_features: 10}
              init: {from: PATH.safetensors}  # optional: load initial weights (PyTorch names, see below)
            optimizer: {name: sgd, lr: 0.01, momentum: 0.9, nesterov: false, weight_decay: 0.0}
            train:
              batch_size: 64                 # the GLOBAL batch, split over the workers
              max_steps: 1000                # or epochs: 10 (one of the two)
              loss: cross_entropy
            checkpoint: {dir: runs/mnist-cnn, every_steps: 500}
            """
        let config = try ConfigLoader.parse(spec, file: "interface.md")
        let model = try Model<Float>(config.model)
        XCTAssertEqual(model.stateTensors().map(\.name), [
            "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
            "5.weight", "5.bias", "7.weight", "7.bias",
        ])
        XCTAssertEqual(config.train.maxSteps, 1000)
        XCTAssertEqual(config.checkpoint.everySteps, 500)
    }

    func testEveryShippedConfigIsValid() throws {
        let enumerator = FileManager.default.enumerator(at: root.appendingPathComponent("configs"), includingPropertiesForKeys: nil)
        var checked = 0
        while let url = enumerator?.nextObject() as? URL {
            guard url.pathExtension == "yaml" else { continue }
            let config = try ConfigLoader.load(path: url.path)
            XCTAssertNoThrow(try Model<Float>(config.model), url.lastPathComponent)
            for path in [config.data.train, config.data.test].compactMap({ $0 }).flatMap(\.paths) {
                XCTAssertTrue(FileManager.default.fileExists(atPath: path), "\(url.lastPathComponent): \(path)")
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 13)
    }
}
