import Foundation
import XCTest
@testable import Cohort

final class CheckpointTests: XCTestCase {
    /// A small run with everything a checkpoint must carry: batch norm, dropout, shuffle, momentum,
    /// a schedule, and 5 steps per epoch so that runs cross epoch boundaries.
    func smallRun(in directory: URL, maxSteps: Int) throws -> TrainingConfig {
        let pair = try writeSyntheticData(in: directory, name: "train", count: 50, rows: 6, columns: 6, classes: 4, seed: 3)
        var config = try ConfigLoader.parse("""
            seed: 11
            data: {train: {images: \(pair.images), labels: \(pair.labels)}, shuffle: true}
            model:
              input: [1, 6, 6]
              layers:
                - conv2d: {out_channels: 3, kernel_size: 3, padding: 1}
                - batchnorm: {}
                - relu: {}
                - maxpool2d: {kernel_size: 2}
                - flatten: {}
                - dense: {out_features: 12}
                - batchnorm: {}
                - relu: {}
                - dropout: {p: 0.3}
                - dense: {out_features: 4}
            optimizer: {name: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.001, schedule: {name: cosine, warmup_steps: 2}}
            train: {batch_size: 10, max_steps: \(maxSteps)}
            checkpoint: {dir: \(directory.appendingPathComponent("run").path), every_steps: 3}
            """, file: "inline.yaml")
        config.checkpoint.keep = 10
        return config
    }

    func train(_ config: TrainingConfig, resume: ResumeMode = .fresh, stopAfter: Int? = nil,
               log: @escaping (String) -> Void = { _ in }) throws -> TrainingSummary {
        let trainer = Trainer(config: config, communicator: SoloCommunicator(), log: log)
        trainer.stopAfterStep = stopAfter
        return try trainer.run(resume: resume)
    }

