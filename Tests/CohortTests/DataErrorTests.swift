import Foundation
import XCTest
@testable import Cohort

/// `.npy`, CIFAR, `data.normalize` and `data.augment` through the real `cohort` binary: they work
/// in train, eval, predict and check alike, and every mistake is one line naming the file or key.
final class DataErrorTests: XCTestCase {
    var directory: URL!

    /// 64 training and 16 test images of 1 x 6 x 6 as `.npy` (uint8 images, int64 labels).
    override func setUpWithError() throws {
        directory = try temporaryDirectory(self)
        for (name, count, seed) in [("train", 64, UInt64(1)), ("test", 16, 2)] {
            let pair = try writeSyntheticData(in: directory, name: name, count: count, rows: 6, columns: 6, classes: 4, seed: seed)
            let images = try IDXFile(path: pair.images).bytes, labels = try IDXFile(path: pair.labels).bytes
            try npyFile(rawBytes(images), descr: "|u1", shape: [count, 6, 6]).write(to: directory.appendingPathComponent("\(name)-x.npy"))
            try npyFile(rawBytes(labels.map(Int64.init)), descr: "<i8", shape: [count]).write(to: directory.appendingPathComponent("\(name)-y.npy"))
        }
    }

    func config(_ replacements: [String: String] = [:]) -> String {
        var text = """
            seed: 1
            data:
              train: {images: train-x.npy, labels: train-y.npy}
              test: {images: test-x.npy, labels: test-y.npy}
              normalize: {mean: [0.2], std: [0.3]}
              augment: {random_crop: {padding: 1}, horizontal_flip: 0.5}
            model:
              input: [1, 6, 6]
              layers: [{conv2d: {out_channels: 3, kernel_size: 3, padding: 1}}, relu, flatten, {dense: {out_features: 4}}]
            optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
            train: {batch_size: 16, max_steps: 8}
            checkpoint: {dir: run}
            """
        for (old, new) in replacements {
            precondition(text.contains(old), "\(old) not in the config")
            text = text.replacingOccurrences(of: old, with: new)
        }
        return text
    }

    func testNumPyFilesWorkInTrainEvalPredictAndCheck() throws {
        try config().write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
        let trained = try runCohort(["train", "c.yaml"], in: directory)
        XCTAssertEqual(trained.status, 0, trained.err)
        XCTAssertTrue(trained.out.contains("on 64 samples"), trained.out)
        let evaluated = try runCohort(["eval", "c.yaml", "--json"], in: directory)
        XCTAssertEqual(evaluated.status, 0, evaluated.err)
        XCTAssertTrue(evaluated.out.contains("\"samples\": 16"), evaluated.out)
        let predicted = try runCohort(["predict", "c.yaml", "test-x.npy"], in: directory)
        XCTAssertEqual(predicted.status, 0, predicted.err)
        XCTAssertEqual(predicted.out.split(separator: "\n").count, 17)
        let checked = try runCohort(["check", "c.yaml", "--steps", "1"], in: directory)
        XCTAssertEqual(checked.status, 0, checked.err)
    }

