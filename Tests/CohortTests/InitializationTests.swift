import Foundation
import XCTest
@testable import Cohort

/// Each initialization scheme draws what its formula says (`torch.nn.init`'s), checked on large
/// weights drawn through their layers: a dense `[400, 300]` (fan_in 300, fan_out 400) and a conv
/// `[64, 32, 3, 3]` (fan_in = 32 * 3 * 3 = 288, fan_out = 64 * 3 * 3 = 576, as PyTorch computes them).
final class InitializationTests: XCTestCase {
    enum Shape: CaseIterable {
        case dense, conv
        var fanIn: Double { self == .dense ? 300 : 288 }
        var fanOut: Double { self == .dense ? 400 : 576 }
    }

    /// The weight and bias a layer of `shape` starts with under `initializer`, in Double.
    func draw(_ initializer: LayerInit, _ shape: Shape, seed: UInt64 = 7) throws -> (weight: [Double], bias: [Double]) {
        let layer: any Layer<Double> = switch shape {
        case .dense: try Dense<Double>(input: [300], outFeatures: 400, bias: true, initializer: initializer, index: 2)
        case .conv: try Conv2D<Double>(input: [32, 5, 5], outChannels: 64, kernel: 3, stride: 1, padding: 1, bias: true,
                                       initializer: initializer, index: 2)
        }
        return try weights(of: layer, seed: seed)
    }

    func weights(of layer: any Layer<Double>, seed: UInt64) throws -> (weight: [Double], bias: [Double]) {
        let shapes = layer.parameterShapes
        let total = shapes.reduce(0) { $0 + $1.count }
        let parameters = Buffer<Double>(count: total), gradients = Buffer<Double>(count: total)
        layer.bind(parameters: parameters.pointer, gradients: gradients.pointer)
        layer.initialize(seed: seed, layerIndex: 2)
        let all = Array(parameters.buffer)
        return (Array(all[0..<shapes[0].count]), Array(all[shapes[0].count...]))
    }

    enum Distribution { case normal, uniform }

    /// Sample mean and variance within 5 standard errors of `mean` and `variance`. The standard
    /// error of the variance is sqrt((mu4 - sigma^4) / n), with mu4 = 3 sigma^4 (normal) or
    /// 9/5 sigma^4 (uniform).
    func assertMoments(_ values: [Double], mean: Double, variance: Double, _ distribution: Distribution,
                       _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let n = Double(values.count)
        let sampleMean = values.reduce(0, +) / n
        let sampleVariance = values.reduce(0) { $0 + ($1 - sampleMean) * ($1 - sampleMean) } / (n - 1)
        let fourth = (distribution == .normal ? 3.0 : 9.0 / 5.0) * variance * variance
        XCTAssertEqual(sampleMean, mean, accuracy: 5 * (variance / n).squareRoot(), "\(what): mean", file: file, line: line)
        XCTAssertEqual(sampleVariance, variance, accuracy: 5 * ((fourth - variance * variance) / n).squareRoot(),
                       "\(what): variance \(sampleVariance), formula \(variance)", file: file, line: line)
    }

    func assertBounded(_ values: [Double], by bound: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let largest = values.map(abs).max() ?? 0
        XCTAssertLessThanOrEqual(largest, bound, "\(what): outside U(-b, b)", file: file, line: line)
        XCTAssertGreaterThan(largest, 0.99 * bound, "\(what): does not reach the bound", file: file, line: line)
    }

    func testFansAreComputedAsPyTorchDoes() {
        XCTAssertTrue(fans(of: [400, 300]) == (300, 400))
        XCTAssertTrue(fans(of: [64, 32, 3, 3]) == (288, 576))
    }

    /// PyTorch's default (kaiming_uniform_ with a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    /// variance 1 / (3 fan_in), for the weight and, with the weight's fan_in, the bias.
    func testPyTorchDefaultIsUniformWithVarianceOneThirdOverFanIn() throws {
        for shape in Shape.allCases {
            let (weight, bias) = try draw(LayerInit(), shape)
            assertMoments(weight, mean: 0, variance: 1 / (3 * shape.fanIn), .uniform, "\(shape) weight")
            assertBounded(weight, by: 1 / shape.fanIn.squareRoot(), "\(shape) weight")
            XCTAssertLessThanOrEqual(bias.map(abs).max()!, 1 / shape.fanIn.squareRoot(), "\(shape) bias")
            XCTAssertGreaterThan(Set(bias).count, bias.count / 2, "\(shape) bias is not drawn")
        }
    }

    /// uniform(bound b): variance b^2 / 3; normal(mean, std): that mean and std^2.
    func testUniformAndNormalHaveTheirStatedMoments() throws {
        for shape in Shape.allCases {
            let uniform = try draw(LayerInit(weight: .uniform(bound: 0.2)), shape).weight
            assertMoments(uniform, mean: 0, variance: 0.2 * 0.2 / 3, .uniform, "\(shape) uniform")
            assertBounded(uniform, by: 0.2, "\(shape) uniform")
            let normal = try draw(LayerInit(weight: .normal(mean: 0.3, std: 0.05)), shape).weight
            assertMoments(normal, mean: 0.3, variance: 0.05 * 0.05, .normal, "\(shape) normal")
        }
    }

