import Foundation
import XCTest
@testable import Cohort

/// `--set key.path=value`: values are put into the YAML tree and checked exactly as the file's.
final class ConfigOverrideTests: XCTestCase {
    let valid = """
        seed: 5
        data:
          train: {images: train-images.idx, labels: train-labels.idx}
        model:
          input: [1, 28, 28]
          layers:
            - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
            - relu: {}
            - maxpool2d: {kernel_size: 2}
            - flatten: {}
            - dropout: {p: 0.5}
            - dense: {out_features: 10}
        optimizer: {name: sgd, lr: 0.01, momentum: 0.9}
        train: {batch_size: 64, max_steps: 100}
        """

    func parse(_ overrides: String...) throws -> TrainingConfig {
        try ConfigLoader.parse(valid, file: "c.yaml", overrides: overrides.map { try ConfigOverride($0) })
    }

    func message(_ overrides: String...) -> String {
        do {
            _ = try ConfigLoader.parse(valid, file: "c.yaml", overrides: overrides.map { try ConfigOverride($0) })
            return "no error"
        } catch {
            return (error as? CohortError)?.message ?? "not a CohortError: \(error)"
        }
    }

    /// Switching optimizers from the command line: the old one's keys set to null are left out,
    /// as a null is everywhere; they had been "adam has no such setting".
    func testANullKeyOfAnotherOptimizerIsLeftOut() throws {
        let adam = try parse("optimizer.name=adam", "optimizer.momentum=null", "optimizer.lr=0.001").optimizer
        XCTAssertEqual(adam.name, .adam)
        XCTAssertEqual(adam.lr, 0.001)
        XCTAssertTrue(message("optimizer.name=adam", "optimizer.momentum=0.9").contains("optimizer.momentum: adam has no such setting"))
    }

    func testSetReplacesAValue() throws {
        XCTAssertEqual(try parse("optimizer.lr=0.5").optimizer.lr, 0.5)
        XCTAssertEqual(try parse("seed=9").seed, 9)
    }

    func testTheLastSetOfAKeyWins() throws {
        XCTAssertEqual(try parse("optimizer.lr=0.5", "optimizer.lr=0.25").optimizer.lr, 0.25)
    }

    func testSetAddsKeysAndMappingsTheFileDoesNotHave() throws {
        let config = try parse("train.clip_grad_norm=2", "distributed.timeout_s=5", "checkpoint.dir=elsewhere")
        XCTAssertEqual(config.train.clipGradNorm, 2)
        XCTAssertEqual(config.distributed.timeoutSeconds, 5)
        XCTAssertEqual(config.checkpoint.dir, "elsewhere")
    }

    func testSetReachesIntoListItems() throws {
        let config = try parse("model.layers[4].dropout.p=0.25", "model.layers[5].dense.out_features=7")
        XCTAssertEqual(config.model.layers[4], .dropout(p: 0.25))
        XCTAssertEqual(config.model.layers[5], .dense(outFeatures: 7, bias: true, initializer: LayerInit()))
    }

    func testSetTakesFlowListsAndMappings() throws {
        let config = try parse("model.input=[1, 14, 14]", "optimizer.schedule={name: step, step_size: 5}")
        XCTAssertEqual(config.model.input, [1, 14, 14])
        XCTAssertEqual(config.optimizer.schedule.kind, .step)
        XCTAssertEqual(config.optimizer.schedule.stepSize, 5)
    }

    func testAnOutOfRangeValueGivesTheFilesErrorNamingTheKey() {
        let fromFile: String
        do {
            _ = try ConfigLoader.parse(valid.replacingOccurrences(of: "lr: 0.01", with: "lr: -1"), file: "c.yaml")
            fromFile = "no error"
        } catch {
            fromFile = (error as? CohortError)?.message ?? "\(error)"
        }
        let fromSet = message("optimizer.lr=-1")
        XCTAssertTrue(fromFile.hasPrefix("c.yaml: optimizer.lr: must be > 0 and within float32's range, got -1 (line"), fromFile)
        XCTAssertEqual(fromSet, "c.yaml: optimizer.lr: must be > 0 and within float32's range, got -1 (--set optimizer.lr=-1)")
        XCTAssertEqual(message("model.layers[4].dropout.p=1.5"),
                       "c.yaml: model.layers[4].dropout.p: must be in [0, 1], got 1.5 (--set model.layers[4].dropout.p=1.5)")
        XCTAssertEqual(message("train.batch_size=lots"),
                       "c.yaml: train.batch_size: expected a number of samples or 'full', got 'lots' (--set train.batch_size=lots)")
    }

    func testAnUnknownKeyIsAnError() {
        XCTAssertEqual(message("optimizer.learning_rate=0.1"), "c.yaml: optimizer.learning_rate: unknown key (--set optimizer.learning_rate=0.1)")
        XCTAssertEqual(message("trian.max_steps=3"), "c.yaml: trian: unknown key (--set trian.max_steps=3)")
    }

    func testAMissingListItemOrAScalarInThePathIsAnError() {
        XCTAssertEqual(message("model.layers[6].dropout.p=0.1"),
                       "c.yaml: model.layers[6]: --set model.layers[6].dropout.p=0.1: no such item (the list has 6, from [0])")
        XCTAssertEqual(message("seed.value=1"), "c.yaml: seed: --set seed.value=1: seed is '5', not a mapping with keys")
        XCTAssertEqual(message("optimizer[0]=1"), "c.yaml: optimizer: --set optimizer[0]=1: optimizer is a mapping, not a list")
    }

