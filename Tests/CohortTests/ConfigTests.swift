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

    /// A window's side may be written as PyTorch writes it, two equal integers; a rectangle, or a
    /// list of another length, is an error naming the key.
    func testAWindowSideTakesTwoEqualIntegersAsPyTorchWritesThem() throws {
        let pairs = valid.replacingOccurrences(of: "kernel_size: 3, padding: 1", with: "kernel_size: [3, 3], stride: [1, 1], padding: [1, 1]")
            .replacingOccurrences(of: "maxpool2d: {kernel_size: 2}", with: "maxpool2d: {kernel_size: [2, 2], stride: [2, 2]}")
        XCTAssertEqual(try ConfigLoader.parse(pairs, file: "c.yaml").model.layers, try ConfigLoader.parse(valid, file: "c.yaml").model.layers)
        assertMessages([
            ("kernel_size: 3,", "kernel_size: [3, 5],", "model.layers[0].conv2d.kernel_size: [3, 5] is a rectangle; Cohort's windows are square: give one integer"),
            ("padding: 1", "padding: [1]", "model.layers[0].conv2d.padding: expected one integer or two equal ones, got a list of 1"),
            ("maxpool2d: {kernel_size: 2}", "maxpool2d: {kernel_size: 2, stride: [2, x]}", "model.layers[3].maxpool2d.stride: expected a list of integers, got"),
            ("kernel_size: 3,", "kernel_size: [0, 0],", "model.layers[0].conv2d.kernel_size: must be "),
            ("kernel_size: 3,", "kernel_size: [99999999999999999999, 99999999999999999999],",
             "model.layers[0].conv2d.kernel_size: must be in 1...4096, got 99999999999999999999"),
        ])
    }

    func testUnknownKeyIsNamedWithItsPath() {
        let text = valid.replacingOccurrences(of: "lr: 0.01", with: "learning_rate: 0.01, lr: 0.01")
        XCTAssertTrue(message(text).contains("c.yaml: optimizer.learning_rate: unknown key"), message(text))
    }

    /// Each edit of the valid config (`from` replaced by `to`) gives a message that starts `c.yaml: start`.
    func assertMessages(_ edits: [(from: String, to: String, start: String)], line: UInt = #line) {
        for (from, to, start) in edits {
            let text = valid.replacingOccurrences(of: from, with: to)
            XCTAssertNotEqual(text, valid, from, line: line)
            XCTAssertTrue(message(text).hasPrefix("c.yaml: \(start)"), message(text), line: line)
        }
    }

    /// A misspelt required key is an unknown key, not a missing one: the interface's own example.
    func testAMisspeltRequiredKeyIsAnUnknownKey() {
        let spec = valid.replacingOccurrences(of: "lr: 0.01", with: "learning_rate: 0.01")
        XCTAssertTrue(message(spec).hasPrefix("c.yaml: optimizer.learning_rate: unknown key (line"), message(spec))
        let cases: [(from: String, to: String, path: String)] = [
            ("train: {batch_size: 64, max_steps: 100}", "trian: {batch_size: 64, max_steps: 100}", "trian"),
            ("  input: [1, 28, 28]", "  inputs: [1, 28, 28]", "model.inputs"),
            ("out_channels: 8", "out_channel: 8", "model.layers[0].conv2d.out_channel"),
            ("dense: {out_features: 10", "dense: {out_feature: 10", "model.layers[5].dense.out_feature"),
            ("maxpool2d: {kernel_size: 2}", "maxpool2d: {kernel: 2}", "model.layers[3].maxpool2d.kernel"),
            ("init: xavier_uniform", "init: {nme: xavier_uniform}", "model.layers[5].dense.init.nme"),
            ("init: xavier_uniform", "init: {name: constant, valu: 1}", "model.layers[5].dense.init.valu"),
            ("max_steps: 100", "max_step: 100", "train.max_step"),
            ("shuffle: false", "shuffle: false\n  normalize: {means: [0.1], std: [0.3]}", "data.normalize.means"),
            ("shuffle: false", "shuffle: false\n  augment: {random_crop: {pad: 4}}", "data.augment.random_crop.pad"),
            ("weight_decay: 0.0}", "weight_decay: 0.0, schedule: {name: step, stepsize: 3}}", "optimizer.schedule.stepsize"),
        ]
        assertMessages(cases.map { ($0.from, $0.to, "\($0.path): unknown key") })
        let recurrent = valid.replacingOccurrences(of: "input: [1, 28, 28]", with: "input: [28, 28]")
            .replacingOccurrences(of: "- conv2d: {out_channels: 8, kernel_size: 3, padding: 1}", with: "- lstm: {hiden_size: 8}")
        XCTAssertTrue(message(recurrent).hasPrefix("c.yaml: model.layers[0].lstm.hiden_size: unknown key"), message(recurrent))
        let residual = valid.replacingOccurrences(of: "- relu: {}", with: "- residual: {bodies: [relu]}")
        XCTAssertTrue(message(residual).hasPrefix("c.yaml: model.layers[2].residual.bodies: unknown key"), message(residual))
    }

    /// Every key a table may hold, given, leaves a missing required key missing.
    func testEveryOtherKeyGivenARequiredKeyIsMissing() {
        let cases: [(from: String, to: String, start: String)] = [
            ("- conv2d: {out_channels: 8, kernel_size: 3, padding: 1}",
             "- conv2d: {kernel_size: 3, stride: 1, padding: 1, bias: true, init: he_normal, bias_init: 0}",
             "model.layers[0].conv2d.out_channels: missing"),
            ("- dense: {out_features: 10, init: xavier_uniform}", "- dense: {bias: true, init: xavier_uniform, bias_init: 0}",
             "model.layers[5].dense.out_features: missing"),
            ("maxpool2d: {kernel_size: 2}", "maxpool2d: {stride: 2, padding: 0}", "model.layers[3].maxpool2d.kernel_size: missing"),
            ("train: {batch_size: 64, max_steps: 100}",
             "train: {batch_size: 64, loss: cross_entropy, log_every_steps: 5, clip_grad_norm: 1, histograms_every_steps: 5, accumulate: 2}",
             "train.max_steps: missing"),
            ("init: xavier_uniform", "init: {name: constant, mean: 0, std: 1, bound: 1, gain: 1}", "model.layers[5].dense.init.value: missing"),
            ("weight_decay: 0.0}", "weight_decay: 0.0, schedule: {name: step, gamma: 0.5, warmup_steps: 2}}", "optimizer.schedule.step_size: missing"),
        ]
        assertMessages(cases)
        let recurrent = valid.replacingOccurrences(of: "input: [1, 28, 28]", with: "input: [28, 28]")
            .replacingOccurrences(of: "- conv2d: {out_channels: 8, kernel_size: 3, padding: 1}",
                                  with: "- rnn: {return_sequences: true, bias: true, nonlinearity: relu, init: orthogonal, bias_init: 0}")
        XCTAssertTrue(message(recurrent).hasPrefix("c.yaml: model.layers[0].rnn.hidden_size: missing"), message(recurrent))
    }

    func testUnknownKeyInsideALayerIsNamed() {
        let text = valid.replacingOccurrences(of: "kernel_size: 3, padding: 1", with: "kernel: 3, padding: 1")
        XCTAssertTrue(message(text).contains("model.layers[0].conv2d.kernel: unknown key"), message(text))
    }

    func testOutOfRangeValuesAreRefused() {
        XCTAssertTrue(message(valid.replacingOccurrences(of: "lr: 0.01", with: "lr: -0.1")).contains("optimizer.lr: must be > 0 and within float32's range, got -0.1"))
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

    func optimizer(_ yaml: String) throws -> OptimizerConfig {
        try ConfigLoader.parse(valid.replacingOccurrences(of: "{name: sgd, lr: 0.01, momentum: 0.9, nesterov: true, weight_decay: 0.0}", with: yaml),
                               file: "c.yaml").optimizer
    }

    func optimizerMessage(_ yaml: String) -> String {
        message(valid.replacingOccurrences(of: "{name: sgd, lr: 0.01, momentum: 0.9, nesterov: true, weight_decay: 0.0}", with: yaml))
    }

    func testOmittedOptimizerKeysTakePyTorchsDefaults() throws {
        let adam = try optimizer("{name: adam, lr: 0.001}")
        XCTAssertEqual(adam.name, .adam)
        XCTAssertEqual([adam.beta1, adam.beta2, adam.eps, adam.weightDecay], [0.9, 0.999, 1e-8, 0])
        XCTAssertFalse(adam.amsgrad)
        XCTAssertEqual(try optimizer("{name: adamw, lr: 0.001}").weightDecay, 0.01)
        let rmsprop = try optimizer("{name: rmsprop, lr: 0.01}")
        XCTAssertEqual([rmsprop.alpha, rmsprop.eps, rmsprop.momentum, rmsprop.weightDecay], [0.99, 1e-8, 0, 0])
        XCTAssertFalse(rmsprop.centered)
        let adagrad = try optimizer("{name: adagrad, lr: 0.01}")
        XCTAssertEqual([adagrad.eps, adagrad.lrDecay, adagrad.initialAccumulatorValue, adagrad.weightDecay], [1e-10, 0, 0, 0])
    }

    func testEveryOptimizerKeyIsRead() throws {
        let adam = try optimizer("{name: adamw, lr: 0.002, betas: [0.8, 0.95], eps: 1.0e-6, weight_decay: 0.1, amsgrad: true}")
        XCTAssertEqual([adam.lr, adam.beta1, adam.beta2, adam.eps, adam.weightDecay], [0.002, 0.8, 0.95, 1e-6, 0.1])
        XCTAssertTrue(adam.amsgrad)
        let rmsprop = try optimizer("{name: rmsprop, lr: 0.01, alpha: 0.9, eps: 1.0e-7, weight_decay: 0.001, momentum: 0.5, centered: true}")
        XCTAssertEqual([rmsprop.alpha, rmsprop.eps, rmsprop.weightDecay, rmsprop.momentum], [0.9, 1e-7, 0.001, 0.5])
        XCTAssertTrue(rmsprop.centered)
        let adagrad = try optimizer("{name: adagrad, lr: 0.1, lr_decay: 0.01, initial_accumulator_value: 0.1, eps: 1.0e-9, weight_decay: 0.001}")
        XCTAssertEqual([adagrad.lrDecay, adagrad.initialAccumulatorValue, adagrad.eps, adagrad.weightDecay], [0.01, 0.1, 1e-9, 0.001])
    }

    func testBetasMustBeTwoNumbersInZeroToOne() {
        XCTAssertEqual(optimizerMessage("{name: adam, lr: 0.001, betas: [0.9, 1.0]}"),
                       "c.yaml: optimizer.betas: each must be in [0, 1), got [0.9, 1.0] (line 14)")
        XCTAssertTrue(optimizerMessage("{name: adam, lr: 0.001, betas: [-0.1, 0.999]}").contains("optimizer.betas: each must be in [0, 1)"))
        XCTAssertTrue(optimizerMessage("{name: adam, lr: 0.001, betas: [0.9]}").contains("optimizer.betas: expected two numbers"))
        XCTAssertTrue(optimizerMessage("{name: adam, lr: 0.001, betas: 0.9}").contains("optimizer.betas: expected a list of numbers"))
        XCTAssertTrue(optimizerMessage("{name: adam, lr: 0.001, betas: [0.9, high]}").contains("optimizer.betas: expected a list of numbers"))
    }

    func testAKeyOfAnotherOptimizerIsAnErrorNamingIt() {
        let m = optimizerMessage("{name: adam, lr: 0.001, momentum: 0.9}")
        XCTAssertTrue(m.hasPrefix("c.yaml: optimizer.momentum: adam has no such setting (sgd and rmsprop have it)"), m)
        XCTAssertTrue(optimizerMessage("{name: sgd, lr: 0.1, betas: [0.9, 0.99]}").contains("optimizer.betas: sgd has no such setting (adam and adamw have it)"))
        XCTAssertTrue(optimizerMessage("{name: rmsprop, lr: 0.1, nesterov: true}").contains("optimizer.nesterov: rmsprop has no such setting"))
        XCTAssertTrue(optimizerMessage("{name: adamw, lr: 0.1, lr_decay: 0.1}").contains("optimizer.lr_decay: adamw has no such setting (adagrad has it)"))
        XCTAssertTrue(optimizerMessage("{name: adam, lr: 0.001, beta1: 0.9}").contains("optimizer.beta1: unknown key"))
    }

    /// Dropout's p takes PyTorch's range, [0, 1]: 1 drops every value in training.
    func testDropoutTakesPyTorchsRange() throws {
        for p in ["0", "1", "1.0"] {
            let text = valid.replacingOccurrences(of: "- relu: {}", with: "- dropout: {p: \(p)}")
            XCTAssertEqual(try ConfigLoader.parse(text, file: "c.yaml").model.layers[2], .dropout(p: Double(p)!), p)
        }
        assertMessages([("- relu: {}", "- dropout: {p: 1.01}", "model.layers[2].dropout.p: must be in [0, 1], got 1.01")])
    }

    /// Without `lr`, an optimizer takes PyTorch's default, as every other key does.
    func testTheLearningRateDefaultsToPyTorchs() throws {
        for (name, lr) in [("sgd", 1e-3), ("adam", 1e-3), ("adamw", 1e-3), ("rmsprop", 1e-2), ("adagrad", 1e-2)] {
            let text = valid.replacingOccurrences(of: "optimizer: {name: sgd, lr: 0.01, momentum: 0.9, nesterov: true, weight_decay: 0.0}",
                                                  with: "optimizer: {name: \(name)}")
            XCTAssertNotEqual(text, valid)
            XCTAssertEqual(try ConfigLoader.parse(text, file: "c.yaml").optimizer.lr, lr, name)
        }
        let misspelt = valid.replacingOccurrences(of: "lr: 0.01", with: "learning_rate: 0.01")
        XCTAssertTrue(message(misspelt).hasPrefix("c.yaml: optimizer.learning_rate: unknown key (line"), message(misspelt))
    }

    func testOutOfRangeOptimizerValuesAreOneLineErrorsNamingTheKey() {
        let cases = [
            ("{name: adam, lr: -0.001}", "optimizer.lr: must be > 0 and within float32's range, got -0.001"),
            ("{name: adam, lr: 0.001, eps: 0}", "optimizer.eps: must be > 0 and within float32's range, got 0"),
            ("{name: adamw, lr: 0.001, weight_decay: -0.01}", "optimizer.weight_decay: must be >= 0, got -0.01"),
            ("{name: rmsprop, lr: 0.01, momentum: -0.5}", "optimizer.momentum: must be >= 0, got -0.5"),
            ("{name: rmsprop, lr: 0.01, alpha: 1.5}", "optimizer.alpha: must be in [0, 1), got 1.5"),
            ("{name: adagrad, lr: 0.01, lr_decay: -1}", "optimizer.lr_decay: must be >= 0, got -1"),
            ("{name: adagrad, lr: 0.01, initial_accumulator_value: -0.1}", "optimizer.initial_accumulator_value: must be >= 0, got -0.1"),
            // Positive as a Double, 0 or infinite as the Float the kernels use.
            ("{name: adam, lr: 1.0e-50}", "optimizer.lr: must be > 0 and within float32's range, got 1.0e-50"),
            ("{name: sgd, lr: 1.0e39}", "optimizer.lr: must be > 0 and within float32's range, got 1.0e39"),
            ("{name: adam, lr: 0.001, eps: 1.0e-50}", "optimizer.eps: must be > 0 and within float32's range, got 1.0e-50"),
        ]
        for (yaml, expected) in cases {
            let m = optimizerMessage(yaml)
            XCTAssertTrue(m.hasPrefix("c.yaml: \(expected)"), "\(yaml): \(m)")
            XCTAssertFalse(m.contains("\n"), m)
        }
    }

    /// eps 1e-50 became 0 in Float (a division by a zero variance); null momentum is PyTorch's
    /// cumulative average, which was silently read as the default 0.1.
    func testBatchNormEpsilonUnderflowAndNullMomentumAreRefused() {
        let eps = message(valid.replacingOccurrences(of: "eps: 1.0e-5", with: "eps: 1.0e-50"))
        XCTAssertTrue(eps.hasPrefix("c.yaml: model.layers[1].batchnorm.eps: must be > 0 and within float32's range, got 1.0e-50"), eps)
        let momentum = message(valid.replacingOccurrences(of: "momentum: 0.1, eps", with: "momentum: null, eps"))
        XCTAssertTrue(momentum.hasPrefix("c.yaml: model.layers[1].batchnorm.momentum: null is PyTorch's cumulative average (momentum=None), which Cohort does not offer; give a number in [0, 1] (default 0.1)"), momentum)
    }

    /// Integers past 64 bits were "not integers"; a NaN in a list was "not a number".
    func testHugeIntegersAndNaNInListsAreNamedForWhatTheyAre() {
        let seed = message("seed: 99999999999999999999\n" + valid.replacingOccurrences(of: "seed: 5\n", with: ""))
        XCTAssertTrue(seed.hasPrefix("c.yaml: seed: must be in 0...9223372036854775807, got 99999999999999999999"), seed)
        // 2^64 - 1 fits in 64 bits: the message is the key's own range ("64 bits" had said otherwise).
        let unsigned = message("seed: 18446744073709551615\n" + valid.replacingOccurrences(of: "seed: 5\n", with: ""))
        XCTAssertTrue(unsigned.hasPrefix("c.yaml: seed: must be in 0...9223372036854775807, got 18446744073709551615"), unsigned)
        let batch = message(valid.replacingOccurrences(of: "batch_size: 64", with: "batch_size: 99999999999999999999"))
        XCTAssertTrue(batch.hasPrefix("c.yaml: train.batch_size: must fit in 64 bits, got 99999999999999999999"), batch)
        // A quoted number is a string, not an overflow.
        let quoted = message(valid.replacingOccurrences(of: "batch_size: 64", with: "batch_size: \"64\""))
        XCTAssertTrue(quoted.hasPrefix("c.yaml: train.batch_size: expected a number of samples or 'full', got the quoted string '64'"), quoted)
        let quotedSteps = message(valid.replacingOccurrences(of: "max_steps: 100", with: "max_steps: '100'"))
        XCTAssertTrue(quotedSteps.hasPrefix("c.yaml: train.max_steps: expected an integer, got the quoted string '100'"), quotedSteps)
        let betas = message(valid.replacingOccurrences(of: "{name: sgd, lr: 0.01, momentum: 0.9, nesterov: true, weight_decay: 0.0}",
                                                       with: "{name: adam, lr: 0.01, betas: [.nan, 0.99]}"))
        XCTAssertTrue(betas.hasPrefix("c.yaml: optimizer.betas: expected a list of finite numbers, got '.nan' in it"), betas)
    }

    /// A layer's shape error names the config file, as the config's own errors do.
    func testALayerErrorNamesTheConfigFile() throws {
        let config = try ConfigLoader.parse(valid.replacingOccurrences(of: "    - flatten: {}\n", with: ""), file: "c.yaml")
        XCTAssertThrowsError(try Model<Float>.built(from: config)) { error in
            XCTAssertEqual((error as? CohortError)?.message,
                           "c.yaml: model.layers[4] (dense): expects a flat input [features], got [8, 14, 14]; add `flatten: {}` before it")
        }
        // Made by a --set, it says which, as the config's own errors do.
        let set = try ConfigOverride("model.layers[5]={dense: {out_features: 4}}")
        let overridden = try ConfigLoader.parse(valid.replacingOccurrences(of: "    - flatten: {}\n", with: "    - relu: {}\n"), file: "c.yaml", overrides: [set])
        XCTAssertThrowsError(try Model<Float>.built(from: overridden)) { error in
            XCTAssertEqual((error as? CohortError)?.message,
                           "c.yaml: model.layers[5] (dense): expects a flat input [features], got [8, 14, 14]; add `flatten: {}` before it (--set model.layers[5]={dense: {out_features: 4}})")
        }
    }

    func testAMergeKeyIsNamed() {
        let m = message(valid.replacingOccurrences(of: "dense: {out_features: 10, init: xavier_uniform}", with: "dense: {<<: {out_features: 10}}"))
        XCTAssertTrue(m.hasPrefix("c.yaml: model.layers[5].dense.<<: YAML merge keys are not supported: write the keys out"), m)
    }

    /// PyTorch refuses fan-based initialisers on a 1-D tensor; a bias took orthogonal as a random unit vector.
    func testAFanBasedBiasInitIsRefused() {
        let m = message(valid.replacingOccurrences(of: "init: xavier_uniform}", with: "init: xavier_uniform, bias_init: orthogonal}"))
        XCTAssertTrue(m.hasPrefix("c.yaml: model.layers[5].dense.bias_init: a bias is a vector, which orthogonal cannot fill"), m)
    }

    func testUnknownOptimizerListsTheKnownOnes() {
        XCTAssertEqual(optimizerMessage("{name: adamax, lr: 0.01}"),
                       "c.yaml: optimizer.name: unknown optimizer 'adamax' (expected one of sgd, adam, adamw, rmsprop, adagrad) (line 14)")
    }

    func testClipGradNormMustBePositive() throws {
        let clipped = try ConfigLoader.parse(valid.replacingOccurrences(of: "max_steps: 100", with: "max_steps: 100, clip_grad_norm: 1.5"), file: "c.yaml")
        XCTAssertEqual(clipped.train.clipGradNorm, 1.5)
        XCTAssertNil(try ConfigLoader.parse(valid, file: "c.yaml").train.clipGradNorm)
        for bad in ["0", "-1"] {
            let m = message(valid.replacingOccurrences(of: "max_steps: 100", with: "max_steps: 100, clip_grad_norm: \(bad)"))
            XCTAssertTrue(m.hasPrefix("c.yaml: train.clip_grad_norm: must be > 0 and within float32's range, got \(bad)"), m)
        }
    }

    func testBatchSizeZeroIsRefused() {
        let m = message(valid.replacingOccurrences(of: "batch_size: 64", with: "batch_size: 0"))
        XCTAssertTrue(m.hasPrefix("c.yaml: train.batch_size: must be >= 1 or 'full', got 0"), m)
        XCTAssertTrue(message(valid.replacingOccurrences(of: "batch_size: 64", with: "batch_size: half")).contains("train.batch_size: expected a number of samples or 'full'"))
    }

    func testStochasticBatchOfOneIsRead() throws {
        XCTAssertEqual(try ConfigLoader.parse(valid.replacingOccurrences(of: "batch_size: 64", with: "batch_size: 1"), file: "c.yaml").train.batchSize, .samples(1))
    }

    func testUnknownInitializationIsAnErrorNamingTheLayer() {
        let m = message(valid.replacingOccurrences(of: "init: xavier_uniform", with: "init: {name: glorot_normal}"))
        XCTAssertTrue(m.hasPrefix("c.yaml: model.layers[5].dense.init: unknown initialization 'glorot_normal'"), m)
        XCTAssertTrue(m.contains("; Glorot's initialization is xavier_uniform or xavier_normal, as PyTorch names it)"), m)
        let other = message(valid.replacingOccurrences(of: "init: xavier_uniform", with: "init: {name: msra}"))
        XCTAssertTrue(other.contains("or kaiming_uniform and kaiming_normal for he_uniform and he_normal"), other)
        XCTAssertFalse(other.contains("Glorot"), other)
    }

    /// PyTorch's names that Cohort accepts beside its own are named where an unknown layer is.
    func testUnknownLayerListsPyTorchsNameForDense() {
        XCTAssertTrue(message(valid.replacingOccurrences(of: "- relu: {}", with: "- fc: {}")).contains("dense or linear,"))
    }

    func testYAMLSyntaxErrorGivesTheLine() {
        let m = message("seed: 5\ndata: {train: [\n")
        XCTAssertTrue(m.contains("c.yaml: YAML syntax error"), m)
        XCTAssertTrue(m.contains("line"), m)
        XCTAssertFalse(m.contains("\n"), "one line: \(m)")
    }

    /// Past libyaml's nesting limit the message says so, not which libyaml function sets it.
    func testYAMLNestedTooDeepSaysSo() {
        let m = message("seed: 5\nmodel: " + String(repeating: "[", count: 1100) + String(repeating: "]", count: 1100) + "\n")
        XCTAssertTrue(m.hasPrefix("c.yaml: YAML syntax error: nested deeper than the YAML reader's 1,000 levels (line 2, column"), m)
        XCTAssertFalse(m.contains("yaml_set_max_nest_level"), m)
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
