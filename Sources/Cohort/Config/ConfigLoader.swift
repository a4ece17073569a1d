import Foundation
import Yams

/// Reads a YAML config into a `TrainingConfig`, checking every key, type and range.
public enum ConfigLoader {
    /// Bounds that keep every size computation far from overflow; real models are much smaller.
    static let largestWidth = 1 << 20
    static let largestWindow = 4096
    static let largestSize = 1 << 31

    /// Loads and checks the config at `path`, with `overrides` (`--set`) applied before the check.
    public static func load(path: String, overrides: [ConfigOverride] = []) throws -> TrainingConfig {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CohortError("\(path): config file not found")
        }
        guard !isDirectory.boolValue else { throw CohortError("\(path): is a directory, expected a YAML config file") }
        var status = stat()
        if stat(path, &status) == 0 && (status.st_mode & S_IFMT) != S_IFREG {
            // Every worker reads the config, and a resumed run names it: a pipe is read once, by one.
            throw CohortError("\(path): is \((status.st_mode & S_IFMT) == S_IFIFO ? "a pipe" : "a device or socket"), not a file; save the config to a file")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw CohortError("\(path): cannot read the config file (not readable or not UTF-8 text)")
        }
        return try parse(text, file: path, overrides: overrides)
    }

    /// Checks a config given as text; `file` names it in messages and anchors relative paths.
    ///
    /// With `overrides`, the checked tree is the file's with their values in it, and the config's
    /// `sourceText` (what checkpoints keep) is that tree written out as YAML.
    public static func parse(_ text: String, file: String, overrides: [ConfigOverride] = []) throws -> TrainingConfig {
        var root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw CohortError("\(file): the config is empty")
            }
            root = node
        } catch let error as YamlError {
            throw CohortError("\(file): YAML syntax error: \(describe(error))")
        }
        guard !overrides.isEmpty else { return try check(root, text: text, file: file) }
        for override in overrides { root = try override.apply(to: root, file: file) }
        // One comment line: a value may hold line breaks (a flow mapping written over several lines).
        let header = "# \(file) with " + overrides.map { "--set \($0)" }.joined(separator: " ")
            .replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n") + "\n"
        let effective: String
        do {
            effective = header + (try Yams.serialize(node: root))
        } catch {
            throw CohortError("\(file): cannot write the config with its --set values as YAML (\(error))")
        }
        do {
            var config = try check(root, text: effective, file: file)
            config.overrides = overrides
            return config
        } catch let error as CohortError {
            throw annotate(error, overrides: overrides, file: file)
        }
    }

    /// An error about a value that came from `--set` (or about a mapping it added) says so, instead
    /// of quoting a line of the file. `file: path: message` or, a layer's, `file: path (kind): message`.
    static func annotate(_ error: CohortError, overrides: [ConfigOverride], file: String) -> CohortError {
        let start = "\(file): "
        guard error.message.hasPrefix(start), let end = error.message.dropFirst(start.count).range(of: ": ") else { return error }
        var path = String(error.message[error.message.index(error.message.startIndex, offsetBy: start.count)..<end.lowerBound])
        if let kind = path.range(of: " (") { path = String(path[..<kind.lowerBound]) }
        func within(_ inner: String, _ outer: String) -> Bool {
            inner == outer || (inner.hasPrefix(outer) && [".", "["].contains(inner.dropFirst(outer.count).first))
        }
        for override in overrides.reversed() where within(path, override.pathDescription) || within(override.pathDescription, path) {
            var message = error.message
            if let line = message.range(of: #" \(line \d+\)$"#, options: .regularExpression) { message.removeSubrange(line) }
            return CohortError("\(message) (--set \(override))", sameOnEveryWorker: error.sameOnEveryWorker)
        }
        return error
    }

    /// Reads the composed tree `root` of the config `text`.
    private static func check(_ root: Node, text: String, file: String) throws -> TrainingConfig {
        var top = try YAMLTable(root, file: file, path: "")
        top.accepted = ["seed", "data", "model", "optimizer", "train", "checkpoint", "distributed"]
        var config = TrainingConfig()
        config.sourcePath = file
        config.sourceText = text
        let base = URL(fileURLWithPath: file).deletingLastPathComponent().path
        if let seed = try top.int("seed", range: 0...Int.max) { config.seed = UInt64(seed) }
        guard var data = try top.table("data") else { throw top.missing("data", "the training data is required") }
        config.data = try readData(&data, base: base)
        guard var model = try top.table("model") else { throw top.missing("model", "the model is required") }
        config.model = try readModel(&model, base: base)
        if var optimizer = try top.table("optimizer") { config.optimizer = try readOptimizer(&optimizer) }
        guard var train = try top.table("train") else { throw top.missing("train", "train.batch_size and max_steps or epochs are required") }
        config.train = try readTrain(&train)
        if var checkpoint = try top.table("checkpoint") { config.checkpoint = try readCheckpoint(&checkpoint) }
        if var distributed = try top.table("distributed") {
            // At least a second: a shorter limit ends collectives that are merely starting up, at different
            // points on different workers, whose next collectives then mismatch (a wrong diagnosis).
            config.distributed.timeoutSeconds = try distributed.double("timeout_s", { $0 >= 1 }, expected: ">= 1 (seconds)") ?? 60
            if let name = try distributed.string("compress") {
                guard let compress = GradientCompression(rawValue: name) else {
                    throw distributed.fail("compress", "unknown compression '\(name)' (expected none or bf16)")
                }
                config.distributed.compress = compress
            }
            config.distributed.overlap = try distributed.bool("overlap") ?? true
            config.distributed.bucketMB = try distributed.double("bucket_mb", { $0 > 0 && $0 <= 4096 }, expected: "in (0, 4096]") ?? 1
            try distributed.finish()
        }
        try top.finish()
        return config
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            // libyaml names its own function here ("..., set with yaml_set_max_nest_level()").
            let text = problem.hasPrefix("Maximum nesting level reached") ? "nested deeper than the YAML reader's 1,000 levels" : problem
            return "\(text) (line \(mark.line), column \(mark.column))"
        default:
            return String(describing: error).split(separator: "\n").first.map(String.init) ?? "unreadable YAML"
        }
    }

    /// A relative path is looked up next to the config file first, then in the current directory.
    static func resolve(_ path: String, base: String) -> String {
        if path.hasPrefix("/") { return path }
        let beside = URL(fileURLWithPath: base).appendingPathComponent(path).standardized.path
        return FileManager.default.fileExists(atPath: beside) ? beside : path
    }

    private static func readData(_ table: inout YAMLTable, base: String) throws -> DataConfig {
        var data = DataConfig()
        func files(_ key: String) throws -> DataFiles? {
            guard var files = try table.table(key) else { return nil }
            let known = ["images", "labels"] + CIFARFormat.allCases.map(\.rawValue)
            // Before a missing key: `cifar20: [...]` is a misspelling, not a missing `images`.
            if let unknown = files.keys.first(where: { !known.contains($0) }) {
                throw files.fail(unknown, "unknown key (expected images and labels, or \(CIFARFormat.allCases.map(\.rawValue).joined(separator: " or ")))",
                                 files.node(unknown)?.mark)
            }
            let given = known.filter { files.contains($0) }
            if let format = CIFARFormat.allCases.first(where: { files.contains($0.rawValue) }) {
                guard given.count == 1 else {
                    throw files.fail(given.first { $0 != format.rawValue }!, "give either images and labels, or \(format.rawValue) (a list of batch files)")
                }
                let paths = try fileList(&files, format.rawValue)
                try files.finish()
                return .cifar(format, paths.map { resolve($0, base: base) })
            }
            guard let images = try files.path("images") else { throw files.missing("images", "the IDX or .npy file of images (or cifar10: [FILE, ...])") }
            guard let labels = try files.path("labels") else { throw files.missing("labels", "the IDX or .npy file of labels") }
            try files.finish()
            return .arrays(IDXPair(images: resolve(images, base: base), labels: resolve(labels, base: base)))
        }
        data.train = try files("train")
        data.test = try files("test")
        data.scale = try table.double("scale", { $0 > 0 && isFloat32($0) && Float($0) > 0 }, expected: "> 0 and within float32's range")
            ?? data.scale
        data.shuffle = try table.bool("shuffle") ?? true
        if var normalize = try table.table("normalize") {
            normalize.accepted = ["mean", "std"]
            guard let mean = try normalize.doubleList("mean") else { throw normalize.missing("mean", "one mean per channel, e.g. [0.4914, 0.4822, 0.4465]") }
            guard let std = try normalize.doubleList("std") else { throw normalize.missing("std", "one standard deviation per channel, e.g. [0.2470, 0.2435, 0.2616]") }
            guard !mean.isEmpty else { throw normalize.fail("mean", "expected one number per channel, got an empty list") }
            guard std.count == mean.count else { throw normalize.fail("std", "\(std.count) value\(std.count == 1 ? "" : "s") but mean has \(mean.count)") }
            guard std.allSatisfy({ $0 > 0 }) else {
                throw normalize.fail("std", "each must be > 0, got [\(std.map { String($0) }.joined(separator: ", "))]")
            }
            // The transform runs in float32: (x - mean) / std.
            if let bad = mean.first(where: { !isFloat32($0) }) {
                throw normalize.fail("mean", "each must be within float32's range, got \(bad)")
            }
            if let bad = std.first(where: { !Float($0).isNormal }) {
                throw normalize.fail("std", "each must be a normal float32 (1.2e-38 to 3.4e38), got \(bad)")
            }
            try normalize.finish()
            data.normalize = NormalizeConfig(mean: mean, std: std)
        }
        if var augment = try table.table("augment") {
            if var crop = try augment.table("random_crop") {
                crop.accepted = ["padding"]
                guard let padding = try crop.int("padding", range: 0...ConfigLoader.largestWindow) else {
                    throw crop.missing("padding", "the zero padding on every side, in pixels")
                }
                try crop.finish()
                data.augment.cropPadding = padding
            }
            data.augment.flipProbability = try augment.double("horizontal_flip", { (0...1).contains($0) }, expected: "a probability in [0, 1]") ?? 0
            try augment.finish()
        }
        try table.finish()
        return data
    }

    /// `key: [FILE, ...]` (or one FILE): a non-empty list of paths.
    private static func fileList(_ table: inout YAMLTable, _ key: String) throws -> [String] {
        guard let node = table.node(key) else { throw table.missing(key, "a list of batch files") }
        if case .scalar(let scalar) = node, !scalar.string.isEmpty { return [scalar.string] }
        guard case .sequence(let sequence) = node, !sequence.isEmpty else {
            throw table.fail(key, "expected a non-empty list of batch files, got \(YAMLTable.describe(node))", node.mark)
        }
        return try sequence.map { element in
            guard case .scalar(let scalar) = element, !scalar.string.isEmpty else {
                throw table.fail(key, "expected a list of file names, got \(YAMLTable.describe(element)) in it", element.mark)
            }
            return scalar.string
        }
    }

    private static func readModel(_ table: inout YAMLTable, base: String) throws -> ModelConfig {
        var model = ModelConfig()
        table.accepted = ["input", "layers", "init", "convolution"]
        guard let input = try table.intList("input") else {
            throw table.missing("input", "the input shape, [C, H, W] for images, [T, F] for sequences")
        }
        guard !input.isEmpty, input.count <= 3, input.allSatisfy({ $0 >= 1 }) else {
            throw table.fail("input", "expected 1 to 3 dimensions, each >= 1, got \(Cohort.describe(input))")
        }
        guard let size = elementCount(input), size <= ConfigLoader.largestSize else {
            throw table.fail("input", "\(Cohort.describe(input)) has more than \(ConfigLoader.largestSize) values per sample")
        }
        model.input = input
        guard let layers = table.node("layers") else { throw table.missing("layers", "the list of layers") }
        guard case .sequence(let sequence) = layers, !sequence.isEmpty else {
            throw table.fail("layers", "expected a non-empty list of layers", layers.mark)
        }
        model.layers = try sequence.enumerated().map { index, node in
            try readLayer(node, file: table.file, path: "model.layers[\(index)]")
        }
        if var initTable = try table.table("init") {
            if let from = try initTable.path("from") { model.initFrom = resolve(from, base: base) }
            try initTable.finish()
        }
        if let given = try table.string("convolution") {
            guard let preference = ConvolutionPreference(rawValue: given) else {
                throw table.fail("convolution", "unknown '\(given)' (expected auto, im2col or winograd)", table.node("convolution")?.mark)
            }
            model.convolution = preference
        }
        try table.finish()
        return model
    }

    private static func readLayer(_ node: Node, file: String, path: String) throws -> LayerSpec {
        let name: String
        var options: YAMLTable
        if case .scalar(let scalar) = node {
            name = scalar.string
            options = try YAMLTable(Node.mapping(.init([])), file: file, path: "\(path).\(name)")
        } else {
            let wrapper = try YAMLTable(node, file: file, path: path)
            guard wrapper.keys.count == 1, let key = wrapper.keys.first else {
                throw YAMLTable.error(file, path, "expected one layer as `name: {options}`, got keys \(wrapper.keys)", node.mark)
            }
            name = key
            var copy = wrapper
            let inner = copy.node(key) ?? Node.mapping(.init([]))
            options = try YAMLTable(inner, file: file, path: "\(path).\(name)")
        }
        let spec: LayerSpec
        options.accepted = layerKeys[name]
        switch name {
        case "conv2d":
            guard let out = try options.int("out_channels", range: 1...ConfigLoader.largestWidth) else { throw options.missing("out_channels", "required") }
            guard let kernel = try options.side("kernel_size", range: 1...ConfigLoader.largestWindow) else { throw options.missing("kernel_size", "required") }
            let stride = try options.side("stride", range: 1...ConfigLoader.largestWindow) ?? 1
            let padding = try options.side("padding", range: 0...ConfigLoader.largestWindow) ?? 0
            let bias = try options.bool("bias") ?? true
            spec = .conv2d(outChannels: out, kernel: kernel, stride: stride, padding: padding, bias: bias,
                           initializer: try readInit(&options, bias: bias))
        case "dense", "linear":
            guard let out = try options.int("out_features", range: 1...ConfigLoader.largestWidth) else { throw options.missing("out_features", "required") }
            let bias = try options.bool("bias") ?? true
            spec = .dense(outFeatures: out, bias: bias, initializer: try readInit(&options, bias: bias))
        case "batchnorm":
            if options.isNull("momentum") {
                throw options.fail("momentum", "null is PyTorch's cumulative average (momentum=None), which Cohort does not offer; give a number in [0, 1] (default 0.1)")
            }
            let momentum = try options.double("momentum", { (0...1).contains($0) }, expected: "in [0, 1]") ?? 0.1
            let eps = try options.double("eps", isPositiveFloat32, expected: positiveFloat32) ?? 1e-5
            let sync = try options.bool("sync") ?? true
            let initializer = try readInit(&options)
            for (key, given) in [("init", initializer.weight), ("bias_init", initializer.bias)] {
                if let given, !given.fillsAVector {
                    throw options.fail(key, "batchnorm's weight and bias are vectors, which \(given.name) cannot fill (it needs a fan-in and fan-out): use constant, normal or uniform", options.node(key)?.mark)
                }
            }
            spec = .batchnorm(momentum: momentum, epsilon: eps, synchronized: sync, initializer: initializer)
        case "dropout":
            spec = .dropout(p: try options.double("p", { (0...1).contains($0) }, expected: "in [0, 1]") ?? 0.5)
        case "relu", "sigmoid", "tanh":
            spec = .activation(Activation<Float>.Function(rawValue: name)!)
        case "maxpool2d", "avgpool2d":
            guard let kernel = try options.side("kernel_size", range: 1...ConfigLoader.largestWindow) else { throw options.missing("kernel_size", "required") }
            let stride = try options.side("stride", range: 1...ConfigLoader.largestWindow) ?? kernel
            let padding = try options.side("padding", range: 0...ConfigLoader.largestWindow) ?? 0
            spec = .pool(Pool2D<Float>.Mode(rawValue: name)!, kernel: kernel, stride: stride, padding: padding)
        case "flatten":
            spec = .flatten
        case "adaptiveavgpool2d":
            guard let node = options.node("output_size") else { throw options.missing("output_size", "the output's [height, width], or one number for both") }
            if let size = node.int {
                guard (1...ConfigLoader.largestWindow).contains(size) else {
                    throw options.fail("output_size", "must be in 1...\(ConfigLoader.largestWindow), got \(size)", node.mark)
                }
                spec = .adaptiveAvgPool(outHeight: size, outWidth: size)
            } else if let sizes = try options.intList("output_size") {
                guard sizes.count == 2, sizes.allSatisfy({ (1...ConfigLoader.largestWindow).contains($0) }) else {
                    throw options.fail("output_size", "expected one number or [height, width], each in 1...\(ConfigLoader.largestWindow), got \(Cohort.describe(sizes))", node.mark)
                }
                spec = .adaptiveAvgPool(outHeight: sizes[0], outWidth: sizes[1])
            } else {
                throw options.fail("output_size", "expected one number or [height, width], got \(YAMLTable.describe(node))", node.mark)
            }
        case "residual":
            func branch(_ key: String, required: Bool) throws -> [LayerSpec] {
                guard let node = options.node(key) else {
                    if required { throw options.missing(key, "the list of layers of the main branch") }
                    return []
                }
                guard case .sequence(let items) = node else {
                    throw options.fail(key, "expected a list of layers (empty: the identity)", node.mark)
                }
                return try items.enumerated().map { index, item in
                    try readLayer(item, file: file, path: "\(path).residual.\(key)[\(index)]")
                }
            }
            spec = .residual(body: try branch("body", required: true), shortcut: try branch("shortcut", required: false))
        case "lstm", "gru", "rnn":
            guard let hidden = try options.int("hidden_size", range: 1...ConfigLoader.largestSize) else {
                throw options.missing("hidden_size", "the size of the hidden state")
            }
            let sequences = try options.bool("return_sequences") ?? false
            let bias = try options.bool("bias") ?? true
            var nonlinearity = RNN<Float>.Nonlinearity.tanh
            if name == "rnn", let given = try options.string("nonlinearity") {
                guard let known = RNN<Float>.Nonlinearity(rawValue: given) else {
                    throw options.fail("nonlinearity", "unknown nonlinearity '\(given)' (expected tanh or relu)")
                }
                nonlinearity = known
            }
            let initializer = try readInit(&options, bias: bias)
            switch name {
            case "lstm": spec = .lstm(hiddenSize: hidden, returnSequences: sequences, bias: bias, initializer: initializer)
            case "gru": spec = .gru(hiddenSize: hidden, returnSequences: sequences, bias: bias, initializer: initializer)
            default: spec = .rnn(hiddenSize: hidden, nonlinearity: nonlinearity, returnSequences: sequences, bias: bias,
                                 initializer: initializer)
            }
        default:
            throw YAMLTable.error(file, path, "unknown layer '\(name)' (expected one of conv2d, dense or linear, batchnorm, dropout, relu, sigmoid, tanh, maxpool2d, avgpool2d, adaptiveavgpool2d, flatten, residual, lstm, gru, rnn)", node.mark)
        }
        try options.finish()
        return spec
    }

    /// `init` and `bias_init` (a number is a constant); `bias`: whether the layer has a bias.
    private static func readInit(_ table: inout YAMLTable, bias: Bool = true) throws -> LayerInit {
        var result = LayerInit()
        if let node = table.node("init") { result.weight = try readInitializer(node, table: table, key: "init") }
        if let node = table.node("bias_init") {
            guard bias else { throw table.fail("bias_init", "the layer has bias: false", node.mark) }
            if let value = node.float ?? node.int.map(Double.init) {
                guard isFloat32(value) else {
                    throw table.fail("bias_init", "must be a finite number within float32's range, got \(node.string ?? String(value))", node.mark)
                }
                result.bias = .constant(value)
            } else {
                let given = try readInitializer(node, table: table, key: "bias_init")
                guard given.fillsAVector else {
                    throw table.fail("bias_init", "a bias is a vector, which \(given.name) cannot fill (it needs a fan-in and fan-out, as in PyTorch): use constant, normal or uniform", node.mark)
                }
                result.bias = given
            }
        }
        return result
    }

    /// The keys of each layer's options (for `YAMLTable.accepted`).
    private static let layerKeys: [String: Set<String>] = {
        let initial: Set<String> = ["init", "bias_init"], pool: Set<String> = ["kernel_size", "stride", "padding"]
        let recurrent = initial.union(["hidden_size", "return_sequences", "bias"])
        return ["conv2d": initial.union(["out_channels", "kernel_size", "stride", "padding", "bias"]),
                "dense": initial.union(["out_features", "bias"]), "linear": initial.union(["out_features", "bias"]),
                "maxpool2d": pool, "avgpool2d": pool, "adaptiveavgpool2d": ["output_size"], "residual": ["body", "shortcut"],
                "lstm": recurrent, "gru": recurrent, "rnn": recurrent.union(["nonlinearity"])]
    }()

    /// The keys of an initializer's options, of every initializer (for `YAMLTable.accepted`).
    private static let initializerKeys: Set<String> = ["name", "value", "mean", "std", "bound", "gain"]

    static let initializerNames = ["constant", "normal", "uniform", "xavier_uniform", "xavier_normal",
                                   "he_uniform", "he_normal", "lecun_normal", "orthogonal"]

    /// What an unknown initializer's message lists: the names, PyTorch's for He's, and for Keras's
    /// Glorot names, PyTorch's.
    static func initializerChoices(for name: String) -> String {
        "expected one of \(initializerNames.joined(separator: ", ")), or kaiming_uniform and kaiming_normal for he_uniform and he_normal"
            + (name.lowercased().hasPrefix("glorot") ? "; Glorot's initialization is xavier_uniform or xavier_normal, as PyTorch names it" : "")
    }

    /// `init: xavier_uniform` or `init: {name: normal, std: 0.01}`.
    private static func readInitializer(_ node: Node, table: YAMLTable, key: String) throws -> Initializer {
        var options: YAMLTable
        let name: String
        let path = child(table.path, key)
        if case .scalar(let scalar) = node {
            name = scalar.string
            options = try YAMLTable(Node.mapping(.init([])), file: table.file, path: path)
        } else {
            options = try YAMLTable(node, file: table.file, path: path)
            options.accepted = initializerKeys
            guard let given = try options.string("name") else { throw options.missing("name", "one of \(initializerNames.joined(separator: ", "))") }
            name = given
        }
        let result: Initializer
        switch name {
        case "constant":
            guard let value = try options.double("value", isFloat32, expected: "within float32's range") else {
                throw options.missing("value", "constant needs a value")
            }
            result = .constant(value)
        case "normal":
            let mean = try options.double("mean", isFloat32, expected: "within float32's range") ?? 0
            result = .normal(mean: mean, std: try options.double("std", { $0 >= 0 && isFloat32($0) }, expected: ">= 0 and within float32's range") ?? 1)
        case "uniform":
            result = .uniform(bound: try options.double("bound", { $0 >= 0 && isFloat32($0) }, expected: ">= 0 and within float32's range") ?? 1)
        case "xavier_uniform": result = .xavierUniform(gain: try options.double("gain", { $0 > 0 }, expected: "> 0") ?? 1)
        case "xavier_normal": result = .xavierNormal(gain: try options.double("gain", { $0 > 0 }, expected: "> 0") ?? 1)
        case "he_uniform", "kaiming_uniform": result = .heUniform
        case "he_normal", "kaiming_normal": result = .heNormal
        case "lecun_normal": result = .lecunNormal
        case "orthogonal": result = .orthogonal(gain: try options.double("gain", { $0 > 0 }, expected: "> 0") ?? 1)
        default:
            throw YAMLTable.error(table.file, path, "unknown initialization '\(name)' (\(initializerChoices(for: name)))", node.mark)
        }
        try options.finish()
        return result
    }

    /// `optimizer:`: `name` picks the optimizer, which takes only its own keys (`OptimizerName.keys`)
    /// besides `lr` and `schedule`; what is not given is PyTorch's default.
    private static func readOptimizer(_ table: inout YAMLTable) throws -> OptimizerConfig {
        let given = try table.string("name") ?? "sgd"
        guard let name = OptimizerName(rawValue: given) else {
            let names = OptimizerName.allCases.map(\.rawValue).joined(separator: ", ")
            throw table.fail("name", "unknown optimizer '\(given)' (expected one of \(names))")
        }
        let own = Set(name.keys + ["name", "lr", "schedule"])
        for key in table.keys where !own.contains(key) {
            let owners = OptimizerName.allCases.filter { $0.keys.contains(key) }.map(\.rawValue)
            guard !owners.isEmpty else { continue }
            // Another optimizer's key set to null is no setting (`--set optimizer.momentum=null` when
            // switching to adam): read, and left out.
            if table.isNull(key) {
                _ = table.node(key)
                continue
            }
            let mark = table.node(key)?.mark
            throw table.fail(key, "\(name.rawValue) has no such setting (\(owners.joined(separator: " and ")) \(owners.count == 1 ? "has" : "have") it); \(name.rawValue) takes lr, \(name.keys.joined(separator: ", ")) and schedule", mark)
        }
        let lr = try table.double("lr", isPositiveFloat32, expected: positiveFloat32) ?? name.defaultLearningRate
        var optimizer = OptimizerConfig.defaults(for: name, lr: lr)
        optimizer.weightDecay = try table.double("weight_decay", { $0 >= 0 }, expected: ">= 0") ?? optimizer.weightDecay
        optimizer.eps = try table.double("eps", isPositiveFloat32, expected: positiveFloat32) ?? optimizer.eps
        switch name {
        case .sgd:
            optimizer.momentum = try table.double("momentum", { $0 >= 0 }, expected: ">= 0") ?? 0
            optimizer.dampening = try table.double("dampening", { (0...1).contains($0) }, expected: "in [0, 1]") ?? 0
            optimizer.nesterov = try table.bool("nesterov") ?? false
            if optimizer.nesterov && (optimizer.momentum == 0 || optimizer.dampening != 0) {
                throw table.fail("nesterov", "Nesterov momentum needs momentum > 0 and dampening 0 (as in PyTorch)")
            }
        case .adam, .adamw:
            if let betas = try table.doubleList("betas") {
                guard betas.count == 2 else { throw table.fail("betas", "expected two numbers [beta1, beta2], got \(betas.count)") }
                guard betas.allSatisfy({ $0 >= 0 && $0 < 1 }) else {
                    throw table.fail("betas", "each must be in [0, 1), got [\(betas.map { String($0) }.joined(separator: ", "))]")
                }
                (optimizer.beta1, optimizer.beta2) = (betas[0], betas[1])
            }
            optimizer.amsgrad = try table.bool("amsgrad") ?? false
        case .rmsprop:
            optimizer.alpha = try table.double("alpha", { $0 >= 0 && $0 < 1 }, expected: "in [0, 1)") ?? optimizer.alpha
            optimizer.momentum = try table.double("momentum", { $0 >= 0 }, expected: ">= 0") ?? 0
            optimizer.centered = try table.bool("centered") ?? false
        case .adagrad:
            optimizer.lrDecay = try table.double("lr_decay", { $0 >= 0 }, expected: ">= 0") ?? 0
            optimizer.initialAccumulatorValue = try table.double("initial_accumulator_value", { $0 >= 0 }, expected: ">= 0") ?? 0
        }
        if var schedule = try table.table("schedule") {
            optimizer.schedule = try readSchedule(&schedule)
        }
        try table.finish()
        return optimizer
    }

    private static func readSchedule(_ table: inout YAMLTable) throws -> ScheduleConfig {
        var schedule = ScheduleConfig()
        let name = try table.string("name") ?? "constant"
        guard let kind = ScheduleConfig.Kind(rawValue: name) else {
            throw table.fail("name", "unknown schedule '\(name)' (expected one of constant, step, cosine)")
        }
        schedule.kind = kind
        table.accepted = ["name", "step_size", "gamma", "warmup_steps"]
        if kind == .step {
            guard let size = try table.int("step_size", range: 1...Int.max) else { throw table.missing("step_size", "the step schedule needs step_size") }
            schedule.stepSize = size
            schedule.gamma = try table.double("gamma", { $0 > 0 }, expected: "> 0") ?? 0.1
        }
        schedule.warmupSteps = try table.int("warmup_steps", range: 0...Int.max) ?? 0
        try table.finish()
        return schedule
    }

    private static func readTrain(_ table: inout YAMLTable) throws -> TrainConfig {
        var train = TrainConfig()
        table.accepted = ["batch_size", "max_steps", "epochs", "loss", "log_every_steps", "clip_grad_norm",
                          "histograms_every_steps", "accumulate"]
        if let node = table.node("batch_size") {
            if node.string == "full" {
                train.batchSize = .full
            } else if let size = node.int {
                guard size >= 1 else { throw table.fail("batch_size", "must be >= 1 or 'full', got \(size)", node.mark) }
                train.batchSize = .samples(size)
            } else if let text = YAMLTable.unquotedWholeNumber(node) {
                throw table.fail("batch_size", "must fit in 64 bits, got \(text)", node.mark)
            } else {
                throw table.fail("batch_size", "expected a number of samples or 'full', got \(YAMLTable.describe(node))", node.mark)
            }
        }
        train.maxSteps = try table.int("max_steps", range: 1...Int.max)
        train.epochs = try table.int("epochs", range: 1...1_000_000_000)
        if train.maxSteps != nil && train.epochs != nil {
            throw table.fail("epochs", "give either max_steps or epochs, not both")
        }
        if train.maxSteps == nil && train.epochs == nil {
            throw table.missing("max_steps", "give max_steps or epochs")
        }
        train.loss = try table.string("loss") ?? "cross_entropy"
        guard train.loss == "cross_entropy" else { throw table.fail("loss", "unknown loss '\(train.loss)' (expected cross_entropy)") }
        train.logEverySteps = try table.int("log_every_steps", range: 1...Int.max) ?? train.logEverySteps
        train.clipGradNorm = try table.double("clip_grad_norm", isPositiveFloat32, expected: positiveFloat32)
        train.histogramsEverySteps = try table.int("histograms_every_steps", range: 1...Int.max)
        train.accumulate = try table.int("accumulate", range: 1...Int.max) ?? 1
        if case .samples(let size) = train.batchSize, train.accumulate > size {
            throw table.fail("accumulate", "\(train.accumulate) micro-batches cannot split train.batch_size \(size) (at most one per sample)")
        }
        try table.finish()
        return train
    }

    private static func readCheckpoint(_ table: inout YAMLTable) throws -> CheckpointConfig {
        var checkpoint = CheckpointConfig()
        if let dir = try table.path("dir") {
            guard !dir.isEmpty else { throw table.fail("dir", "must not be empty") }
            checkpoint.dir = dir
        }
        checkpoint.everySteps = try table.int("every_steps", range: 0...Int.max) ?? 0
        checkpoint.keep = try table.int("keep", range: 1...Int.max) ?? 3
        try table.finish()
        return checkpoint
    }
}

/// Whether `value` is a finite float32 (weights are stored as float32).
private func isFloat32(_ value: Double) -> Bool { abs(value) <= Double(Float.greatestFiniteMagnitude) }
/// A positive value that stays positive and finite as the Float the kernels use (1e-50 became 0).
private func isPositiveFloat32(_ value: Double) -> Bool { value > 0 && isFloat32(value) && Float(value) > 0 }
private let positiveFloat32 = "> 0 and within float32's range"