    func testMalformedOverridesAreRefused() {
        for text in ["optimizer.lr", "optimizer..lr=1", "=1", "model.layers[x].p=1", "model.layers[-1].p=1", "a b=1"] {
            XCTAssertThrowsError(try ConfigOverride(text), text) { error in
                XCTAssertTrue((error as? CohortError)?.message.hasPrefix("--set \(text):") ?? false, "\(error)")
            }
        }
        XCTAssertEqual(try ConfigOverride("model.layers[2].dropout.p=0.3").path,
                       [.key("model"), .key("layers"), .index(2), .key("dropout"), .key("p")])
        XCTAssertEqual(try ConfigOverride("data.scale=a=b").value, "a=b", "the first '=' splits")
    }

    /// A path of thousands of parts overflowed the stack that builds the tree (SIGSEGV); a line
    /// break in a value split the one-line error in two.
    func testAPathDeeperThanAnyKeyAndALineBreakInAValueGiveOneLine() {
        let deep = (["model"] + Array(repeating: "x", count: 3_000)).joined(separator: ".") + "=1"
        XCTAssertThrowsError(try ConfigOverride(deep)) { error in
            XCTAssertEqual((error as? CohortError)?.message,
                           "--set model.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x....: a key path of 3001 parts; no config key lies deeper than 64")
        }
        let broken = message("train.max_steps=3\nseed: 9")
        XCTAssertFalse(broken.contains("\n"), broken)
        XCTAssertTrue(broken.contains("--set train.max_steps=3\\nseed: 9"), broken)
    }

    /// Checkpoints keep `sourceText`: it must read back as the config the run used.
    func testTheEffectiveConfigTextReadsBackAsTheSameConfig() throws {
        let config = try parse("optimizer.lr=0.5", "model.layers[4].dropout.p=0.25", "train.clip_grad_norm=1.5")
        XCTAssertTrue(config.sourceText.hasPrefix("# c.yaml with --set optimizer.lr=0.5 --set model.layers[4].dropout.p=0.25 --set train.clip_grad_norm=1.5\n"),
                      config.sourceText)
        let again = try ConfigLoader.parse(config.sourceText, file: "c.yaml")
        XCTAssertEqual(again.optimizer.lr, 0.5)
        XCTAssertEqual(again.optimizer.momentum, 0.9)
        XCTAssertEqual(again.model.layers, config.model.layers)
        XCTAssertEqual(again.model.input, config.model.input)
        XCTAssertEqual(again.train.clipGradNorm, 1.5)
        XCTAssertEqual(again.train.maxSteps, 100)
        XCTAssertEqual(again.seed, 5)
        XCTAssertEqual(again.data.train, config.data.train)
        XCTAssertEqual(try ConfigLoader.parse(valid, file: "c.yaml").sourceText, valid, "without --set the file's text is kept as it is")
    }

    /// A value written over several lines stays in the header's one comment line.
    func testAValueWithLineBreaksKeepsTheConfigTextReadable() throws {
        let config = try parse("optimizer.schedule={name: step,\n  step_size: 5}")
        XCTAssertTrue(config.sourceText.hasPrefix("# c.yaml with --set optimizer.schedule={name: step,\\n  step_size: 5}\n"), config.sourceText)
        let again = try ConfigLoader.parse(config.sourceText, file: "c.yaml")
        XCTAssertEqual(again.optimizer.schedule, config.optimizer.schedule)
    }

    func testTrainWithSetSavesTheEffectiveConfigInItsCheckpoint() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 20)
        let result = try runCohort(["train", "c.yaml", "--set", "train.max_steps=3", "--set", "model.layers[3].dropout.p=0.1"], in: directory)
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertTrue(result.out.contains("3 steps of 16"), result.out)
        let progressURL = directory.appendingPathComponent("run/checkpoints/3/progress.json")
        let progress = try JSONDecoder().decode(TrainingProgress.self, from: Data(contentsOf: progressURL))
        let saved = try ConfigLoader.parse(progress.config, file: "saved.yaml")
        XCTAssertEqual(saved.train.maxSteps, 3)
        XCTAssertEqual(saved.model.layers[3], .dropout(p: 0.1))
    }

    /// A run resumed with another batch size (or other data) says that it no longer draws the samples
    /// the interrupted run would have; one resumed as it was says nothing.
    func testResumingWithAnotherBatchSizeSaysSo() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 8)
        XCTAssertEqual(try runCohort(["train", "c.yaml"], in: directory).status, 0)
        let same = try runCohort(["train", "c.yaml", "--set", "train.max_steps=12", "--resume", "auto"], in: directory)
        XCTAssertEqual(same.status, 0, same.err)
        XCTAssertFalse(same.out.contains("note:"), same.out)
        let changed = try runCohort(["train", "c.yaml", "--set", "train.max_steps=14", "--set", "train.batch_size=32", "--resume", "auto"], in: directory)
        XCTAssertEqual(changed.status, 0, changed.err)
        XCTAssertTrue(changed.out.contains("note: the checkpoint's run had train.batch_size 16 and was at step 1 of epoch 4; with this config's batch size and data, step 13 is step 1 of epoch 7"), changed.out)
    }

    func testTrainRefusesABadSetLikeABadFile() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory)
        let bad = try runCohort(["train", "c.yaml", "--set", "optimizer.lr=-0.1"], in: directory)
        XCTAssertEqual(bad.status, 1)
        XCTAssertEqual(bad.err, "error: c.yaml: optimizer.lr: must be > 0 and within float32's range, got -0.1 (--set optimizer.lr=-0.1)\n")
        let malformed = try runCohort(["train", "c.yaml", "--set", "optimizer.lr"], in: directory)
        XCTAssertEqual(malformed.status, 64, "an argument error")
        XCTAssertTrue(malformed.err.contains("--set optimizer.lr: expected key.path=value"), malformed.err)
    }
}
