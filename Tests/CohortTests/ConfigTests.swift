import XCTest
@testable import Cohort

/// The config reader: every mistake is one message naming the file and the key's path.
final class ConfigTests: XCTestCase {
    let valid = """
        seed: 5
        data:
          train: {images: train-images.idx, labels: train-labels.idx}
          shuffle: false
        model:
          input: [1, 28, 28]
          layers:
            - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
            - batchnorm: {momentum: 0.1, eps: 1.0e-5}
            - relu: {}
            - maxpool2d: {kernel_size: 2}
            - flatten: {}
            - dense: {out_features: 10, init: xavier_uniform}
        optimizer: {name: sgd, lr: 0.01, momentum: 0.9, nesterov: true, weight_decay: 0.0}
        train: {batch_size: 64, max_steps: 100}
        checkpoint: {dir: runs/x, every_steps: 50}
        """

    func message(_ text: String) -> String {
        do {
            _ = try ConfigLoader.parse(text, file: "c.yaml")
            return "no error"
        } catch {
            return (error as? CohortError)?.message ?? "not a CohortError: \(error)"
        }
    }

    func testValidConfigIsRead() throws {
        let config = try ConfigLoader.parse(valid, file: "c.yaml")
        XCTAssertEqual(config.seed, 5)
        XCTAssertEqual(config.model.input, [1, 28, 28])
        XCTAssertEqual(config.model.layers.count, 6)
        XCTAssertEqual(config.model.layers[3], .pool(.max, kernel: 2, stride: 2, padding: 0))
        XCTAssertEqual(config.model.layers[5], .dense(outFeatures: 10, bias: true, initializer: LayerInit(weight: .xavierUniform(gain: 1))))
        XCTAssertEqual(config.optimizer.momentum, 0.9)
        XCTAssertTrue(config.optimizer.nesterov)
        XCTAssertEqual(config.train.batchSize, .samples(64))
        XCTAssertEqual(config.train.maxSteps, 100)
        XCTAssertFalse(config.data.shuffle)
        XCTAssertEqual(config.checkpoint.everySteps, 50)
    }

    func testUnknownKeyIsNamedWithItsPath() {
        let text = valid.replacingOccurrences(of: "lr: 0.01", with: "learning_rate: 0.01, lr: 0.01")
        XCTAssertTrue(message(text).contains("c.yaml: optimizer.learning_rate: unknown key"), message(text))
    }

    func testUnknownKeyInsideALayerIsNamed() {
        let text = valid.replacingOccurrences(of: "kernel_size: 3, padding: 1", with: "kernel: 3, padding: 1")
        XCTAssertTrue(message(text).contains("model.layers[0].conv2d.kernel"), message(text))
    }

    func testOutOfRangeValuesAreRefused() {
        XCTAssertTrue(message(valid.replacingOccurrences(of: "lr: 0.01", with: "lr: -0.1")).contains("optimizer.lr: must be > 0, got -0.1"))
        XCTAssertTrue(message(valid.replacingOccurrences(of: "batch_size: 64", with: "batch_size: 0")).contains("train.batch_size"))
        XCTAssertTrue(message(valid.replacingOccurrences(of: "out_channels: 8", with: "out_channels: 0")).contains("model.layers[0].conv2d.out_channels"))
        XCTAssertTrue(message(valid + "\n".replacingOccurrences(of: "x", with: "")).contains("no error"))
    }

    func testWrongTypeIsRefused() {
        let m = message(valid.replacingOccurrences(of: "momentum: 0.9", with: "momentum: fast"))
        XCTAssertTrue(m.contains("optimizer.momentum: expected a number, got 'fast'"), m)
    }

    func testUnknownNamesAreRefused() {
        XCTAssertTrue(message(valid.replacingOccurrences(of: "- relu: {}", with: "- swish: {}")).contains("unknown layer 'swish'"))
        XCTAssertTrue(message(valid.replacingOccurrences(of: "init: xavier_uniform", with: "init: glorot")).contains("unknown initialization 'glorot'"))
        XCTAssertTrue(message(valid.replacingOccurrences(of: "name: sgd", with: "name: lbfgs")).contains("optimizer.name: unknown optimizer 'lbfgs'"))
    }

    func testYAMLSyntaxErrorGivesTheLine() {
        let m = message("seed: 5\ndata: {train: [\n")
        XCTAssertTrue(m.contains("c.yaml: YAML syntax error"), m)
        XCTAssertTrue(m.contains("line"), m)
        XCTAssertFalse(m.contains("\n"), "one line: \(m)")
    }

    func testMaxStepsAndEpochsAreExclusive() {
        XCTAssertTrue(message(valid.replacingOccurrences(of: "max_steps: 100", with: "max_steps: 100, epochs: 2")).contains("not both"))
        XCTAssertTrue(message(valid.replacingOccurrences(of: "max_steps: 100", with: "loss: cross_entropy")).contains("max_steps"))
    }

    func testFullBatchIsBatchGradientDescent() throws {
        let config = try ConfigLoader.parse(valid.replacingOccurrences(of: "batch_size: 64", with: "batch_size: full"), file: "c.yaml")
        XCTAssertEqual(config.train.batchSize, .full)
    }

    func testMissingConfigFileIsNamed() {
        XCTAssertThrowsError(try ConfigLoader.load(path: "/nonexistent/x.yaml")) { error in
            XCTAssertEqual((error as? CohortError)?.message, "/nonexistent/x.yaml: config file not found")
        }
    }

    func testShapesThatDoNotChainNameTheLayer() throws {
        let text = valid.replacingOccurrences(of: "    - flatten: {}\n", with: "")
        let config = try ConfigLoader.parse(text, file: "c.yaml")
        XCTAssertThrowsError(try Model<Float>(config.model)) { error in
            let m = (error as? CohortError)?.message ?? ""
            XCTAssertTrue(m.contains("model.layers[4] (dense)"), m)
            XCTAssertTrue(m.contains("[8, 14, 14]"), m)
        }
    }

    func testKernelLargerThanInputNamesTheLayer() throws {
        let text = valid.replacingOccurrences(of: "input: [1, 28, 28]", with: "input: [1, 1, 1]")
        let config = try ConfigLoader.parse(text, file: "c.yaml")
        XCTAssertThrowsError(try Model<Float>(config.model)) { error in
            XCTAssertTrue(((error as? CohortError)?.message ?? "").contains("model.layers[3] (maxpool2d)"))
        }
    }
}
