import Foundation
import XCTest
@testable import Cohort

/// Every mistake a user can make, run through the real `cohort` binary: one line on standard error
/// naming the culprit, an exit status from 1 to 127, and the existing checkpoint byte for byte unchanged.
final class UserErrorTests: XCTestCase {
    var directory: URL!
    let layers = """
            - conv2d: {out_channels: 3, kernel_size: 3, padding: 1}
            - batchnorm: {}
            - relu: {}
            - maxpool2d: {kernel_size: 2}
            - flatten: {}
            - dense: {out_features: 4}
        """

    func config(_ replacements: [String: String] = [:], layers: String? = nil) -> String {
        var text = """
            seed: 1
            data:
              train: {images: train-images.idx, labels: train-labels.idx}
              test: {images: test-images.idx, labels: test-labels.idx}
            model:
              input: [1, 6, 6]
              layers:
            \(layers ?? self.layers)
            optimizer: {name: sgd, lr: 0.05, momentum: 0.9, schedule: {name: cosine}}
            train: {batch_size: 16, max_steps: 20}
            checkpoint: {dir: run, every_steps: 10}
            """
        for (old, new) in replacements {
            precondition(text.contains(old), "\(old) not in the config")
            text = text.replacingOccurrences(of: old, with: new)
        }
        return text
    }

    /// A GRU whose weights (3 H (H + 53) values, 7 copies) need about twice this machine's memory
    /// while staying under the parameter limit; none on a machine with more than 60 GiB, where no
    /// such GRU exists.
    func recurrentWeightsPastTheMemory() -> [Case] {
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        guard memory < 60 * 1_073_741_824 else { return [] }
        let h = min(26_000, Int((2 * memory / (3 * 28)).squareRoot()))
        return [Case(name: "recurrent weights past the memory",
                     files: yaml(config(["input: [1, 6, 6]": "input: [6, 6]"], layers: "    - gru: {hidden_size: \(h)}\n    - dense: {out_features: 4}")),
                     arguments: ["train", "c.yaml"], expected: ["model.layers[0] (gru): hidden_size \(h): its weights need about"])]
    }

    /// A model of which one sample's activations need more than this machine's memory (a
    /// 1,048,576-channel convolution of the 6 x 6 input, then ReLUs, each ~0.6 GB a sample with its
    /// gradient and workspace): no batch size helps, so the message asks for a smaller model.
    func oneSamplePastTheMemory() -> Case {
        let layers = Int(Double(ProcessInfo.processInfo.physicalMemory) / 0.6e9) + 2
        let text = "    - conv2d: {out_channels: 1048576, kernel_size: 1}\n" + String(repeating: "    - relu: {}\n", count: layers)
            + "    - adaptiveavgpool2d: {output_size: 1}\n    - flatten: {}\n    - dense: {out_features: 4}"
        return Case(name: "one sample past the memory", files: yaml(config(layers: text)), arguments: ["train", "c.yaml"],
                    expected: ["c.yaml: model.layers: the activations of one sample need about", "make the model smaller"])
    }

    struct Case {
        var name: String
        var files: [String: Data] = [:]
        var arguments: [String]
        var expected: [String]
        var workers = 1
    }

    func yaml(_ text: String) -> [String: Data] { ["c.yaml": Data(text.utf8)] }

