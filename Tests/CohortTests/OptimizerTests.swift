import Foundation
import XCTest
@testable import Cohort

/// The optimizers' rules on known values, their state in checkpoints, gradient clipping, and the
/// batch sizes of the three flavours of gradient descent (PyTorch agreement: PyTorchEquivalenceTests).
final class OptimizerTests: XCTestCase {
    /// Runs one step of `optimizer` on `parameters` (updated in place) with `gradients`.
    func step(_ optimizer: Optimizer, _ parameters: inout [Float], _ gradients: [Float], lr: Float) {
        parameters.withUnsafeMutableBufferPointer { p in
            gradients.withUnsafeBufferPointer { g in
                optimizer.step(parameters: p.baseAddress!, gradients: g.baseAddress!, count: p.count, lr: lr)
            }
        }
    }

    /// Adam's bias corrections make its first step lr * g / (|g| + eps'): lr times the sign of g,
    /// whatever the gradient's scale.
    func testAdamsFirstStepIsLearningRateTimesTheSignOfTheGradient() {
        let adam = Adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, amsgrad: false, count: 4)
        var p: [Float] = [1, 1, 1, 1]
        step(adam, &p, [1e-3, -5, 20, -1e-2], lr: 0.1)
        for (value, expected) in zip(p, [Float(0.9), 1.1, 0.9, 1.1]) { XCTAssertEqual(value, expected, accuracy: 1e-5) }
        XCTAssertEqual(adam.steps, 1)
    }

    /// AdamW shrinks the weight by the factor 1 - lr * weight_decay apart from the gradient; Adam's
    /// L2 decay goes through the moments, so with a zero gradient its first step is lr towards 0.
    func testAdamWDecaysTheWeightWhereAdamAddsTheDecayToTheGradient() {
        let adamw = AdamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.5, amsgrad: false, count: 1)
        var p: [Float] = [4]
        step(adamw, &p, [0], lr: 0.1)
        XCTAssertEqual(p[0], 4 * (1 - 0.1 * 0.5), accuracy: 1e-6)
        let adam = Adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.5, amsgrad: false, count: 1)
        var q: [Float] = [4]
        step(adam, &q, [0], lr: 0.1)
        XCTAssertEqual(q[0], 4 - 0.1, accuracy: 1e-5)
    }

    /// AMSGrad divides by the largest second moment seen: after a large gradient, a small one moves
    /// the weight less than plain Adam does.
    func testAMSGradKeepsTheLargestSecondMoment() {
        let plain = Adam(beta1: 0.9, beta2: 0.9, epsilon: 1e-8, weightDecay: 0, amsgrad: false, count: 1)
        let ams = Adam(beta1: 0.9, beta2: 0.9, epsilon: 1e-8, weightDecay: 0, amsgrad: true, count: 1)
        var a: [Float] = [0], b: [Float] = [0]
        for g: Float in [10] + Array(repeating: 0.1, count: 30) {
            step(plain, &a, [g], lr: 0.01)
            step(ams, &b, [g], lr: 0.01)
        }
        XCTAssertGreaterThan(b[0], a[0], "AMSGrad should have taken smaller steps")
        let max = ams.stateTensors().first { $0.name == "max_exp_avg_sq" }!.values[0]
        let last = ams.stateTensors().first { $0.name == "exp_avg_sq" }!.values[0]
        XCTAssertGreaterThan(max, last)
    }

    /// Adagrad's rate decays as lr / (1 + (t - 1) lr_decay) and its accumulator starts at
    /// initial_accumulator_value: step 2 with g = 1 moves by lr / (1 + d) * 1 / (sqrt(a + 2) + eps).
    func testAdagradAccumulatesFromItsInitialValueWithADecayingRate() {
        let adagrad = Adagrad(lrDecay: 0.5, weightDecay: 0, initialAccumulatorValue: 2, epsilon: 1e-10, count: 1)
        var p: [Float] = [0]
        step(adagrad, &p, [1], lr: 1)
        XCTAssertEqual(p[0], -1 / Float(3).squareRoot(), accuracy: 1e-6)
        step(adagrad, &p, [1], lr: 1)
        XCTAssertEqual(p[0], -1 / Float(3).squareRoot() - 1 / 1.5 / 2, accuracy: 1e-6)
    }

    /// Centred RMSprop divides by the standard deviation, not the root mean square: after one step
    /// of g = 1 with alpha = 0.9, s = 0.1 and a = 0.1, so by sqrt(0.1 - 0.01) = 0.3, not sqrt(0.1).
    func testCenteredRMSpropDividesByTheStandardDeviation() {
        let plain = RMSprop(alpha: 0.9, epsilon: 1e-8, weightDecay: 0, momentum: 0, centered: false, count: 1)
        let centered = RMSprop(alpha: 0.9, epsilon: 1e-8, weightDecay: 0, momentum: 0, centered: true, count: 1)
        var a: [Float] = [0], b: [Float] = [0]
        step(plain, &a, [1], lr: 0.01)
        step(centered, &b, [1], lr: 0.01)
        XCTAssertEqual(a[0], -0.01 / Float(0.1).squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(b[0], -0.01 / 0.3, accuracy: 1e-6)
    }

    func testClippingScalesALongGradientToMaxNormKeepingItsDirection() {
        var g: [Float] = [3, 0, -4]
        let norm = g.withUnsafeMutableBufferPointer { clipGradientNorm($0.baseAddress!, count: 3, maxNorm: 1) }
        XCTAssertEqual(norm, 5, accuracy: 1e-12)
        XCTAssertEqual(g[0], 0.6, accuracy: 1e-6)
        XCTAssertEqual(g[1], 0)
        XCTAssertEqual(g[2], -0.8, accuracy: 1e-6)
    }

    func testClippingLeavesAShortGradientUntouched() {
        var g: [Float] = [0.3, -0.4]
        let norm = g.withUnsafeMutableBufferPointer { clipGradientNorm($0.baseAddress!, count: 2, maxNorm: 1) }
        XCTAssertEqual(norm, 0.5, accuracy: 1e-7)
        XCTAssertEqual(g, [0.3, -0.4])
    }

    /// Every optimizer's state is in the checkpoint: 5 steps, a stop, and `--resume auto` give the
    /// same bytes as 9 steps straight (across an epoch boundary, with momentum, AMSGrad's maximum,
    /// the centred average, Adagrad's sum and the bias corrections' step count).
    func testResumeIsBitwiseIdenticalForEveryOptimizer() throws {
        let optimizers = [
            "{name: adam, lr: 0.01, amsgrad: true, weight_decay: 0.01}",
            "{name: adamw, lr: 0.01}",
            "{name: rmsprop, lr: 0.003, momentum: 0.9, centered: true}",
            "{name: adagrad, lr: 0.05, lr_decay: 0.01, initial_accumulator_value: 0.1}",
        ]
        for optimizer in optimizers {
            let straight = try temporaryDirectory(self), interrupted = try temporaryDirectory(self)
            _ = try Trainer(config: smallRun(in: straight, optimizer: optimizer), communicator: SoloCommunicator(), log: { _ in })
                .run(resume: .fresh)
            let first = Trainer(config: try smallRun(in: interrupted, optimizer: optimizer), communicator: SoloCommunicator(), log: { _ in })
            first.stopAfterStep = 5
            _ = try first.run(resume: .fresh)
            _ = try Trainer(config: smallRun(in: interrupted, optimizer: optimizer), communicator: SoloCommunicator(), log: { _ in })
                .run(resume: .auto)
            let model = "run/checkpoints/9/model.safetensors"
            XCTAssertEqual(try Data(contentsOf: straight.appendingPathComponent(model)),
                           try Data(contentsOf: interrupted.appendingPathComponent(model)), "\(optimizer): resumed weights differ")
            let state = try SafeTensors.read(path: straight.appendingPathComponent("run/checkpoints/9/optimizer.safetensors").path).tensors
            XCTAssertEqual(state["steps"]?.int64s(), [9], optimizer)
        }
    }

    func testOptimizerStateIsSavedUnderPyTorchsNames() throws {
        let expected: [(String, Set<String>)] = [
            ("{name: adam, lr: 0.01}", ["exp_avg", "exp_avg_sq", "steps"]),
            ("{name: adam, lr: 0.01, amsgrad: true}", ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "steps"]),
            ("{name: rmsprop, lr: 0.01}", ["square_avg", "steps"]),
            ("{name: rmsprop, lr: 0.01, momentum: 0.5, centered: true}", ["square_avg", "momentum_buffer", "grad_avg", "steps"]),
            ("{name: adagrad, lr: 0.01}", ["sum", "steps"]),
        ]
        for (optimizer, names) in expected {
            let directory = try temporaryDirectory(self)
            var config = try smallRun(in: directory, optimizer: optimizer)
            config.train.maxSteps = 2
            _ = try Trainer(config: config, communicator: SoloCommunicator(), log: { _ in }).run(resume: .fresh)
            let state = try SafeTensors.read(path: directory.appendingPathComponent("run/checkpoints/2/optimizer.safetensors").path).tensors
            XCTAssertEqual(Set(state.keys), names, optimizer)
        }
    }

    /// One sample per step trains (stochastic gradient descent) when batch norm has several values
    /// per channel; after a dense layer it would have one, which PyTorch refuses, and so do we.
    func testBatchOfOneIsRefusedOnlyWhereBatchNormWouldSeeOneValue() throws {
        let directory = try temporaryDirectory(self)
        var config = try smallRun(in: directory, optimizer: "{name: sgd, lr: 0.01}")
        config.train.batchSize = .samples(1)
        XCTAssertThrowsError(try Trainer(config: config, communicator: SoloCommunicator(), log: { _ in }).run(resume: .fresh)) { error in
            let m = (error as? CohortError)?.message ?? "\(error)"
            XCTAssertTrue(m.contains("train.batch_size: 1 leaves model.layers[6] (batchnorm) one value per feature"), m)
        }
        config.model.layers.remove(at: 6)
        let summary = try Trainer(config: config, communicator: SoloCommunicator(), log: { _ in }).run(resume: .fresh)
        XCTAssertEqual(summary.steps, 9)
        XCTAssertTrue(summary.lastLoss.isFinite)
    }

    func testFullBatchTakesTheWholeTrainingSetEachStep() throws {
        let directory = try temporaryDirectory(self)
        var lines: [String] = []
        var config = try smallRun(in: directory, optimizer: "{name: adam, lr: 0.01}")
        config.train.batchSize = .full
        config.train.maxSteps = 3
        _ = try Trainer(config: config, communicator: SoloCommunicator(), log: { lines.append($0) }).run(resume: .fresh)
        let plan = lines.first { $0.hasPrefix("training ") } ?? ""
        XCTAssertTrue(plan.contains("3 steps of 40 (1 per epoch)"), "\(lines)")
    }

    /// 40 samples of 6x6 in 4 classes, batches of 10 (4 steps an epoch), 9 steps, checkpoints every 3.
    func smallRun(in directory: URL, optimizer: String) throws -> TrainingConfig {
        let pair = try writeSyntheticData(in: directory, name: "train", count: 40, rows: 6, columns: 6, classes: 4, seed: 5)
        return try ConfigLoader.parse("""
            seed: 3
            data: {train: {images: \(pair.images), labels: \(pair.labels)}, shuffle: true}
            model:
              input: [1, 6, 6]
              layers:
                - conv2d: {out_channels: 3, kernel_size: 3, padding: 1, bias: false}
                - batchnorm: {}
                - relu: {}
                - maxpool2d: {kernel_size: 2}
                - flatten: {}
                - dense: {out_features: 12, bias: false}
                - batchnorm: {}
                - tanh: {}
                - dropout: {p: 0.2}
                - dense: {out_features: 4}
            optimizer: \(optimizer)
            train: {batch_size: 10, max_steps: 9}
            checkpoint: {dir: \(directory.appendingPathComponent("run").path), every_steps: 3}
            """, file: "inline.yaml")
    }

    /// A NaN in training blames the weight decay or the momentum only where they alone make the
    /// weights grow: SGD's heavy ball past lr x decay x (1 - dampening) = 2 (1 + momentum), AdamW's
    /// decoupled decay past lr x decay = 2; Adam, RMSprop and Adagrad bound the decay's term.
    func testADivergenceIsBlamedOnTheDecayOrMomentumOnlyWhereTheyAloneGrowTheWeights() {
        func cause(_ name: OptimizerName, lr: Double, decay: Double, momentum: Double = 0, dampening: Double = 0) -> String? {
            var config = OptimizerConfig.defaults(for: name, lr: lr)
            config.weightDecay = decay
            config.momentum = momentum
            config.dampening = dampening
            return config.divergenceCause
        }
        XCTAssertNil(cause(.sgd, lr: 0.1, decay: 5e-4, momentum: 0.9))
        XCTAssertNil(cause(.sgd, lr: 1, decay: 3.7, momentum: 0.9))
        XCTAssertEqual(cause(.sgd, lr: 1, decay: 3.8, momentum: 0.9), "lower optimizer.lr or optimizer.weight_decay: with lr 1.0, weight decay 3.8 alone grows the weights at every step")
        XCTAssertNil(cause(.sgd, lr: 1, decay: 4, momentum: 0.9, dampening: 0.5))
        var nesterov = OptimizerConfig.defaults(for: .sgd, lr: 1)
        (nesterov.momentum, nesterov.nesterov, nesterov.weightDecay) = (0.5, true, 1.4)
        XCTAssertNil(nesterov.divergenceCause)
        nesterov.weightDecay = 1.5
        XCTAssertNotNil(nesterov.divergenceCause, "Nesterov's bound: 2 (1 + m) / (1 + 2 m) = 1.5")
        XCTAssertNil(cause(.adamw, lr: 1e-3, decay: 1e-2))
        XCTAssertNotNil(cause(.adamw, lr: 0.1, decay: 20))
        XCTAssertNil(cause(.adam, lr: 1, decay: 1e6))
        XCTAssertNil(cause(.adagrad, lr: 1, decay: 1e6))
        XCTAssertEqual(cause(.rmsprop, lr: 0.01, decay: 0, momentum: 1), "lower optimizer.momentum below 1, where every update adds up without fading, and then optimizer.lr if it persists")
        XCTAssertNil(cause(.rmsprop, lr: 0.01, decay: 0, momentum: 0.99))
    }
}