    /// Float images stored as 0 to 255 are used as stored (the interface's rule): the run says so,
    /// once, where nothing normalises them; divided by 255, normalised, or already standardised
    /// (values below 0 as well as past 2), it says nothing.
    func testFloatImagesOfWholePixelsTrainWithANote() throws {
        let pixels = try IDXFile(path: directory.appendingPathComponent("train-images.idx").path).bytes
        try npyFile(rawBytes(pixels.map(Float.init)), descr: "<f4", shape: [64, 6, 6]).write(to: directory.appendingPathComponent("whole.npy"))
        try npyFile(rawBytes(pixels.map { Float($0) / 255 }), descr: "<f4", shape: [64, 6, 6]).write(to: directory.appendingPathComponent("scaled.npy"))
        try npyFile(rawBytes(pixels.map { (Float($0) - 33) / 78 }), descr: "<f4", shape: [64, 6, 6]).write(to: directory.appendingPathComponent("standard.npy"))
        let plain = ["train-x.npy": "whole.npy", "  normalize: {mean: [0.2], std: [0.3]}\n": ""]
        try config(plain).write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
        let whole = try runCohort(["train", "c.yaml"], in: directory)
        XCTAssertEqual(whole.status, 0, whole.err)
        XCTAssertTrue(whole.out.contains("whole.npy: float images hold values up to ") && whole.out.contains(", used as stored"), whole.out)
        XCTAssertGreaterThan(pixels.map { (Float($0) - 33) / 78 }.max() ?? 0, 2, "the standardised images reach past 2")
        for changes in [plain.merging(["train-x.npy": "scaled.npy", "dir: run": "dir: run2"]) { $1 }, ["train-x.npy": "whole.npy", "dir: run": "dir: run3"],
                        plain.merging(["train-x.npy": "standard.npy", "dir: run": "dir: run4"]) { $1 }] {
            try config(changes).write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
            let quiet = try runCohort(["train", "c.yaml"], in: directory)
            XCTAssertEqual(quiet.status, 0, quiet.err)
            XCTAssertFalse(quiet.out.contains("float images hold"), quiet.out)
        }
    }

    /// `data.normalize` in 0-255 units for pixels scaled to [0, 1] makes every input nearly one
    /// constant, and in [0, 1] units for unscaled pixels spreads them over hundreds: both train,
    /// with a note; matching units say nothing. A `data.scale` that float images do not take says so,
    /// and so does a channel's std far too small, before its loss turns NaN.
    func testNormalizeInOtherUnitsThanTheDataTrainsWithANote() throws {
        let pixels = try IDXFile(path: directory.appendingPathComponent("train-images.idx").path).bytes
        try npyFile(rawBytes(pixels.map { Float($0) / 255 }), descr: "<f4", shape: [64, 6, 6]).write(to: directory.appendingPathComponent("scaled.npy"))
        try npyFile(Data(count: 64 * 108), descr: "|u1", shape: [64, 3, 6, 6]).write(to: directory.appendingPathComponent("nchw.npy"))
        let cases: [([String: String], String?)] = [
            (["mean: [0.2], std: [0.3]": "mean: [33.3], std: [78.6]"],
             "note: data.normalize: \(directory.path)/train-x.npy has values in [0, 1] after data.scale, which mean [33.3], std [78.6] map into a range 0.0127 wide: every input nearly one constant; are mean and std in 0-255 units?"),
            (["  normalize:": "  scale: 1.0\n  normalize:"],
             "note: data.normalize: \(directory.path)/train-x.npy has values in [0, 255] after data.scale, which mean [0.2], std [0.3] spread over 850 or more; are mean and std for values in [0, 1]? set data.scale: 0.00392156862745098 (1/255), or multiply them by 255"),
            (["train-x.npy": "scaled.npy", "  normalize:": "  scale: 0.5\n  normalize:"],
             "note: data.scale 0.5 does not apply to \(directory.path)/scaled.npy: its float32 images are used as stored"),
            (["input: [1, 6, 6]": "input: [3, 6, 6]", "train-x.npy": "nchw.npy", "\n  test: {images: test-x.npy, labels: test-y.npy}": "",
              "mean: [0.2], std: [0.3]": "mean: [0.2, 0.2, 0.2], std: [0.3, 1.0e-30, 0.3]"],
             "note: data.normalize.std[1]: 1e-30 spreads \(directory.path)/nchw.npy's values in [0, 1] after data.scale over 1e+30 standard deviations; is it a typo?"),
            ([:], nil),
        ]
        for (index, (changes, note)) in cases.enumerated() {
            try config(changes.merging(["dir: run": "dir: run\(index)"]) { $1 }).write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
            let trained = try runCohort(["train", "c.yaml"], in: directory)
            let diverges = note?.hasSuffix("is it a typo?") ?? false
            XCTAssertEqual(trained.status, diverges ? 1 : 0, trained.err)
            if let note {
                XCTAssertTrue(trained.out.contains(note), trained.out)
            } else {
                XCTAssertFalse(trained.out.contains("note:"), trained.out)
            }
        }
        // eval (on standard error, beside its result) and check say it too.
        try config(cases[0].0).write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
        let note = try XCTUnwrap(cases[0].1).replacingOccurrences(of: "train-x.npy", with: "test-x.npy")
        let evaluated = try runCohort(["eval", "c.yaml", "--checkpoint", "run0/checkpoints/8"], in: directory)
        XCTAssertEqual(evaluated.status, 0, evaluated.err)
        XCTAssertTrue(evaluated.err.hasPrefix(note), evaluated.err)
        let checked = try runCohort(["check", "c.yaml", "--steps", "1"], in: directory)
        XCTAssertEqual(checked.status, 0, checked.err)
        XCTAssertTrue(checked.out.contains(try XCTUnwrap(cases[0].1)), checked.out)
    }