    /// Glorot & Bengio (2010): variance gain^2 * 2 / (fan_in + fan_out); the uniform form's bound
    /// is gain * sqrt(6 / (fan_in + fan_out)).
    func testXavierVarianceIsTwoOverFanInPlusFanOut() throws {
        for shape in Shape.allCases {
            let glorot = 2 / (shape.fanIn + shape.fanOut)
            let uniform = try draw(LayerInit(weight: .xavierUniform(gain: 1)), shape).weight
            assertMoments(uniform, mean: 0, variance: glorot, .uniform, "\(shape) xavier_uniform")
            assertBounded(uniform, by: (3 * glorot).squareRoot(), "\(shape) xavier_uniform")
            let tanhGain = 5.0 / 3.0
            let normal = try draw(LayerInit(weight: .xavierNormal(gain: tanhGain)), shape).weight
            assertMoments(normal, mean: 0, variance: tanhGain * tanhGain * glorot, .normal, "\(shape) xavier_normal gain 5/3")
        }
    }

    /// He et al. (2015): variance 2 / fan_in, so that ReLU, which zeroes half its inputs, keeps the
    /// activations' scale; the uniform form's bound is sqrt(6 / fan_in).
    func testHeVarianceIsTwoOverFanIn() throws {
        for shape in Shape.allCases {
            let uniform = try draw(LayerInit(weight: .heUniform), shape).weight
            assertMoments(uniform, mean: 0, variance: 2 / shape.fanIn, .uniform, "\(shape) he_uniform")
            assertBounded(uniform, by: (6 / shape.fanIn).squareRoot(), "\(shape) he_uniform")
            let normal = try draw(LayerInit(weight: .heNormal), shape).weight
            assertMoments(normal, mean: 0, variance: 2 / shape.fanIn, .normal, "\(shape) he_normal")
        }
    }

    /// LeCun et al. (1998): variance 1 / fan_in.
    func testLeCunNormalVarianceIsOneOverFanIn() throws {
        for shape in Shape.allCases {
            let weight = try draw(LayerInit(weight: .lecunNormal), shape).weight
            assertMoments(weight, mean: 0, variance: 1 / shape.fanIn, .normal, "\(shape) lecun_normal")
        }
    }

    func testConstantFillsEveryValueAndBiasesStartAtZeroUnlessTold() throws {
        for shape in Shape.allCases {
            let (weight, bias) = try draw(LayerInit(weight: .constant(0.25)), shape)
            XCTAssertEqual(Set(weight), [0.25], "\(shape)")
            XCTAssertEqual(Set(bias), [0], "\(shape): an explicit weight init leaves the bias at 0")
            XCTAssertEqual(Set(try draw(LayerInit(weight: .heNormal, bias: .constant(0.1)), shape).bias), [0.1], "\(shape) bias_init")
        }
    }

    /// Batch norm's scale starts at 1 and its shift at 0 (PyTorch's defaults) unless `init:` and
    /// `bias_init:` say otherwise: a constant scale of 0 for a residual block's last batch norm
    /// (torchvision's `zero_init_residual`), a normal draw. `cohort`'s config check refuses what
    /// needs a fan (`UserErrorTests`).
    func testBatchNormScaleAndShiftTakeTheirInitializations() throws {
        func state(_ options: String) throws -> (scale: [Float], shift: [Float]) {
            let config = try ConfigLoader.parse("""
                data: {train: {images: none, labels: none}}
                model:
                  input: [2, 4, 4]
                  layers:
                    - conv2d: {out_channels: 64, kernel_size: 3, padding: 1}
                    - batchnorm: \(options)
                    - flatten: {}
                    - dense: {out_features: 3}
                optimizer: {name: sgd, lr: 0.1}
                train: {batch_size: 4, max_steps: 1}
                """, file: "inline.yaml")
            let model = try Model<Float>(config.model)
            model.initialize(seed: 3)
            let tensors = Dictionary(uniqueKeysWithValues: model.exportStateDict())
            return (try XCTUnwrap(tensors["1.weight"]).floats(), try XCTUnwrap(tensors["1.bias"]).floats())
        }
        let plain = try state("{}")
        XCTAssertEqual(Set(plain.scale), [1])
        XCTAssertEqual(Set(plain.shift), [0])
        let zero = try state("{init: {name: constant, value: 0}, bias_init: 0.5}")
        XCTAssertEqual(Set(zero.scale), [0])
        XCTAssertEqual(Set(zero.shift), [0.5])
        let drawn = try state("{init: {name: normal, mean: 1, std: 0.02}}").scale
        let mean = drawn.reduce(0, +) / Float(drawn.count)
        XCTAssertEqual(mean, 1, accuracy: 0.02)
        XCTAssertGreaterThan(Set(drawn).count, 60, "a normal draw gives every channel its own scale")
    }