    /// Runs `cohort` with `arguments` (under mpirun for several workers; through `bash -c` after
    /// `shellFirst`, such as a ulimit, when given, and killed after 5 minutes there: a hang fails
    /// the test with status 137 rather than holding the suite).
    func run(_ arguments: [String], workers: Int, shellFirst: String? = nil) throws -> (status: Int32, error: String, signaled: Bool) {
        let process = Process()
        if let shellFirst {
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", "\(shellFirst) && exec timeout -s KILL 300 \"$0\" \"$@\"", try cohortBinary().path] + arguments
        } else if workers > 1 {
            process.executableURL = URL(fileURLWithPath: try XCTUnwrap(MPIJob.mpirun))
            process.arguments = ["-np", "\(workers)", "--oversubscribe", "--allow-run-as-root", "--quiet", "--stdin", "none",
                                 try cohortBinary().path] + arguments
        } else {
            process.executableURL = try cohortBinary()
            process.arguments = arguments
        }
        process.currentDirectoryURL = directory
        process.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        process.standardError = err
        try process.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text, process.terminationReason == .uncaughtSignal)
    }

    /// Every file under `run/`, by path.
    func snapshot() throws -> [String: Data] {
        let root = directory.appendingPathComponent("run")
        var files: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
        while let url = enumerator?.nextObject() as? URL {
            if let data = try? Data(contentsOf: url) { files[url.path] = data }
        }
        return files
    }

    /// A FIFO given as data blocked the open until something wrote to it (a hang, deaf to one
    /// Ctrl-C); a device read as an empty file; a file name in another encoding than UTF-8 named
    /// another file (Swift replaces what is not UTF-8), so that --output wrote elsewhere.
    func testAPipeADeviceAndAFileNameNotInUTF8AreRefused() throws {
        directory = try temporaryDirectory(self)
        _ = try writeSyntheticData(in: directory, name: "train", count: 64, rows: 6, columns: 6, classes: 4, seed: 1)
        _ = try writeSyntheticData(in: directory, name: "test", count: 16, rows: 6, columns: 6, classes: 4, seed: 2)
        try config().write(to: directory.appendingPathComponent("good.yaml"), atomically: true, encoding: .utf8)
        let fifo = directory.appendingPathComponent("images.fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let piped = try run(["predict", "good.yaml", "images.fifo"], workers: 1, shellFirst: "true")
        XCTAssertEqual(piped.status, 1)
        XCTAssertEqual(piped.error, "error: images.fifo: is a pipe (FIFO), not a file; Cohort reads data from files it can map (IDX, .npy, CIFAR, or gzip)\n")
        let device = try run(["predict", "good.yaml", "/dev/zero"], workers: 1)
        XCTAssertEqual(device.error, "error: /dev/zero: is a device or a socket, not a data file\n")
        // A config through a pipe (`cohort train /dev/stdin`, `<(...)`) had been "not readable or not UTF-8 text".
        XCTAssertEqual(mkfifo(directory.appendingPathComponent("config.fifo").path, 0o644), 0)
        let pipedConfig = try run(["train", "config.fifo"], workers: 1)
        XCTAssertEqual(pipedConfig.status, 1)
        XCTAssertEqual(pipedConfig.error, "error: config.fifo: is a pipe, not a file; save the config to a file\n")
        let encoded = try run(["predict", "good.yaml", "test-images.idx", "--output"], workers: 1, shellFirst: "set -- \"$@\" \"$(printf 'p\\377.csv')\"")
        XCTAssertEqual(encoded.status, 64)
        XCTAssertEqual(encoded.error, "error: argument 5 ('p\u{FFFD}.csv') is not valid UTF-8; Cohort takes its arguments, file names too, in UTF-8\n")
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: directory.path).contains { $0.hasSuffix(".csv") })
    }

    /// An empty `--resume` is a refused command line (status 64), as other bad arguments are.
    func testAnEmptyResumeIsAnArgumentError() throws {
        directory = try temporaryDirectory(self)
        _ = try writeSyntheticData(in: directory, name: "train", count: 64, rows: 6, columns: 6, classes: 4, seed: 1)
        try config().write(to: directory.appendingPathComponent("good.yaml"), atomically: true, encoding: .utf8)
        let empty = try run(["train", "good.yaml", "--resume", ""], workers: 1)
        XCTAssertEqual(empty.status, 64)
        XCTAssertTrue(empty.error.hasPrefix("error: --resume: expected auto or a checkpoint directory, got an empty string"), empty.error)
    }

    func testEveryMistakeIsOneLineNamingTheCulpritAndLeavesTheCheckpoint() throws {
        directory = try temporaryDirectory(self)
        let train = try writeSyntheticData(in: directory, name: "train", count: 64, rows: 6, columns: 6, classes: 4, seed: 1)
        _ = try writeSyntheticData(in: directory, name: "test", count: 16, rows: 6, columns: 6, classes: 4, seed: 2)
        try config().write(to: directory.appendingPathComponent("good.yaml"), atomically: true, encoding: .utf8)
        let trained = try run(["train", "good.yaml"], workers: 1)
        XCTAssertEqual(trained.status, 0, trained.error)
        let before = try snapshot()
        XCTAssertEqual(before.count, 13, "two checkpoints of four files, latest, metrics.jsonl, the TensorBoard file, curves.svg and the run's .lock")

        let images = try Data(contentsOf: URL(fileURLWithPath: train.images))
        let state = try SafeTensors.read(path: directory.appendingPathComponent("run/checkpoints/20/model.safetensors").path).tensors
        func weights(_ change: (inout [String: SafeTensors.Tensor]) -> Void) throws -> Data {
            var tensors = state
            change(&tensors)
            return try SafeTensors.encode(tensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        }
        let fromInit = ["model:\n": "model:\n  init: {from: w.safetensors}\n"]
        var pixels = (0..<(64 * 36)).map { Float($0 % 7) / 7 }
        pixels[5 * 36 + 17] = .nan
        let nanImages = npyFile(rawBytes(pixels), descr: "<f4", shape: [64, 1, 6, 6])
        var gzip = Data([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])
        gzip.append(Data(repeating: 0xA5, count: 40))

        let cases: [Case] = [
            Case(name: "an .npz archive", files: ["x.npz": Data([0x50, 0x4B, 3, 4] + [UInt8](repeating: 0, count: 60))], arguments: ["predict", "good.yaml", "x.npz"],
                 expected: ["x.npz: a zip archive (np.savez's .npz or torch.save's), not an array; save each array with np.save(path, a)"]),
            Case(name: "a pickle", files: ["x.pkl": Data([0x80, 4, 0x95] + [UInt8](repeating: 0, count: 60))], arguments: ["predict", "good.yaml", "x.pkl"],
                 expected: ["x.pkl: a Python pickle (pickle.dump or torch.save), not an array"]),
            Case(name: "a float64 past float32", files: ["big.npy": npyFile(rawBytes([Double](repeating: 0.5, count: 36 * 3).enumerated().map { $0.offset == 40 ? 1e39 : $0.element }),
                                                                       descr: "<f8", shape: [3, 1, 6, 6])],
                 arguments: ["predict", "good.yaml", "big.npy"], expected: ["big.npy: sample 1 holds 1e+39, beyond float32's range"]),
            Case(name: "a normalisation past float32", arguments: ["predict", "good.yaml", "test-images.idx", "--set", "data.normalize={mean: [-3e38], std: [0.5]}"],
                 expected: ["test-images.idx: sample 0 becomes infinite after data.normalize"]),
            Case(name: "a misspelt CIFAR key", files: yaml(config(["train: {images: train-images.idx, labels: train-labels.idx}": "train: {cifar20: [a.bin]}"])),
                 arguments: ["train", "c.yaml"], expected: ["c.yaml: data.train.cifar20: unknown key (expected images and labels, or cifar10 or cifar100)"]),
            Case(name: "control characters in a .npy header", files: ["ctl.npy": npyFile(Data(count: 36), descr: "x\nerror: fake\u{1B}[31m", shape: [1, 1, 6, 6])],
                 arguments: ["predict", "good.yaml", "ctl.npy"], expected: ["x\\nerror: fake\\u{1B}[31m"]),
            Case(name: "yaml syntax", files: yaml("seed: 1\ndata: {train: [\n"), arguments: ["train", "c.yaml"], expected: ["c.yaml: YAML syntax error", "line"]),
            Case(name: "unknown nested key", files: yaml(config(["momentum: 0.9": "momentum: 0.9, learning_rate: 1"])), arguments: ["train", "c.yaml"], expected: ["optimizer.learning_rate: unknown key"]),
            Case(name: "wrong type", files: yaml(config(["lr: 0.05": "lr: fast"])), arguments: ["train", "c.yaml"], expected: ["optimizer.lr: expected a number"]),
            Case(name: "number in quotes", files: yaml(config(["lr: 0.05": "lr: '0.05'"])), arguments: ["train", "c.yaml"],
                 expected: ["optimizer.lr: expected a number, got the quoted string '0.05' (line"]),
            Case(name: "lr <= 0", files: yaml(config(["lr: 0.05": "lr: 0"])), arguments: ["train", "c.yaml"], expected: ["optimizer.lr: must be > 0"]),
            Case(name: "p out of range", files: yaml(config(["    - relu: {}": "    - dropout: {p: 1.5}"])), arguments: ["train", "c.yaml"], expected: ["model.layers[2].dropout.p: must be in [0, 1], got 1.5"]),
            Case(name: "batch size 0", files: yaml(config(["batch_size: 16": "batch_size: 0"])), arguments: ["train", "c.yaml"], expected: ["train.batch_size"]),
            Case(name: "batch larger than data", files: yaml(config(["batch_size: 16": "batch_size: 1000"])), arguments: ["train", "c.yaml"], expected: ["train.batch_size: 1000 is larger than the 64 training samples"]),
            Case(name: "kernel larger than input", files: yaml(config(["padding: 1}": "padding: 0}", "input: [1, 6, 6]": "input: [1, 2, 2]"])), arguments: ["train", "c.yaml"], expected: ["model.layers[0] (conv2d)", "larger than its input [1, 2, 2]"]),
            Case(name: "channels 0", files: yaml(config(["out_channels: 3": "out_channels: 0"])), arguments: ["train", "c.yaml"], expected: ["model.layers[0].conv2d.out_channels: must be"]),
            Case(name: "unknown layer", files: yaml(config(["- relu: {}": "- swish: {}"])), arguments: ["train", "c.yaml"], expected: ["model.layers[2]", "unknown layer 'swish'"]),
            Case(name: "unknown optimizer", files: yaml(config(["name: sgd": "name: lbfgs"])), arguments: ["train", "c.yaml"], expected: ["optimizer.name", "lbfgs"]),
            Case(name: "unknown init", files: yaml(config(["out_features: 4}": "out_features: 4, init: glorot}"])), arguments: ["train", "c.yaml"], expected: ["model.layers[5].dense.init", "glorot"]),
            Case(name: "bias_init without a bias", files: yaml(config(["out_features: 4}": "out_features: 4, bias: false, bias_init: 0.1}"])), arguments: ["train", "c.yaml"],
                 expected: ["model.layers[5].dense.bias_init: the layer has bias: false"]),
            Case(name: "bias_init not finite", files: yaml(config(["out_features: 4}": "out_features: 4, bias_init: .nan}"])), arguments: ["train", "c.yaml"],
                 expected: ["model.layers[5].dense.bias_init: must be a finite number within float32's range, got .nan"]),
            Case(name: "init value past float32", files: yaml(config(["out_features: 4}": "out_features: 4, init: {name: constant, value: 1e39}}"])), arguments: ["train", "c.yaml"],
                 expected: ["model.layers[5].dense.init.value: must be within float32's range, got 1e39"]),
            Case(name: "init std not finite", files: yaml(config(["out_features: 4}": "out_features: 4, init: {name: normal, std: .inf}}"])), arguments: ["train", "c.yaml"],
                 expected: ["model.layers[5].dense.init.std: must be a finite number >= 0 and within float32's range, got .inf"]),
            Case(name: "batchnorm init that needs a fan", files: yaml(config(["- batchnorm: {}": "- batchnorm: {init: xavier_uniform}"])), arguments: ["train", "c.yaml"],
                 expected: ["model.layers[1].batchnorm.init: batchnorm's weight and bias are vectors, which xavier_uniform cannot fill"]),
            Case(name: "unknown schedule", files: yaml(config(["name: cosine": "name: cyclic"])), arguments: ["train", "c.yaml"], expected: ["optimizer.schedule.name", "cyclic"]),
            Case(name: "shapes do not chain", files: yaml(config(["    - flatten: {}\n": ""])), arguments: ["train", "c.yaml"], expected: ["model.layers[4] (dense)", "[3, 3, 3]"]),
            Case(name: "config not found", arguments: ["train", "none.yaml"], expected: ["none.yaml: config file not found"]),
            Case(name: "config is a directory", files: yaml(config()), arguments: ["eval", "."], expected: [".: is a directory, expected a YAML config file"]),
            Case(name: "data file missing", files: yaml(config(["train-images.idx": "missing-images.idx"])), arguments: ["train", "c.yaml"], expected: ["data.train.images: missing-images.idx: no such file (a relative path is looked for next to the config, then in the current directory, "]),
            Case(name: "not IDX", files: ["bad.idx": Data("hello, world".utf8), "c.yaml": Data(config(["train-images.idx": "bad.idx"]).utf8)], arguments: ["train", "c.yaml"], expected: ["bad.idx: not an IDX file"]),
            Case(name: "truncated IDX", files: ["short.idx": images.prefix(200), "c.yaml": Data(config(["train-images.idx": "short.idx"]).utf8)], arguments: ["train", "c.yaml"], expected: ["short.idx: truncated"]),
            Case(name: "corrupt gzip", files: ["bad.gz": gzip, "c.yaml": Data(config(["train-images.idx": "bad.gz"]).utf8)], arguments: ["train", "c.yaml"], expected: ["bad.gz", "gzip"]),
            Case(name: "counts differ", files: ["c.yaml": Data(config(["labels: train-labels.idx": "labels: test-labels.idx"]).utf8)], arguments: ["train", "c.yaml"], expected: ["has 64 images but", "16 labels"]),
            Case(name: "label out of range", files: ["c.yaml": Data(config(["out_features: 4": "out_features: 3"]).utf8)], arguments: ["train", "c.yaml"], expected: ["train-labels.idx: label 3", "model with 3 outputs"]),
            Case(name: "image size mismatch", files: ["c.yaml": Data(config(["input: [1, 6, 6]": "input: [1, 5, 5]"]).utf8)], arguments: ["train", "c.yaml"], expected: ["train-images.idx", "model.input [1, 5, 5]"]),
            Case(name: "init.from missing tensor", files: ["w.safetensors": try weights { $0["5.bias"] = nil }, "c.yaml": Data(config(fromInit).utf8)], arguments: ["train", "c.yaml"], expected: ["w.safetensors: tensor '5.bias' is missing"]),
            Case(name: "init.from extra tensor", files: ["w.safetensors": try weights { $0["9.weight"] = .init(floats: [1], shape: [1]) }, "c.yaml": Data(config(fromInit).utf8)], arguments: ["train", "c.yaml"], expected: ["w.safetensors: tensor '9.weight' is not in this model"]),
            Case(name: "init.from wrong shape", files: ["w.safetensors": try weights { $0["5.bias"] = .init(floats: [1, 2], shape: [2]) }, "c.yaml": Data(config(fromInit).utf8)], arguments: ["train", "c.yaml"], expected: ["tensor '5.bias' has shape [2], the model needs [4]"]),
            Case(name: "init.from wrong dtype", files: ["w.safetensors": try weights { $0["5.bias"] = .init(int64: [1, 2, 3, 4], shape: [4]) }, "c.yaml": Data(config(fromInit).utf8)], arguments: ["train", "c.yaml"], expected: ["tensor '5.bias' has dtype I64"]),
            Case(name: "init.from not safetensors", files: ["w.safetensors": Data("not tensors".utf8), "c.yaml": Data(config(fromInit).utf8)], arguments: ["train", "c.yaml"], expected: ["w.safetensors: not a valid safetensors file"]),
            Case(name: "resume of a missing directory", files: ["c.yaml": Data(config().utf8)], arguments: ["train", "c.yaml", "--resume", "nowhere/7"], expected: ["nowhere/7", "no such checkpoint directory"]),
            Case(name: "eval with another architecture", files: ["c.yaml": Data(config(["out_channels: 3": "out_channels: 5"]).utf8)], arguments: ["eval", "c.yaml"], expected: ["model.safetensors: tensor '0.weight' has shape [3, 1, 3, 3], the model needs [5, 1, 3, 3]"]),
            Case(name: "loss becomes NaN", files: yaml(config(["lr: 0.05": "lr: 1.0e+30", "max_steps: 20": "max_steps: 40", "every_steps: 10": "every_steps: 1", "dir: run": "dir: diverged"],
                                                          layers: "    - flatten: {}\n    - dense: {out_features: 8}\n    - dense: {out_features: 4}")),
                 arguments: ["train", "c.yaml"], expected: ["step ", "became NaN", "before updating the weights"]),
            Case(name: "loss becomes NaN on 2 workers", files: yaml(config(["lr: 0.05": "lr: 1.0e+30", "max_steps: 20": "max_steps: 40", "dir: run": "dir: diverged2"],
                                                                        layers: "    - flatten: {}\n    - dense: {out_features: 8}\n    - dense: {out_features: 4}")),
                 arguments: ["train", "c.yaml"], expected: ["step ", "became NaN"], workers: 2),
            Case(name: "weight decay grows the weights", files: yaml(config(["lr: 0.05": "lr: 0.05, weight_decay: 1.0e+6", "max_steps: 20": "max_steps: 40", "dir: run": "dir: decayed"])),
                 arguments: ["train", "c.yaml"], expected: ["NaN or infinite", "(lower optimizer.lr or optimizer.weight_decay: with lr 0.05, weight decay 1000000.0 alone grows the weights at every step)"]),
            Case(name: "unwritable checkpoint directory", files: ["blocker": Data("x".utf8), "c.yaml": Data(config(["dir: run": "dir: blocker/run"]).utf8)], arguments: ["train", "c.yaml"], expected: ["blocker/run: cannot create the checkpoint directory, checkpoint.dir (Not a directory)"]),
            Case(name: "resume past the run's end", files: yaml(config(["max_steps: 20": "max_steps: 10"])), arguments: ["train", "c.yaml", "--resume", "auto"],
                 expected: ["c.yaml: train.max_steps: the run has 10 steps, but ", "run/checkpoints/20 is at step 20"]),
            Case(name: "NaN in training images", files: ["nan.npy": nanImages, "c.yaml": Data(config(["train-images.idx": "nan.npy", "dir: run": "dir: nanrun"]).utf8)],
                 arguments: ["train", "c.yaml"], expected: ["nan.npy: sample 5 holds a NaN or an infinity"]),
            Case(name: "NaN in test images, before the first step", files: ["nan.npy": nanImages, "c.yaml": Data(config(["test: {images: test-images.idx, labels: test-labels.idx}": "test: {images: nan.npy, labels: train-labels.idx}", "dir: run": "dir: nantest"]).utf8)],
                 arguments: ["train", "c.yaml"], expected: ["nan.npy: sample 5 holds a NaN or an infinity"]),
            Case(name: "NaN in images to predict", files: ["nan.npy": nanImages], arguments: ["predict", "good.yaml", "nan.npy"], expected: ["nan.npy: sample 5 holds a NaN or an infinity"]),
            Case(name: "init.from NaN", files: ["w.safetensors": try weights { $0["5.bias"] = .init(floats: [0, .nan, 0, 0], shape: [4]) }, "c.yaml": Data(config(fromInit).utf8)], arguments: ["train", "c.yaml"],
                 expected: ["w.safetensors: tensor '5.bias' holds a NaN or an infinity at element 1"]),
            Case(name: "empty file name", files: yaml(config(["train-images.idx": "''"])), arguments: ["train", "c.yaml"],
                 expected: ["c.yaml: data.train.images: expected a path, got an empty string"]),
            Case(name: "empty resume", arguments: ["train", "good.yaml", "--resume", ""], expected: ["--resume: expected auto or a checkpoint directory, got an empty string"]),
            Case(name: "predictions into a directory", arguments: ["predict", "good.yaml", "test-images.idx", "--output", "run"], expected: ["run: --output: is a directory"]),
            Case(name: "argument without a value", arguments: ["train", "good.yaml", "--set", "seed"], expected: ["--set seed: expected key.path=value (see 'cohort train --help')"]),
            Case(name: "recurrent weights past the parameter limit",
                 files: yaml(config(["input: [1, 6, 6]": "input: [6, 6]"], layers: "    - lstm: {hidden_size: 1000000000}\n    - dense: {out_features: 4}")),
                 arguments: ["train", "c.yaml"], expected: ["model.layers[0] (lstm): hidden_size 1000000000 makes the weights"]),
            Case(name: "bench batch past the memory", arguments: ["bench", "mlp", "--batch", "1000000000"], expected: ["--batch 1000000000"]),
            Case(name: "bench batch past the memory, one line from two workers", arguments: ["bench", "mlp", "--batch", "1000000000"],
                 expected: ["samples per worker need about"], workers: 2),
            Case(name: "debug option without --debug", arguments: ["train", "good.yaml", "--steps", "5"],
                 expected: ["--samples, --steps and --coordinates are options of --debug (to train N steps: --set train.max_steps=N)"]),
            Case(name: "negative number of steps", arguments: ["bench", "cnn", "--steps", "-1"], expected: ["--steps must be >= 1 (see 'cohort bench --help')"]),
            Case(name: "workload options to gemm", arguments: ["bench", "gemm", "--batch", "8", "--no-overlap"],
                 expected: ["--batch, --no-overlap do not apply to gemm (it times one 1024^3 product)"]),
            Case(name: "more workers than samples", files: ["c.yaml": Data(config(["batch_size: 16": "batch_size: 2"]).utf8)], arguments: ["train", "c.yaml"], expected: ["train.batch_size: 2 samples cannot be shared by 3 workers"], workers: 3),
            Case(name: "unknown option under mpirun", arguments: ["train", "good.yaml", "--bogus"],
                 expected: ["Unknown option '--bogus' (see 'cohort train --help')"], workers: 2),
            Case(name: "bad config under mpirun", files: ["c.yaml": Data(config(["lr: 0.05": "lr: -1"]).utf8)], arguments: ["train", "c.yaml"], expected: ["optimizer.lr: must be > 0 and within float32's range, got -1"], workers: 2),
        ] + recurrentWeightsPastTheMemory() + [oneSamplePastTheMemory()]
        var errors: [String: String] = [:]
        for item in cases {
            for (name, data) in item.files { try data.write(to: directory.appendingPathComponent(name)) }
            let result = try run(item.arguments, workers: item.workers)
            errors[item.name] = result.error
            XCTAssertFalse(result.signaled, "\(item.name): ended by a signal")
            XCTAssertTrue((1...127).contains(result.status), "\(item.name): exit status \(result.status)")
            XCTAssertEqual(result.error.split(separator: "\n").count, 1, "\(item.name): not one line: \(result.error)")
            XCTAssertTrue(result.error.hasPrefix("error: "), "\(item.name): \(result.error)")
            for text in item.expected {
                XCTAssertTrue(result.error.contains(text), "\(item.name): '\(result.error)' does not name '\(text)'")
            }
            for (name, _) in item.files { try? FileManager.default.removeItem(at: directory.appendingPathComponent(name)) }
        }
        XCTAssertEqual(try snapshot(), before, "a failed command changed the existing checkpoint")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("nantest").path), "a test set with a NaN was found only after training began")
        // The diverged run stopped at the step it diverged; its last checkpoint holds finite weights.
        let diverged = try XCTUnwrap(try CheckpointStore(runDirectory: directory.appendingPathComponent("diverged").path, keep: 3).latestDirectory())
        XCTAssertLessThan(Int(diverged.lastPathComponent) ?? 40, 40)
        // Steps are counted from 1, as the progress lines count them: the one after the last checkpoint.
        XCTAssertTrue(errors["loss becomes NaN", default: ""].hasPrefix("error: step \((Int(diverged.lastPathComponent) ?? 0) + 1): "),
                      errors["loss becomes NaN", default: ""])
        let last = try SafeTensors.read(path: diverged.appendingPathComponent("model.safetensors").path).tensors
        XCTAssertTrue(last.values.allSatisfy { $0.doubles().allSatisfy(\.isFinite) }, "the last checkpoint holds NaN or infinite weights")

        // A damaged checkpoint file is named, and --resume auto refuses it.
        let model = directory.appendingPathComponent("run/checkpoints/20/model.safetensors")
        var damaged = try Data(contentsOf: model)
        damaged[damaged.count - 3] ^= 0x01
        try damaged.write(to: model)
        try config().write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
        let resumed = try run(["train", "c.yaml", "--resume", "auto"], workers: 1)
        XCTAssertEqual(resumed.status, 1)
        XCTAssertTrue(resumed.error.contains("run/checkpoints/20/model.safetensors: checksum mismatch"), resumed.error)
    }

    /// `cohort train` of a model of `layers` on small synthetic data, in a new directory, after `limit`.
    func trainUnderLimit(_ limit: String, layers: String) throws -> (status: Int32, error: String, signaled: Bool) {
        directory = try temporaryDirectory(self)
        _ = try writeSyntheticData(in: directory, name: "train", count: 64, rows: 6, columns: 6, classes: 4, seed: 1)
        _ = try writeSyntheticData(in: directory, name: "test", count: 16, rows: 6, columns: 6, classes: 4, seed: 2)
        try config(layers: layers).write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
        return try run(["train", "c.yaml"], workers: 1, shellFirst: limit)
    }

    /// A model that fits the machine but not the address space `ulimit -v` leaves (HPC sites set
    /// one) is refused before its buffers are allocated: one line naming the limit, status 1 (the
    /// allocation had ended the process by SIGABRT with a backtrace).
    func testAModelPastTheAddressSpaceLimitIsOneLine() throws {
        // 36 x 1,000,000 + 1,000,000 x 600 weights: about 12 GiB with gradients and optimizer state.
        let (status, message, signaled) = try trainUnderLimit("ulimit -v 4000000",
            layers: "    - flatten: {}\n    - dense: {out_features: 1000000}\n    - dense: {out_features: 600}\n    - dense: {out_features: 4}")
        XCTAssertFalse(signaled, message)
        XCTAssertEqual(status, 1, message)
        XCTAssertEqual(message.split(separator: "\n").count, 1, message)
        XCTAssertTrue(message.hasPrefix("error: c.yaml: model.layers: 637003004 parameters need about"), message)
        XCTAssertTrue(message.contains("that ulimit -v leaves this worker"), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("run").path))
    }

    /// CIFAR's images are copied out of their records, so a batch file that the address space can
    /// map but not copy is refused before the copy (the failed allocation had ended in SIGSEGV).
    func testCIFARImagesPastTheAddressSpaceLimitAreOneLine() throws {
        directory = try temporaryDirectory(self)
        let batch = directory.appendingPathComponent("big.bin")
        FileManager.default.createFile(atPath: batch.path, contents: nil)
        let handle = try FileHandle(forWritingTo: batch)
        try handle.truncate(atOffset: 500_000 * 3073)  // sparse: 1.4 GiB of images that take no disk
        try handle.close()
        try """
            data: {train: {cifar10: [big.bin]}}
            model: {input: [3, 32, 32], layers: [flatten, {dense: {out_features: 10}}]}
            optimizer: {name: sgd, lr: 0.1}
            train: {batch_size: 64, max_steps: 1}
            checkpoint: {dir: run}
            """.write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
        let (status, message, signaled) = try run(["train", "c.yaml"], workers: 1, shellFirst: "ulimit -v 3000000")
        XCTAssertFalse(signaled, message)
        XCTAssertEqual(status, 1, message)
        XCTAssertEqual(message.split(separator: "\n").count, 1, message)
        XCTAssertTrue(message.hasPrefix("error: \(batch.path): the 500000 images are copied out of the records"), message)
        XCTAssertTrue(message.contains("that ulimit -v leaves this worker"), message)
    }

    /// Under a limit too small to start MPI and OpenBLAS in, one line before anything else: a lone
    /// process under `ulimit -v 250000` hung (OpenBLAS's threads retry their mmap forever, and the
    /// exit waited for them), under 400000 it printed pages of PMIx errors.
    func testAnAddressSpaceTooSmallToStartIsOneLineNotAHang() throws {
        for limit in ["ulimit -v 250000", "ulimit -v 400000"] {
            let (status, message, signaled) = try trainUnderLimit(limit, layers: "    - flatten: {}\n    - dense: {out_features: 4}")
            XCTAssertFalse(signaled, message)
            XCTAssertEqual(status, 1, message)
            XCTAssertEqual(message.split(separator: "\n").count, 1, message)
            XCTAssertTrue(message.hasPrefix("error: ulimit -v allows this process") && message.hasSuffix("before any work; raise the limit\n"), message)
        }
    }

    /// An address space too small for OpenBLAS's workspace is an error, not a spin: OpenBLAS retries
    /// mmap forever when it cannot map its buffer.
    func testAnAddressSpaceTooSmallForOpenBLASIsAnErrorNotAHang() throws {
        let (status, message, signaled) = try trainUnderLimit("ulimit -v 600000", layers: "    - flatten: {}\n    - dense: {out_features: 4}")
        XCTAssertFalse(signaled, message)
        XCTAssertEqual(status, 1, message)
        let last = message.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue(last.hasPrefix("error: ulimit -v leaves this process") && last.contains("OpenBLAS maps about"), message)
    }
}