    /// A data file that is a link to nothing says so, naming its key.
    func testADanglingLinkAsADataFileIsNamed() throws {
        try FileManager.default.createSymbolicLink(atPath: directory.appendingPathComponent("gone.npy").path, withDestinationPath: "moved.npy")
        try config(["train-x.npy": "gone.npy"]).write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
        let trained = try runCohort(["train", "c.yaml"], in: directory)
        XCTAssertEqual(trained.status, 1)
        XCTAssertEqual(trained.err, "error: data.train.images: gone.npy: a symbolic link to moved.npy, which does not exist\n")
    }

    /// Images `[N, H, W, C]` for `input: [C, H, W]` have the element count the interface asks for,
    /// so they train, but the run says they look channels last; channels first it says nothing.
    func testChannelsLastImagesTrainWithANote() throws {
        try npyFile(Data(count: 64 * 108), descr: "|u1", shape: [64, 6, 6, 3]).write(to: directory.appendingPathComponent("nhwc.npy"))
        try npyFile(Data(count: 64 * 108), descr: "|u1", shape: [64, 3, 6, 6]).write(to: directory.appendingPathComponent("nchw.npy"))
        let changes = ["input: [1, 6, 6]": "input: [3, 6, 6]", "mean: [0.2], std: [0.3]": "mean: [0.2, 0.2, 0.2], std: [0.3, 0.3, 0.3]",
                       "\n  test: {images: test-x.npy, labels: test-y.npy}": ""]
        try config(changes.merging(["train-x.npy": "nhwc.npy"]) { $1 }).write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
        let last = try runCohort(["train", "c.yaml"], in: directory)
        XCTAssertEqual(last.status, 0, last.err)
        XCTAssertTrue(last.out.contains("nhwc.npy: images are [6, 6, 3], channels last? model.input [3, 6, 6] reads them channels first"), last.out)
        // predict is where users bring new data: it says so too (on standard error, beside the CSV).
        let predicted = try runCohort(["predict", "c.yaml", "nhwc.npy"], in: directory)
        XCTAssertEqual(predicted.status, 0, predicted.err)
        XCTAssertTrue(predicted.err.hasPrefix("note: nhwc.npy: images are [6, 6, 3], channels last?"), predicted.err)
        XCTAssertTrue(predicted.out.hasPrefix("index,label,"), predicted.out)
        try config(changes.merging(["train-x.npy": "nchw.npy", "dir: run": "dir: run2"]) { $1 }).write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
        let first = try runCohort(["train", "c.yaml"], in: directory)
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertFalse(first.out.contains("channels last"), first.out)
    }