    func testDrawsDependOnTheSeed() throws {
        XCTAssertNotEqual(try draw(LayerInit(weight: .heNormal), .dense, seed: 1).weight,
                          try draw(LayerInit(weight: .heNormal), .dense, seed: 2).weight)
        XCTAssertEqual(try draw(LayerInit(weight: .heNormal), .dense, seed: 1).weight,
                       try draw(LayerInit(weight: .heNormal), .dense, seed: 1).weight)
    }

    /// Saxe et al. (2014): the weight viewed as `[rows, fan_in]` has orthonormal rows when rows <=
    /// columns (W W^T = gain^2 I) and orthonormal columns otherwise (W^T W = gain^2 I).
    func testOrthogonalRowsOrColumnsAreOrthonormal() throws {
        func gram(_ w: [Double], rows: Int, columns: Int, ofRows: Bool) -> [[Double]] {
            let n = ofRows ? rows : columns, k = ofRows ? columns : rows
            func at(_ i: Int, _ j: Int) -> Double { ofRows ? w[i * columns + j] : w[j * columns + i] }
            return (0..<n).map { i in (0..<n).map { j in (0..<k).reduce(0) { $0 + at(i, $1) * at(j, $1) } } }
        }
        func assertIdentity(_ g: [[Double]], times scale: Double, _ what: String) {
            var worst = 0.0
            for i in g.indices { for j in g.indices { worst = max(worst, abs(g[i][j] - (i == j ? scale : 0))) } }
            XCTAssertLessThan(worst, 1e-10, what)
        }
        let wide = try weights(of: Dense<Double>(input: [96], outFeatures: 64, bias: false,
                                                 initializer: LayerInit(weight: .orthogonal(gain: 1)), index: 0), seed: 3).weight
        assertIdentity(gram(wide, rows: 64, columns: 96, ofRows: true), times: 1, "dense [64, 96]: W W^T")
        let tall = try weights(of: Dense<Double>(input: [64], outFeatures: 96, bias: false,
                                                 initializer: LayerInit(weight: .orthogonal(gain: 2)), index: 0), seed: 3).weight
        assertIdentity(gram(tall, rows: 96, columns: 64, ofRows: false), times: 4, "dense [96, 64] gain 2: W^T W")
        let conv = try weights(of: Conv2D<Double>(input: [8, 4, 4], outChannels: 16, kernel: 3, stride: 1, padding: 1, bias: false,
                                                  initializer: LayerInit(weight: .orthogonal(gain: 1)), index: 0), seed: 3).weight
        assertIdentity(gram(conv, rows: 16, columns: 72, ofRows: true), times: 1, "conv [16, 8, 3, 3] as [16, 72]: W W^T")
    }

    /// The symmetry problem: with a constant initialization every unit of a hidden layer computes
    /// the same function and receives the same gradient, so after training they are still identical
    /// (rows of its weight equal), however long it trains. Xavier's random draw breaks the tie.
    func testConstantInitializationLeavesEveryHiddenUnitIdenticalAfterTraining() throws {
        func trainedState(_ initializer: String) throws -> [String: SafeTensors.Tensor] {
            let directory = try temporaryDirectory(self)
            let pair = try writeSyntheticData(in: directory, name: "train", count: 64, rows: 6, columns: 6, classes: 4, seed: 9)
            let config = try ConfigLoader.parse("""
                seed: 4
                data: {train: {images: \(pair.images), labels: \(pair.labels)}}
                model:
                  input: [1, 6, 6]
                  layers:
                    - flatten: {}
                    - dense: {out_features: 8, init: \(initializer)}
                    - tanh: {}
                    - dense: {out_features: 8, init: \(initializer)}
                    - tanh: {}
                    - dense: {out_features: 4, init: \(initializer)}
                optimizer: {name: sgd, lr: 0.5, momentum: 0.9}
                train: {batch_size: 16, max_steps: 20}
                checkpoint: {dir: \(directory.appendingPathComponent("run").path)}
                """, file: "inline.yaml")
            _ = try Trainer(config: config, communicator: SoloCommunicator(), log: { _ in }).run(resume: .fresh)
            return try SafeTensors.read(path: directory.appendingPathComponent("run/checkpoints/20/model.safetensors").path).tensors
        }
        /// The largest difference between row 0 and any other row of a `[rows, columns]` tensor.
        func rowSpread(_ tensor: SafeTensors.Tensor) -> Double {
            let values = tensor.doubles(), columns = tensor.shape.count == 2 ? tensor.shape[1] : 1
            var worst = 0.0
            for i in values.indices { worst = max(worst, abs(values[i] - values[i % columns])) }
            return worst
        }
        let constant = try trainedState("{name: constant, value: 0.1}")
        let first = try XCTUnwrap(constant["1.weight"])
        XCTAssertGreaterThan(first.doubles().map { abs($0 - 0.1) }.max()!, 0.01, "the weights did not train")
        for name in ["1.weight", "1.bias", "3.weight", "3.bias"] {
            XCTAssertLessThan(rowSpread(try XCTUnwrap(constant[name])), 1e-6, "\(name): units of a constant-initialised layer diverged")
        }
        let xavier = try trainedState("xavier_uniform")
        XCTAssertGreaterThan(rowSpread(try XCTUnwrap(xavier["1.weight"])), 0.1, "xavier_uniform: units should differ")
    }
}