    func modelFile(_ directory: URL, step: Int) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent("run/checkpoints/\(step)/model.safetensors"))
    }

    /// 13 steps straight against 7 steps, a stop, and --resume auto: the same bytes, with the
    /// cosine schedule, dropout, shuffle and momentum all carried across an epoch boundary.
    func testResumeIsBitwiseIdentical() throws {
        let straight = try temporaryDirectory(self)
        _ = try train(smallRun(in: straight, maxSteps: 13))
        let interrupted = try temporaryDirectory(self)
        _ = try train(smallRun(in: interrupted, maxSteps: 13), stopAfter: 7)
        XCTAssertEqual(try CheckpointStore(runDirectory: interrupted.appendingPathComponent("run").path, keep: 3).latestDirectory()?.lastPathComponent, "7")
        _ = try train(smallRun(in: interrupted, maxSteps: 13), resume: .auto)
        XCTAssertEqual(try modelFile(straight, step: 13), try modelFile(interrupted, step: 13), "resumed weights differ from an uninterrupted run")
        XCTAssertNotEqual(try modelFile(straight, step: 13), try modelFile(straight, step: 6), "training did not change the weights")
    }

    /// The same with Adam (AMSGrad, weight decay): its moments and step count travel in the checkpoint.
    func testResumeWithAdamIsBitwiseIdentical() throws {
        func adam(_ config: TrainingConfig) -> TrainingConfig {
            var config = config
            let schedule = config.optimizer.schedule
            config.optimizer = OptimizerConfig.defaults(for: .adam, lr: 0.01)
            config.optimizer.amsgrad = true
            config.optimizer.weightDecay = 1e-3
            config.optimizer.schedule = schedule
            return config
        }
        let straight = try temporaryDirectory(self)
        _ = try train(adam(smallRun(in: straight, maxSteps: 13)))
        let interrupted = try temporaryDirectory(self)
        _ = try train(adam(smallRun(in: interrupted, maxSteps: 13)), stopAfter: 7)
        _ = try train(adam(smallRun(in: interrupted, maxSteps: 13)), resume: .auto)
        XCTAssertEqual(try modelFile(straight, step: 13), try modelFile(interrupted, step: 13))
        XCTAssertNotEqual(try modelFile(straight, step: 13), try modelFile(straight, step: 6))
    }

    /// A finished run extended to more steps continues where it ended (constant rate: the schedule does not depend on the length).
    func testAFinishedRunCanBeExtended() throws {
        func constantRate(_ config: TrainingConfig) -> TrainingConfig {
            var config = config
            config.optimizer.schedule = ScheduleConfig()
            return config
        }
        let straight = try temporaryDirectory(self)
        _ = try train(constantRate(smallRun(in: straight, maxSteps: 11)))
        let extended = try temporaryDirectory(self)
        _ = try train(constantRate(smallRun(in: extended, maxSteps: 5)))
        _ = try train(constantRate(smallRun(in: extended, maxSteps: 11)), resume: .auto)
        XCTAssertEqual(try modelFile(straight, step: 11), try modelFile(extended, step: 11))
    }

    func testResumeFromAnExplicitDirectoryContinuesFromItsStep() throws {
        let directory = try temporaryDirectory(self)
        _ = try train(smallRun(in: directory, maxSteps: 6))
        let config = try smallRun(in: directory, maxSteps: 9)
        _ = try train(config, resume: .directory(directory.appendingPathComponent("run/checkpoints/3").path))
        let text = try String(contentsOf: directory.appendingPathComponent("run/checkpoints/latest"), encoding: .utf8)
        XCTAssertEqual(text.trimmingCharacters(in: .whitespacesAndNewlines), "9")
    }

    /// A fresh run in a directory used before replaces the earlier run's checkpoints once its own
    /// first checkpoint is complete, so that `latest` and `keep` only ever see one run; it says so
    /// as it starts (a rerun without --resume had silently taken a long run's checkpoints).
    func testAFreshRunReplacesTheEarlierRunsCheckpoints() throws {
        let directory = try temporaryDirectory(self)
        var first: [String] = [], second: [String] = []
        _ = try train(smallRun(in: directory, maxSteps: 13), log: { first.append($0) })
        _ = try train(smallRun(in: directory, maxSteps: 5), log: { second.append($0) })
        XCTAssertFalse(first.contains { $0.hasPrefix("note:") }, "\(first)")
        let run = directory.appendingPathComponent("run").path
        XCTAssertTrue(second.contains("note: \(run) holds the checkpoints of an earlier run (the newest at step 13); this run starts afresh and replaces them at its first checkpoint (to continue that run instead: --resume auto)"), "\(second)")
        let store = CheckpointStore(runDirectory: directory.appendingPathComponent("run").path, keep: 10)
        XCTAssertEqual(store.completeSteps().sorted(), [3, 5])
        XCTAssertEqual(try store.latestDirectory()?.lastPathComponent, "5")
    }

    /// `--resume auto` with a `latest` that is damaged or names a removed checkpoint takes the newest
    /// complete one, and says so: it had done so silently (after a resume from an earlier
    /// checkpoint, the newest can be the abandoned branch's).
    func testAResumePastADamagedLatestSaysWhichCheckpointItTakes() throws {
        let directory = try temporaryDirectory(self)
        _ = try train(smallRun(in: directory, maxSteps: 9))
        let root = directory.appendingPathComponent("run/checkpoints")
        let latest = root.appendingPathComponent("latest")
        for (content, why) in [("garbage", "does not hold a step"), ("4", "names step 4, which has no complete checkpoint"), (nil, "is missing or unreadable")] {
            try? FileManager.default.removeItem(at: latest)
            if let content { try Data(content.utf8).write(to: latest) }
            var lines: [String] = []
            _ = try train(smallRun(in: directory, maxSteps: 9), resume: .auto, log: { lines.append($0) })
            XCTAssertTrue(lines.contains("note: \(latest.path) \(why); taking the newest complete checkpoint, \(root.appendingPathComponent("9").path) (pass --resume DIR to choose another)"), "\(lines)")
        }
        try Data("9\n".utf8).write(to: latest)
        var intact: [String] = []
        _ = try train(smallRun(in: directory, maxSteps: 9), resume: .auto, log: { intact.append($0) })
        XCTAssertFalse(intact.contains { $0.contains("taking the newest complete checkpoint") }, "\(intact)")
    }

    /// Adam at an absurd rate: the weights before a batch norm grow until its running variance
    /// overflows while the loss stays finite. The run used to end "done" with a checkpoint that eval
    /// and --resume refuse; now it stops with the tensor named and the last good checkpoint kept.
    func testARunningStatisticThatOverflowsStopsTheRunBeforeItsCheckpoint() throws {
        let directory = try temporaryDirectory(self)
        let pair = try writeSyntheticData(in: directory, name: "train", count: 50, rows: 28, columns: 28, classes: 4, seed: 3)
        let run = directory.appendingPathComponent("run")
        let config = try ConfigLoader.parse("""
            seed: 5
            data: {train: {images: \(pair.images), labels: \(pair.labels)}}
            model: {input: [1, 28, 28], layers: [flatten: {}, dense: {out_features: 16}, batchnorm: {}, dense: {out_features: 4}]}
            optimizer: {name: adam, lr: 1.0e18}
            train: {batch_size: 10, max_steps: 6}
            checkpoint: {dir: \(run.path), every_steps: 1}
            """, file: "inline.yaml")
        var message = ""
        XCTAssertThrowsError(try train(config)) { message = "\($0)" }
        XCTAssertTrue(message.contains("became NaN or infinite"), message)
        XCTAssertTrue(message.contains("training stopped without writing the checkpoint"), message)
        let store = CheckpointStore(runDirectory: run.path, keep: 10)
        for step in store.completeSteps() {
            let tensors = try SafeTensors.read(path: run.appendingPathComponent("checkpoints/\(step)/model.safetensors").path).tensors
            for (name, tensor) in tensors {
                XCTAssertTrue(tensor.doubles().allSatisfy(\.isFinite), "step \(step): \(name)")
            }
        }
    }

    /// A model whose test outputs are not finite though its training loss is (a batch norm's running
    /// mean, kept by momentum 0, that the next layer sums past float32 at inference): an error at the epoch's
    /// evaluation, as `cohort eval` says it, where the run printed a test loss of NaN and the
    /// accuracy of an argmax over NaN.
    func testATestEvaluationOfNaNOutputsStopsTheRun() throws {
        let directory = try temporaryDirectory(self)
        let pair = try writeSyntheticData(in: directory, name: "train", count: 50, rows: 28, columns: 28, classes: 4, seed: 3)
        let yaml = """
            seed: 5
            data: {train: {images: \(pair.images), labels: \(pair.labels)}, test: {images: \(pair.images), labels: \(pair.labels)}}
            model:
              init: {from: \(directory.appendingPathComponent("init.safetensors").path)}
              input: [1, 28, 28]
              layers: [flatten: {}, dense: {out_features: 16}, batchnorm: {momentum: 0}, dense: {out_features: 4}]
            optimizer: {name: sgd, lr: 0.01}
            train: {batch_size: 10, max_steps: 30}
            checkpoint: {dir: \(directory.appendingPathComponent("run").path), every_steps: 100}
            """
        let config = try ConfigLoader.parse(yaml, file: "inline.yaml")
        // 16 inputs of -3e38 at inference, summed by weights of 1 into -inf; in training the batch's mean is used.
        let values: [String: Float] = ["2.running_mean": 3e38, "3.weight": 1]
        let model = try Model<Float>(config.model)
        model.initialize(seed: 1)
        let state = model.exportStateDict().map { name, tensor in
            values[name].map { (name, SafeTensors.Tensor(floats: [Float](repeating: $0, count: tensor.count), shape: tensor.shape)) } ?? (name, tensor)
        }
        try SafeTensors.encode(state).write(to: directory.appendingPathComponent("init.safetensors"))
        var message = ""
        XCTAssertThrowsError(try train(config)) { message = "\($0)" }
        XCTAssertTrue(message.hasPrefix("after step 5: the model's outputs on data.test (\(pair.images)) are NaN or infinite"), message)
    }

    /// Resuming under another seed draws other shuffles and masks from there on: said, as a changed batch size is.
    func testResumingWithAnotherSeedSaysSo() throws {
        let directory = try temporaryDirectory(self)
        _ = try train(smallRun(in: directory, maxSteps: 6))
        var config = try smallRun(in: directory, maxSteps: 9)
        config.seed = 12
        var lines: [String] = []
        _ = try train(config, resume: .auto, log: { lines.append($0) })
        XCTAssertTrue(lines.contains { $0.hasPrefix("note: the checkpoint's run had seed 11; with this config's seed 12") }, "\(lines)")
    }

    /// Resuming on other data of as many samples (regenerated, reordered) says so; on the same data, nothing.
    func testResumingOnOtherDataOfTheSameCountSaysSo() throws {
        let directory = try temporaryDirectory(self)
        _ = try train(smallRun(in: directory, maxSteps: 6))
        var lines: [String] = []
        _ = try train(smallRun(in: directory, maxSteps: 9), resume: .auto, log: { lines.append($0) })
        XCTAssertEqual(lines.filter { $0.hasPrefix("note:") }, [
            "note: this config changes settings the checkpoint's run trained with: the cosine schedule's length (train.max_steps or epochs) 6 steps -> 9 steps; steps from 7 on follow this config"])
        let config = try smallRun(in: directory, maxSteps: 12)
        _ = try writeSyntheticData(in: directory, name: "train", count: 50, rows: 6, columns: 6, classes: 4, seed: 4)
        lines = []
        _ = try train(config, resume: .auto, log: { lines.append($0) })
        XCTAssertTrue(lines.contains { $0.hasPrefix("note: the checkpoint's run trained on other data than data.train (") && $0.contains("other images, labels, order or number of samples") }, "\(lines)")
    }

    /// Resuming with other settings of the data pipeline, layers, optimizer or training loop names
    /// each one (they had changed the run silently); an initializer, spent at step 0, is no change.
    func testResumingWithOtherTrainingSettingsNamesEach() throws {
        let directory = try temporaryDirectory(self)
        _ = try train(smallRun(in: directory, maxSteps: 6))
        var config = try smallRun(in: directory, maxSteps: 6)
        config.optimizer.lr = 0.1
        config.data.shuffle = false
        config.data.augment.flipProbability = 0.5
        config.train.clipGradNorm = 1
        config.model.layers[8] = .dropout(p: 0.5)
        config.model.layers[5] = .dense(outFeatures: 12, bias: true, initializer: LayerInit(weight: .constant(0.5)))
        var lines: [String] = []
        _ = try train(config, resume: .auto, log: { lines.append($0) })
        XCTAssertEqual(lines.filter { $0.hasPrefix("note:") }, [
            "note: this config changes settings the checkpoint's run trained with: data.shuffle true -> false, data.augment.horizontal_flip 0.0 -> 0.5, model.layers[8] {dropout: {p: 0.3}} -> {dropout: {p: 0.5}}, optimizer.lr 0.05 -> 0.1, train.clip_grad_norm none -> 1.0; steps from 7 on follow this config"])
        config.model.layers[8] = .dropout(p: 0.3)
        config.optimizer.lr = 0.05
        config.data.shuffle = true
        config.data.augment.flipProbability = 0
        config.train.clipGradNorm = nil
        lines = []
        _ = try train(config, resume: .auto, log: { lines.append($0) })
        XCTAssertFalse(lines.contains { $0.hasPrefix("note:") }, "\(lines)")
    }

    /// A resumed run takes its weights from the checkpoint, so a `model.init.from` file removed since
    /// is no error (it had stopped the resume).
    func testResumingDoesNotNeedTheInitialWeightsFile() throws {
        let directory = try temporaryDirectory(self)
        var config = try smallRun(in: directory, maxSteps: 3)
        let model = try Model<Float>(config.model)
        model.initialize(seed: 2)
        let initial = directory.appendingPathComponent("init.safetensors")
        try SafeTensors.encode(model.exportStateDict()).write(to: initial)
        config.model.initFrom = initial.path
        _ = try train(config)
        try FileManager.default.removeItem(at: initial)
        config.train.maxSteps = 6
        XCTAssertEqual(try train(config, resume: .auto).steps, 6)
        XCTAssertThrowsError(try train(config)) { XCTAssertTrue("\($0)".contains("init.safetensors"), "\($0)") }
    }

    /// A cosine schedule over `epochs` of data that has since grown: the checkpoint's length is its
    /// own epochs' (10 steps of 50 samples), not the new data's (14 of 75), which had hidden the change.
    func testACosineLengthIsTheCheckpointsOwnWhenTheDataChanged() throws {
        let directory = try temporaryDirectory(self)
        let text = try smallRun(in: directory, maxSteps: 1).sourceText.replacingOccurrences(of: "max_steps: 1", with: "epochs: 2")
        let config = try ConfigLoader.parse(text, file: "inline.yaml")
        _ = try train(config)
        _ = try writeSyntheticData(in: directory, name: "train", count: 75, rows: 6, columns: 6, classes: 4, seed: 4)
        var lines: [String] = []
        _ = try train(config, resume: .auto, log: { lines.append($0) })
        XCTAssertTrue(lines.contains { $0.contains("the cosine schedule's length (train.max_steps or epochs) 10 steps -> 14 steps") }, "\(lines)")
    }

    /// What a resumed run compares: one normalize value stands for every channel; a layer's change
    /// is named by its path, inside residual blocks too; compression and scale only where they apply.
    func testResumedSettingsCompareWhatTrainingDoes() throws {
        let base = try smallRun(in: try temporaryDirectory(self), maxSteps: 6)
        XCTAssertTrue(sameNormalization(NormalizeConfig(mean: [0.5], std: [0.25]), NormalizeConfig(mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])))
        XCTAssertFalse(sameNormalization(NormalizeConfig(mean: [0.5], std: [0.25]), NormalizeConfig(mean: [0.5, 0.4, 0.5], std: [0.25, 0.25, 0.25])))
        XCTAssertFalse(sameNormalization(nil, NormalizeConfig(mean: [0], std: [1])))
        var changed = base
        changed.data.scale = 1
        changed.distributed.compress = .bf16
        func changes(scale: Bool, compression: Bool) -> [String] {
            changedTrainingSettings(checkpointed: base, resumed: changed, scaleApplies: scale, compressionApplies: compression, totalSteps: (6, 6))
        }
        XCTAssertEqual(changes(scale: false, compression: false), [])
        XCTAssertEqual(changes(scale: true, compression: true), ["data.scale 0.00392156862745098 -> 1.0", "distributed.compress none -> bf16"])
        let block = LayerSpec.residual(body: [.conv2d(outChannels: 4, kernel: 3, stride: 1, padding: 1, bias: false, initializer: LayerInit()), .activation(.relu)],
                                       shortcut: [])
        let strided = LayerSpec.residual(body: [.conv2d(outChannels: 4, kernel: 3, stride: 2, padding: 1, bias: false, initializer: LayerInit()), .activation(.relu)],
                                         shortcut: [])
        XCTAssertEqual(firstLayerChange([.flatten, block], [.flatten, strided], path: "model.layers"),
                       "model.layers[1].residual.body[0] {conv2d: {out_channels: 4, kernel_size: 3, stride: 1, padding: 1, bias: false}} -> {conv2d: {out_channels: 4, kernel_size: 3, stride: 2, padding: 1, bias: false}}")
        XCTAssertEqual(firstLayerChange([.flatten], [.flatten, .dropout(p: 0.1)], path: "model.layers"), "model.layers 1 layers -> 2")
    }

    /// A model of no parameters trained "successfully" (784 pixels read as 784 logits); PyTorch's
    /// optimizers refuse an empty parameter list.
    func testAModelWithoutParametersIsRefused() throws {
        let directory = try temporaryDirectory(self)
        let pair = try writeSyntheticData(in: directory, name: "train", count: 20, rows: 2, columns: 2, classes: 4, seed: 3)
        let config = try ConfigLoader.parse("""
            data: {train: {images: \(pair.images), labels: \(pair.labels)}}
            model: {input: [1, 2, 2], layers: [flatten: {}]}
            optimizer: {name: sgd, lr: 0.1}
            train: {batch_size: 10, max_steps: 2}
            checkpoint: {dir: \(directory.appendingPathComponent("run").path)}
            """, file: "inline.yaml")
        XCTAssertThrowsError(try train(config)) { error in
            XCTAssertEqual("\(error)", "inline.yaml: model.layers: no layer has parameters to train (add a dense or conv2d layer)")
        }
    }

    func testResumeAutoWithoutCheckpointStartsFresh() throws {
        let directory = try temporaryDirectory(self)
        let summary = try train(smallRun(in: directory, maxSteps: 3), resume: .auto)
        XCTAssertEqual(summary.steps, 3)
    }

    func testResumeFromMissingDirectoryNamesIt() throws {
        let directory = try temporaryDirectory(self)
        XCTAssertThrowsError(try train(smallRun(in: directory, maxSteps: 3), resume: .directory("/nonexistent/ckpt"))) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/ckpt"))
        }
    }

    func testKeepRemovesOlderCheckpointsOnlyAfterTheNewOne() throws {
        let directory = try temporaryDirectory(self)
        var config = try smallRun(in: directory, maxSteps: 13)
        config.checkpoint.keep = 2
        _ = try train(config)
        let store = CheckpointStore(runDirectory: config.checkpoint.dir, keep: 2)
        XCTAssertEqual(store.completeSteps().sorted(), [12, 13])
        XCTAssertEqual(try store.latestDirectory()?.lastPathComponent, "13")
    }

    func testAFlippedByteInAnyCheckpointFileIsCaughtAndNamed() throws {
        let directory = try temporaryDirectory(self)
        _ = try train(smallRun(in: directory, maxSteps: 3))
        let checkpoint = directory.appendingPathComponent("run/checkpoints/3")
        for name in [TrainingCheckpoint.modelFile, TrainingCheckpoint.optimizerFile, TrainingCheckpoint.progressFile] {
            let url = checkpoint.appendingPathComponent(name)
            let original = try Data(contentsOf: url)
            var damaged = original
            damaged[damaged.count / 2] ^= 0x40
            try damaged.write(to: url)
            XCTAssertThrowsError(try CheckpointStore.readVerified(checkpoint)) { error in
                XCTAssertTrue("\(error)".contains(name) && "\(error)".contains("checksum"), "\(error)")
            }
            try original.write(to: url)
        }
        XCTAssertNoThrow(try CheckpointStore.readVerified(checkpoint))
    }

    func testSafeTensorsRoundTrip() throws {
        let tensors: [(String, SafeTensors.Tensor)] = [
            ("0.weight", .init(floats: [1, -2, 3.5, 4, 5, 6], shape: [2, 3])),
            ("1.num_batches_tracked", .init(int64: [42], shape: [])),
        ]
        let data = try SafeTensors.encode(tensors, metadata: ["format": "pt"])
        let headerLength = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual((8 + Int(headerLength)) % 8, 0, "data must start 8-byte aligned")
        let decoded = try SafeTensors.decode(data, name: "t")
        XCTAssertEqual(decoded.tensors["0.weight"]?.floats(), [1, -2, 3.5, 4, 5, 6])
        XCTAssertEqual(decoded.tensors["0.weight"]?.shape, [2, 3])
        XCTAssertEqual(decoded.tensors["1.num_batches_tracked"]?.int64s(), [42])
        XCTAssertEqual(decoded.metadata["format"], "pt")
        XCTAssertThrowsError(try SafeTensors.decode(Data("not safetensors".utf8), name: "bad.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("bad.safetensors: not a valid safetensors file"))
        }
    }

    /// Files the reference library refuses are refused, each for its reason: one tensor's data over
    /// another's (which silently gave it the other's values), bytes no tensor owns, a metadata map
    /// that is not of strings, and a truncated file, named the same way every run (the tensor it
    /// named came from a dictionary's order).
    func testSafeTensorsMustTileTheirDataAsTheReferenceLibraryRequires() throws {
        /// A file of two F32 tensors of 2 values with the given header entries and `data` bytes of data.
        func file(_ header: String, data: Int = 16) -> Data {
            var json = Data(header.utf8)
            while json.count % 8 != 0 { json.append(0x20) }
            var out = Data(), length = UInt64(json.count).littleEndian
            withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
            return out + json + Data(repeating: 0x3F, count: data)
        }
        func entry(_ name: String, _ from: Int, _ to: Int) -> String {
            #""\#(name)": {"dtype": "F32", "shape": [\#((to - from) / 4)], "data_offsets": [\#(from), \#(to)]}"#
        }
        func refusal(_ data: Data) -> String {
            do { _ = try SafeTensors.decode(data, name: "w.safetensors"); return "read" } catch { return "\(error)" }
        }
        let prefix = "w.safetensors: not a valid safetensors file "
        XCTAssertEqual(refusal(file("{\(entry("a", 0, 8)), \(entry("b", 8, 16))}")), "read")
        XCTAssertEqual(refusal(file("{\(entry("a", 0, 8)), \(entry("b", 4, 12))}", data: 12)),
                       prefix + "(tensor 'b' overlaps the data of the tensor before it (offsets 4 < 8))")
        XCTAssertEqual(refusal(file("{\(entry("a", 4, 12)), \(entry("b", 12, 20))}", data: 20)), prefix + "(bytes 0..<4 of the data belong to no tensor)")
        XCTAssertEqual(refusal(file("{\(entry("a", 0, 8)), \(entry("b", 8, 16))}", data: 24)), prefix + "(8 bytes after the last tensor's data belong to no tensor)")
        XCTAssertEqual(refusal(file(#"{"__metadata__": {"format": 1}, "# + entry("a", 0, 16) + "}")), prefix + "(__metadata__ is not a map of strings)")
        XCTAssertEqual(refusal(file("{\(entry("a", 0, 8)), \(entry("a", 8, 16))}")), prefix + "('a' is listed twice in the header)")
        XCTAssertEqual(SafeTensors.topLevelKeys(Data(#"{"a\"{": {"b": [1, {"c": "}"}]}, "__metadata__": {"d": "e"}, "f": 2}"#.utf8)),
                       [#"a\"{"#, "__metadata__", "f"])
        for _ in 0..<3 {
            XCTAssertEqual(refusal(file("{\(entry("a", 0, 8)), \(entry("b", 8, 16)), \(entry("c", 16, 24))}", data: 12)),
                           prefix + "(truncated: its header describes 24 bytes of tensor data, the file holds 12)")
        }
        var huge = Data(), length = UInt64(200_000_000).littleEndian
        withUnsafeBytes(of: &length) { huge.append(contentsOf: $0) }
        XCTAssertEqual(refusal(huge + Data(count: 64)), prefix + "(its header would be 200000000 bytes, more than the 100000000 Cohort reads)")
    }

    /// A file is refused on its header, before its data is read: a large file that is no
    /// safetensors file (a dataset given by mistake) took its whole size in memory first.
    func testReadingAFileChecksItsHeaderFirst() throws {
        let directory = try temporaryDirectory(self)
        let sparse = directory.appendingPathComponent("big.safetensors")
        XCTAssertTrue(FileManager.default.createFile(atPath: sparse.path, contents: nil))
        let handle = try FileHandle(forWritingTo: sparse)
        try handle.truncate(atOffset: 1 << 36)  // 64 GiB, sparse: more than the machine's memory, were it read whole
        try handle.close()
        XCTAssertThrowsError(try SafeTensors.read(path: sparse.path)) { error in
            XCTAssertEqual("\(error)", "\(sparse.path): not a valid safetensors file (header length 0 does not fit a file of 68719476736 bytes)")
        }
        XCTAssertThrowsError(try SafeTensors.read(path: directory.path)) { error in
            XCTAssertEqual("\(error)", "\(directory.path): is a directory (expected a .safetensors file)")
        }
    }

    /// Paths a user gets wrong around checkpoints are named for what they are: a run's directory
    /// given for a checkpoint (it read as "incomplete checkpoint"), a file where the checkpoints go
    /// ("Permission denied"), a directory in the place of `latest`, a manifest that leaves out the
    /// model, and a `latest` that cannot be replaced after the checkpoint was written (it said the
    /// checkpoint was not written, and left `.latest.tmp`).
    func testCheckpointPathsAreNamedForWhatTheyAre() throws {
        let directory = try temporaryDirectory(self)
        let run = directory.appendingPathComponent("run")
        let store = CheckpointStore(runDirectory: run.path, keep: 10)
        try store.prepare()
        try store.write(step: 2, files: [("a.bin", Data([1, 2]))])
        for given in [run, store.root] {
            XCTAssertThrowsError(try CheckpointStore.readVerified(given)) { error in
                XCTAssertEqual("\(error)", "\(given.path): a run's directory, not one of its checkpoints: give one of \(store.root.path)/<step>, or auto")
            }
        }
        XCTAssertEqual("\(CheckpointStore.unlisted("model.safetensors", in: store.root.appendingPathComponent("2")))",
                       "\(store.root.path)/2/manifest.json: does not list model.safetensors, which the checkpoint needs")

        try FileManager.default.createDirectory(at: store.root.appendingPathComponent("latest.new"), withIntermediateDirectories: true)
        try FileManager.default.removeItem(at: store.root.appendingPathComponent("latest"))
        try FileManager.default.moveItem(at: store.root.appendingPathComponent("latest.new"), to: store.root.appendingPathComponent("latest"))
        XCTAssertThrowsError(try store.prepare()) { error in
            XCTAssertEqual("\(error)", "\(store.root.path)/latest: a directory where the pointer to the newest checkpoint goes (remove it)")
        }
        XCTAssertThrowsError(try store.write(step: 4, files: [("a.bin", Data([3]))])) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(store.root.path): the checkpoint of step 4 is written, but 'latest' names no step ("), "\(error)")
            XCTAssertTrue("\(error)".hasSuffix("--resume \(store.root.path)/4 continues from it"), "\(error)")
        }
        XCTAssertNoThrow(try CheckpointStore.readVerified(store.root.appendingPathComponent("4")))
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: store.root.path).contains(".latest.tmp"))

        let blocked = CheckpointStore(runDirectory: directory.appendingPathComponent("blocked").path, keep: 1)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("blocked"), withIntermediateDirectories: true)
        try Data("x".utf8).write(to: blocked.root)
        XCTAssertThrowsError(try blocked.prepare()) { error in
            XCTAssertEqual("\(error)", "\(blocked.root.path): not a directory, so no checkpoints can be written there (checkpoint.dir)")
        }
    }

    func testStateDictWithWrongTensorsIsRefusedNamingTheTensor() throws {
        let config = try ConfigLoader.parse("""
            data: {train: {images: a, labels: b}}
            model: {input: [4], layers: [{dense: {out_features: 3}}, {batchnorm: {}}]}
            train: {batch_size: 2, max_steps: 1}
            """, file: "c.yaml")
        let model = try Model<Float>(config.model)
        var tensors = Dictionary(uniqueKeysWithValues: model.exportStateDict())
        XCTAssertEqual(Set(tensors.keys), ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"])
        XCTAssertNoThrow(try model.importStateDict(tensors, source: "w.safetensors"))
        var wrong = tensors
        wrong["0.weight"] = .init(floats: [Float](repeating: 0, count: 8), shape: [2, 4])
        XCTAssertThrowsError(try model.importStateDict(wrong, source: "w.safetensors")) { error in
            XCTAssertEqual("\(error)", "w.safetensors: tensor '0.weight' has shape [2, 4], the model needs [3, 4]")
        }
        tensors["2.weight"] = .init(floats: [1], shape: [1])
        XCTAssertThrowsError(try model.importStateDict(tensors, source: "w.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("tensor '2.weight' is not in this model"))
        }
        tensors["2.weight"] = nil
        var negative = tensors
        negative["1.running_var"] = .init(floats: [1, -0.5, 1], shape: [3])
        XCTAssertThrowsError(try model.importStateDict(negative, source: "w.safetensors")) { error in
            XCTAssertEqual("\(error)", "w.safetensors: tensor '1.running_var' holds a negative variance, -0.5, at element 1")
        }
        tensors["1.running_var"] = nil
        XCTAssertThrowsError(try model.importStateDict(tensors, source: "w.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("tensor '1.running_var' is missing"))
        }
    }

    /// A checkpoint's files are checked as they are read, not only against the manifest (which a
    /// user who edits a file can rewrite): a negative step indexed before the shuffled samples
    /// (SIGSEGV on resume), and a NaN in the optimizer's state surfaced steps later as a NaN loss
    /// blamed on the learning rate.
    func testEditedProgressAndOptimizerStateAreRefusedNamingTheKey() throws {
        let config = try ConfigLoader.parse("""
            data: {train: {images: a, labels: b}}
            model: {input: [4], layers: [{dense: {out_features: 3}}]}
            optimizer: {name: adam, lr: 0.01}
            train: {batch_size: 2, max_steps: 1}
            """, file: "c.yaml")
        let model = try Model<Float>(config.model)
        let optimizer = makeOptimizer(config.optimizer, count: model.parameters.count)
        let progress = TrainingProgress(step: 4, epoch: 0, stepInEpoch: 4, seed: 1, batchSize: 2, worldSize: 1, config: "")
        let store = CheckpointStore(runDirectory: try temporaryDirectory(self).path, keep: 10)
        try store.prepare()
        func restore(_ edit: (inout [String: Data]) throws -> Void) throws -> String {
            var files = Dictionary(uniqueKeysWithValues: try TrainingCheckpoint.files(model: model, optimizer: optimizer, progress: progress).map { ($0.name, $0.data) })
            try edit(&files)
            try store.write(step: 4, files: files.map { ($0.key, $0.value) })
            do {
                _ = try TrainingCheckpoint.restore(from: try XCTUnwrap(store.latestDirectory()), model: model, optimizer: optimizer)
                return "restored"
            } catch {
                return "\(error)".components(separatedBy: "/checkpoints/4/").last!
            }
        }
        func progressJSON(_ text: String) -> (inout [String: Data]) throws -> Void {
            { $0[TrainingCheckpoint.progressFile] = Data(text.utf8) }
        }
        func optimizerState(_ change: @escaping (inout [(String, SafeTensors.Tensor)]) -> Void) -> (inout [String: Data]) throws -> Void {
            { files in
                var tensors = try SafeTensors.decode(files[TrainingCheckpoint.optimizerFile]!, name: "o").tensors.map { ($0.key, $0.value) }
                change(&tensors)
                files[TrainingCheckpoint.optimizerFile] = try SafeTensors.encode(tensors)
            }
        }
        XCTAssertEqual(try restore { _ in }, "restored")
        let fields = #""epoch": 0, "step_in_epoch": 4, "seed": 1, "batch_size": 2, "config": """#
        XCTAssertEqual(try restore(progressJSON(#"{"step": -3, "world_size": 1, "# + fields + "}")), "progress.json: 'step' is -3, must be >= 0")
        XCTAssertEqual(try restore(progressJSON(#"{"step": 4, "world_size": -4, "# + fields + "}")), "progress.json: 'world_size' is -4, must be >= 1")
        XCTAssertEqual(try restore(progressJSON(#"{"step": "four", "world_size": 1, "# + fields + "}")),
                       "progress.json: unreadable progress record: 'step' is not a whole number")
        XCTAssertEqual(try restore(progressJSON(#"{"world_size": 1, "# + fields + "}")), "progress.json: unreadable progress record: 'step' is missing")
        XCTAssertEqual(try restore(progressJSON(#"{"step": 4.5, "world_size": 1, "# + fields + "}")),
                       "progress.json: unreadable progress record: a count is not a whole number")
        XCTAssertEqual(try restore(progressJSON("[4]")), "progress.json: unreadable progress record (not a JSON object)")
        let window = #"{"step": 4, "world_size": 1, "# + fields + #", "log_window": "#
        for (value, message) in [
            (#"[]"#, "unreadable progress record: 'log_window' is not an object (steps, loss_sum, accuracy_sum, seconds)"),
            (#"{}"#, "unreadable progress record: 'log_window.steps' is missing"),
            (#"{"steps": 1.5, "loss_sum": 1, "accuracy_sum": 0.5, "seconds": 1}"#, "unreadable progress record: a count is not a whole number"),
            (#"{"steps": 5, "loss_sum": 1, "accuracy_sum": 0.5, "seconds": 1}"#, "'log_window' holds 5 steps, but the run is at step 4"),
            (#"{"steps": 2, "loss_sum": -1, "accuracy_sum": 0.5, "seconds": 1}"#, "'log_window' has loss_sum -1.0, not a finite number >= 0"),
            (#"{"steps": 2, "loss_sum": 1, "accuracy_sum": 2.5, "seconds": 1}"#, "'log_window' has accuracy_sum 2.5 over 2 steps (at most 1 a step)"),
            (#"{"steps": 0, "loss_sum": 1, "accuracy_sum": 0, "seconds": 1}"#, "'log_window' has sums over 0 steps"),
        ] {
            XCTAssertEqual(try restore(progressJSON(window + value + "}")), "progress.json: " + message)
        }
        XCTAssertEqual(try restore(progressJSON(window + #"{"steps": 2, "loss_sum": 2.5, "accuracy_sum": 1.5, "seconds": 0.01}}"#)), "restored")
        XCTAssertEqual(try restore(progressJSON(#"{"step": 3, "world_size": 1, "# + fields + "}")),
                       "progress.json: 'step' is 3, but the checkpoint's directory is named 4 (checkpoints are named after their step): renamed by hand? name it 3, or resume another")
        XCTAssertEqual(try restore(optimizerState { tensors in
            let index = tensors.firstIndex { $0.0 == "exp_avg" }!
            tensors[index].1 = .init(floats: [0, .nan] + [Float](repeating: 0, count: model.parameters.count - 2), shape: [model.parameters.count])
        }), "optimizer.safetensors: tensor 'exp_avg' holds a NaN or an infinity at element 1")
        XCTAssertEqual(try restore(optimizerState { tensors in
            tensors[tensors.firstIndex { $0.0 == "steps" }!].1 = .init(int64: [Int64.max], shape: [])
        }), "optimizer.safetensors: tensor 'steps' is 9223372036854775807, not a count of steps")
        XCTAssertEqual(try restore(optimizerState { $0.append(("momentum_buffer", .init(floats: [0], shape: [1]))) }),
                       "optimizer.safetensors: unexpected tensor 'momentum_buffer' (this optimizer keeps exp_avg, exp_avg_sq, steps; was the optimizer changed?)")
    }

    func testUnwritableCheckpointDirectoryIsAnError() throws {
        let directory = try temporaryDirectory(self)
        let blocker = directory.appendingPathComponent("file")
        try Data("x".utf8).write(to: blocker)
        let store = CheckpointStore(runDirectory: blocker.appendingPathComponent("run").path, keep: 1)
        XCTAssertThrowsError(try store.write(step: 1, files: [("a", Data([1]))])) { error in
            XCTAssertTrue("\(error)".contains("cannot create the checkpoint directory"), "\(error)")
        }
    }

    /// The temporary directory of a checkpoint whose writer was killed is removed when the next run
    /// starts; one of a process still running is left alone.
    func testPrepareRemovesTheTemporariesOfKilledWriters() throws {
        let store = CheckpointStore(runDirectory: try temporaryDirectory(self).path, keep: 2)
        try store.prepare()
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let killed = ".tmp-7-\(finished.processIdentifier)", running = ".tmp-8-1"
        for name in [killed, running] {
            try FileManager.default.createDirectory(at: store.root.appendingPathComponent(name), withIntermediateDirectories: false)
        }
        try store.prepare()
        let left = try FileManager.default.contentsOfDirectory(atPath: store.root.path)
        XCTAssertFalse(left.contains(killed))
        XCTAssertTrue(left.contains(running))
    }
}

/// What a kill at any moment of a checkpoint write leaves behind, and a full disk.
extension CheckpointTests {
    func testAnInterruptedCheckpointWriteLeavesThePreviousOneUsable() throws {
        let base = self
        let straight = try temporaryDirectory(self)
        _ = try base.train(base.smallRun(in: straight, maxSteps: 13))
        let interrupted = try temporaryDirectory(self)
        _ = try base.train(base.smallRun(in: interrupted, maxSteps: 13), stopAfter: 6)
        let root = interrupted.appendingPathComponent("run/checkpoints")
        // Killed while writing step 9's files: a temporary directory without its manifest.
        let partial = root.appendingPathComponent(".tmp-9-4242")
        try FileManager.default.createDirectory(at: partial, withIntermediateDirectories: true)
        try Data(repeating: 7, count: 100).write(to: partial.appendingPathComponent("model.safetensors"))
        // Killed while replacing `latest`: its temporary holds the new step, `latest` the old one.
        try Data("9\n".utf8).write(to: root.appendingPathComponent(".latest.tmp"))
        XCTAssertEqual(try CheckpointStore(runDirectory: interrupted.appendingPathComponent("run").path, keep: 10).latestDirectory()?.lastPathComponent, "6")
        _ = try base.train(base.smallRun(in: interrupted, maxSteps: 13), resume: .auto)
        XCTAssertEqual(try base.modelFile(straight, step: 13), try base.modelFile(interrupted, step: 13))
    }

    /// Resuming from an older checkpoint rewrites later steps in place, and `latest` never names a missing one.
    func testRewritingAnExistingStepKeepsEveryCheckpointComplete() throws {
        let base = self
        let directory = try temporaryDirectory(self)
        _ = try base.train(base.smallRun(in: directory, maxSteps: 13))
        let before = try base.modelFile(directory, step: 9)
        _ = try base.train(base.smallRun(in: directory, maxSteps: 13), resume: .directory(directory.appendingPathComponent("run/checkpoints/3").path))
        XCTAssertEqual(try base.modelFile(directory, step: 9), before, "a deterministic rerun rewrites the same bytes")
        let store = CheckpointStore(runDirectory: directory.appendingPathComponent("run").path, keep: 10)
        XCTAssertEqual(store.completeSteps().sorted(), [3, 6, 9, 12, 13])
        XCTAssertEqual(try store.latestDirectory()?.lastPathComponent, "13")
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: store.root.path).contains { $0.hasPrefix(".tmp") })
    }

    /// A full disk stops the run with an error naming the checkpoint directory; the previous checkpoint stays whole.
    func testAFullDiskIsAnErrorThatKeepsThePreviousCheckpoint() throws {
        guard getuid() == 0 else { throw XCTSkip("mounting a small tmpfs needs root; CI runs as root") }
        let base = self
        let directory = try temporaryDirectory(self)
        let disk = directory.appendingPathComponent("disk")
        try FileManager.default.createDirectory(at: disk, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        // Room for the run's lock, a checkpoint or two and the metrics, not for every checkpoint.
        mount.arguments = ["-t", "tmpfs", "-o", "size=32k", "tmpfs", disk.path]
        try mount.run()
        mount.waitUntilExit()
        XCTAssertEqual(mount.terminationStatus, 0)
        addTeardownBlock {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = [disk.path]
            try? umount.run()
            umount.waitUntilExit()
        }
        var config = try base.smallRun(in: directory, maxSteps: 13)
        config.checkpoint.dir = disk.appendingPathComponent("run").path
        var message = ""
        XCTAssertThrowsError(try base.train(config)) { message = "\($0)" }
        XCTAssertTrue(message.contains("cannot write the checkpoint of step"), message)
        XCTAssertTrue(message.contains("No space left on device"), message)
        let store = CheckpointStore(runDirectory: config.checkpoint.dir, keep: 3)
        let latest = try XCTUnwrap(try store.latestDirectory())
        XCTAssertTrue(message.contains("the checkpoint of step \(latest.lastPathComponent) is intact"), message)
        XCTAssertNoThrow(try CheckpointStore.readVerified(latest))
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: store.root.path).contains { $0.hasPrefix(".tmp") })
    }
}