    /// A training file rewritten smaller in place while the run reads its memory-mapped pages
    /// (`np.save` over it, say) is a one-line error naming it and status 1, not a SIGBUS and a
    /// backtrace.
    func testADataFileThatShrinksUnderTheRunIsAnErrorNamingIt() throws {
        let directory = try temporaryDirectory(self)
        let train = try writeSyntheticData(in: directory, name: "train", count: 20_000, rows: 28, columns: 28, classes: 10, seed: 1)
        try """
            data: {train: {images: \(train.images), labels: \(train.labels)}}
            model: {input: [1, 28, 28], layers: [flatten, {dense: {out_features: 10}}]}
            train: {batch_size: 64, max_steps: 100000000, log_every_steps: 1}
            checkpoint: {dir: run, every_steps: 100000000}
            """.write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = try cohortBinary()
        process.arguments = ["train", "c.yaml"]
        process.currentDirectoryURL = directory
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let metrics = directory.appendingPathComponent("run/metrics.jsonl")
        let deadline = Date().addingTimeInterval(60)
        while (try? Data(contentsOf: metrics))?.isEmpty ?? true {
            XCTAssertTrue(process.isRunning, "the run ended before its first step")
            guard process.isRunning, Date() < deadline else { return XCTFail("no step within 60 s") }
            usleep(20_000)
        }
        XCTAssertEqual(truncate(train.images, 16 + 28 * 28), 0, "truncating \(train.images)")
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit)
        XCTAssertEqual(process.terminationStatus, 1)
        XCTAssertEqual(String(decoding: stderr, as: UTF8.self),
                       "error: \(train.images): the file changed under the run (it shrank while memory-mapped: rewritten or truncated); let a run finish before replacing its data, or write the new data under another name\n")
    }

    func testEveryDataMistakeIsOneLineNamingTheFileOrKey() throws {
        let good = try Data(contentsOf: directory.appendingPathComponent("train-x.npy"))
        let labels = rawBytes([Int64](repeating: 1, count: 64))
        var lying = good
        lying[8] = 0xFF; lying[9] = 0x7F
        let trainImages = ["train-x.npy": "bad.npy"], trainLabels = ["train-y.npy": "bad.npy"]
        let cases: [(String, Data?, [String: String], [String], [String])] = [
            ("fortran", npyFile(good.suffix(64 * 36), descr: "|u1", shape: [64, 6, 6], fortran: true), trainImages, ["train"], ["bad.npy", "Fortran order"]),
            ("big-endian", npyFile(Data(count: 64 * 36 * 4), descr: ">f4", shape: [64, 6, 6]), trainImages, ["train"], ["bad.npy", "big-endian"]),
            ("object", npyFile(Data(count: 64 * 8), descr: "|O", shape: [64]), trainImages, ["train"], ["bad.npy", "Python objects"]),
            ("string", npyFile(Data(count: 64 * 4), descr: "<U1", shape: [64]), trainLabels, ["train"], ["bad.npy", "strings"]),
            ("shape", npyFile(Data(count: 64 * 25), descr: "|u1", shape: [64, 5, 5]), trainImages, ["train"], ["bad.npy", "model.input [1, 6, 6]"]),
            ("label range", npyFile(rawBytes([Int64](repeating: 4, count: 64)), descr: "<i8", shape: [64]), trainLabels, ["train"], ["bad.npy: label 4 of sample 0 is out of range"]),
            ("uint64 label past Int.max", npyFile(rawBytes([UInt64](repeating: .max, count: 64)), descr: "<u8", shape: [64]), trainLabels, ["train"], ["bad.npy: label 18446744073709551615 of sample 0 is out of range"]),
            ("truncated", good.prefix(good.count - 100), trainImages, ["train"], ["bad.npy: truncated"]),
            ("lying header", lying, trainImages, ["train"], ["bad.npy", "header claims 32767 bytes"]),
            ("bad test set in eval", npyFile(labels.prefix(16 * 8), descr: "<f8", shape: [16]), ["test-y.npy": "bad.npy"], ["eval"], ["bad.npy: labels must be integers, got float64"]),
            ("bad images in predict", npyFile(good.suffix(64 * 36), descr: "|u1", shape: [64, 6, 6], fortran: true), [:], ["predict", "c.yaml", "bad.npy"], ["bad.npy", "Fortran order"]),
            ("bad images in check", npyFile(Data(count: 64 * 36 * 4), descr: ">f4", shape: [64, 6, 6]), trainImages, ["check"], ["bad.npy", "big-endian"]),
            ("mean per channel", nil, ["mean: [0.2]": "mean: [0.2, 0.1, 0.3]", "std: [0.3]": "std: [0.3, 0.3, 0.3]"], ["train"], ["c.yaml: data.normalize.mean: 3 values for the 1 channel of model.input [1, 6, 6]"]),
            ("CIFAR's three means for a flat input", nil, ["input: [1, 6, 6]": "input: [36]", "mean: [0.2]": "mean: [0.2, 0.1, 0.3]", "std: [0.3]": "std: [0.3, 0.3, 0.3]",
                                                            "layers: [{conv2d: {out_channels: 3, kernel_size: 3, padding: 1}}, relu, flatten, {dense: {out_features: 4}}]": "layers: [{dense: {out_features: 4}}]",
                                                            "  augment: {random_crop: {padding: 1}, horizontal_flip: 0.5}\n": ""], ["train"],
             ["data.normalize.mean: 3 values for the 1 channel of model.input [36]", "for CIFAR's 3 channels, make model.input [3, 32, 32] and flatten in the model"]),
            ("std length", nil, ["std: [0.3]": "std: [0.3, 0.3]"], ["train"], ["c.yaml: data.normalize.std: 2 values but mean has 1"]),
            ("std zero", nil, ["std: [0.3]": "std: [0]"], ["train"], ["c.yaml: data.normalize.std: each must be > 0, got [0.0]"]),
            ("std below float32's normal range", nil, ["std: [0.3]": "std: [1e-45]"], ["train"], ["c.yaml: data.normalize.std: each must be a normal float32", "got 1e-45"]),
            ("mean past float32", nil, ["mean: [0.2]": "mean: [1e39]"], ["train"], ["c.yaml: data.normalize.mean: each must be within float32's range, got 1e+39"]),
            ("scale past float32", nil, ["normalize: {": "scale: 1e300\n  normalize: {"], ["train"], ["c.yaml: data.scale: must be > 0 and within float32's range, got 1e300"]),
            ("mean missing", nil, ["mean: [0.2], ": ""], ["train"], ["c.yaml: data.normalize.mean: missing"]),
            ("normalize unknown key", nil, ["std: [0.3]}": "std: [0.3], inplace: true}"], ["train"], ["c.yaml: data.normalize.inplace: unknown key"]),
            ("padding negative", nil, ["padding: 1": "padding: -1"], ["train"], ["c.yaml: data.augment.random_crop.padding: must be in 0...4096, got -1"]),
            ("crop unknown key", nil, ["padding: 1": "padding: 1, size: 6"], ["train"], ["c.yaml: data.augment.random_crop.size: unknown key"]),
            ("flip probability", nil, ["horizontal_flip: 0.5": "horizontal_flip: 1.5"], ["train"], ["c.yaml: data.augment.horizontal_flip: must be a probability in [0, 1], got 1.5"]),
            ("flip probability not a number", nil, ["horizontal_flip: 0.5": "horizontal_flip: .nan"], ["train"], ["c.yaml: data.augment.horizontal_flip: must be a probability in [0, 1], got .nan"]),
            ("augment unknown key", nil, ["horizontal_flip: 0.5": "vertical_flip: 0.5"], ["train"], ["c.yaml: data.augment.vertical_flip: unknown key"]),
            ("augment on sequences", nil, ["input: [1, 6, 6]": "input: [6, 6]", "layers: [{conv2d: {out_channels: 3, kernel_size: 3, padding: 1}}, relu, ": "layers: ["], ["train"], ["c.yaml: data.augment: crops and flips are of images"]),
            ("cifar and images", nil, ["train: {images: train-x.npy,": "train: {cifar10: [a.bin], images: train-x.npy,"], ["train"], ["c.yaml: data.train.images: give either images and labels, or cifar10"]),
            ("cifar empty", nil, ["train: {images: train-x.npy, labels: train-y.npy}": "train: {cifar10: []}"], ["train"], ["c.yaml: data.train.cifar10: expected a non-empty list"]),
            ("cifar size", Data(count: 3073 * 2 + 5), ["train: {images: train-x.npy, labels: train-y.npy}": "train: {cifar10: [bad.npy]}", "input: [1, 6, 6]": "input: [3, 32, 32]"], ["train"], ["bad.npy: 6151 bytes is not a whole number of CIFAR-10 records of 3073 bytes"]),
            ("cifar shape", Data(count: 3073), ["train: {images: train-x.npy, labels: train-y.npy}": "train: {cifar10: [bad.npy]}"], ["train"], ["bad.npy: CIFAR-10 images are [3, 32, 32]", "model.input [1, 6, 6]"]),
            ("cifar layout", Data(count: 3073), ["train: {images: train-x.npy, labels: train-y.npy}": "train: {cifar10: [bad.npy]}", "input: [1, 6, 6]": "input: [3, 16, 64]"], ["train"], ["bad.npy: CIFAR-10 images are [3, 32, 32] but model.input is [3, 16, 64]"]),
            ("empty file", Data(), trainImages, ["train"], ["bad.npy: an empty file, not an IDX or NumPy .npy array"]),
            ("xz", Data([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0, 0, 4]), trainImages, ["train"], ["bad.npy: compressed with xz; Cohort reads gzip or uncompressed files"]),
            ("a CIFAR batch to predict", Data([5] + [UInt8](repeating: 9, count: 3073 * 2 - 1)), [:], ["predict", "c.yaml", "bad.npy"],
             ["bad.npy: not an IDX file nor NumPy .npy (bad magic number); if it is a CIFAR-10 batch, give it as data.train/test's cifar10 list, or save its images as .npy for predict"]),
            ("cifar rows for a recurrent network", Data(count: 3073),
             ["train: {images: train-x.npy, labels: train-y.npy}": "train: {cifar10: [bad.npy]}", "input: [1, 6, 6]": "input: [32, 96]",
              "layers: [{conv2d: {out_channels: 3, kernel_size: 3, padding: 1}}, relu, flatten, {dense: {out_features: 4}}]": "layers: [{lstm: {hidden_size: 4}}, {dense: {out_features: 4}}]",
              "  augment: {random_crop: {padding: 1}, horizontal_flip: 0.5}\n": ""], ["train"],
             ["bad.npy: CIFAR-10 images are [3, 32, 32] but model.input is [32, 96]", "[3, 1024] for a sequence of the colour planes"]),
            ("cifar-100 size", Data([7] + [UInt8](repeating: 0, count: 3072)), ["train: {images: train-x.npy, labels: train-y.npy}": "train: {cifar100: [bad.npy]}", "input: [1, 6, 6]": "input: [3, 32, 32]"], ["train"], ["bad.npy: 3073 bytes is not a whole number of CIFAR-100 records of 3074 bytes"]),
            ("cifar label", Data([7] + [UInt8](repeating: 0, count: 3072)), ["train: {images: train-x.npy, labels: train-y.npy}": "train: {cifar10: [bad.npy]}", "input: [1, 6, 6]": "input: [3, 32, 32]"], ["train"], ["bad.npy: label 7 of record 0 is out of range for a model with 4 outputs"]),
        ]
        for (name, file, replacements, command, expected) in cases {
            if let file { try file.write(to: directory.appendingPathComponent("bad.npy")) }
            try config(replacements).write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
            let arguments = command.count == 1 ? command + ["c.yaml"] : command
            if command == ["eval"] || command.first == "predict" {
                try config().write(to: directory.appendingPathComponent("ok.yaml"), atomically: true, encoding: .utf8)
                XCTAssertEqual(try runCohort(["train", "ok.yaml"], in: directory).status, 0)
            }
            let result = try runCohort(arguments, in: directory)
            XCTAssertTrue((1...127).contains(result.status), "\(name): exit status \(result.status)")
            XCTAssertEqual(result.err.split(separator: "\n").count, 1, "\(name): not one line: \(result.err)")
            XCTAssertTrue(result.err.hasPrefix("error: "), "\(name): \(result.err)")
            for text in expected { XCTAssertTrue(result.err.contains(text), "\(name): '\(result.err)' does not name '\(text)'") }
            try? FileManager.default.removeItem(at: directory.appendingPathComponent("bad.npy"))
        }
    }
}
