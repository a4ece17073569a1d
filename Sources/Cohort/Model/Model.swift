import Foundation

/// A model: a root `Sequential` of layers, the flat parameter and gradient buffers they are bound
/// to, and the input and output of a batch.
///
/// The design in one paragraph: a block of layers is itself a layer (`Sequential`, PyTorch's
/// `nn.Sequential`), and a `Residual` holds two of them, so a network nests to any depth while the
/// model stays the one place that owns memory for the whole tree. Every layer states its trainable
/// tensors (`parameterShapes`, nested names such as `body.0.weight`); the model lays them out, depth
/// first in state-dict order, in one contiguous parameter buffer and one gradient buffer, and binds
/// each layer to its slice, so that the optimizer and the gradient allreduce see a single flat
/// vector. Each `Sequential` allocates the activations between its children once, for the largest
/// local batch (`reserve`), and lets a `flatten` or a ReLU fused into the batch norm before it share
/// its input's buffers; the training step then allocates nothing.
///
/// Top-level layer `i` owns the state-dict tensors named `"i.<name>"` (`"i.body.j.<name>"` inside a
/// residual block), as PyTorch's `state_dict()` of the same `nn.Sequential` names them.
public final class Model<Element: Scalar> {
    /// The top-level layers.
    public var layers: [any Layer<Element>] { root.layers }
    public let root: Sequential<Element>
    public let inputShape: [Int]
    public var outputShape: [Int] { root.outputShape }
    public let parameters: Buffer<Element>
    /// The parameter gradients: a buffer of the model's own, or the memory `placeGradients` moved them to.
    public private(set) var gradients: Buffer<Element>
    public private(set) var maxBatch = 0
    /// Whether the buffers are `reserveForInference`'s: forward only, from the first layer.
    public private(set) var reservedForInference = false
    private var inputBuffer = Buffer<Element>(count: 0)
    /// The gradient of the model's input: only with `keepsActivationGradients`, when a flatten at the
    /// front hands it to the next layer as that layer's input gradient, which the probes read.
    /// Training computes no gradient of the input and allocates none (77 MB for a 3 x 224 x 224
    /// input at batch 128).
    private var inputGradientBuffer: Buffer<Element>?
    private var outputBuffer = Buffer<Element>(count: 0)
    private var outputGradientBuffer = Buffer<Element>(count: 0)
    /// Called in `backward` after each top-level layer with the offset in `gradients` from which
    /// every gradient is final (layers own consecutive ranges, in layer order), so that their
    /// allreduce can start while the layers before run (`GradientExchange`). nil: not called.
    public var onParametersFinished: ((Int) -> Void)? {
        didSet {
            let offsets = parameterOffsets
            layerFinished = onParametersFinished.map { hook in { hook(offsets[$0]) } }
        }
    }
    private var layerFinished: ((Int) -> Void)?
    /// Where top-level layer i's parameters (and gradients) start in the flat buffers.
    private let parameterOffsets: [Int]

    /// Builds the layers of `config`, inferring every shape from `config.input`.
    public convenience init(_ config: ModelConfig) throws {
        try self.init(layers: Model.makeLayers(config.layers, input: config.input, convolution: config.convolution,
                                               place: { LayerPlace(integerLiteral: $0) }),
                      inputShape: config.input)
    }

    /// The model of a run's config; an error in its layers names the config file, as the config's
    /// own errors do (`c.yaml: model.layers[0] (dense): expects a flat input ...`).
    public static func built(from config: TrainingConfig) throws -> Model {
        do {
            return try Model(config.model)
        } catch let error as CohortError {
            let placed = CohortError("\(config.sourcePath): \(error.message)", sameOnEveryWorker: error.sameOnEveryWorker)
            throw ConfigLoader.annotate(placed, overrides: config.overrides, file: config.sourcePath)
        }
    }

    /// A model of layers built elsewhere (a test's, for instance): each must take the shape the one
    /// before it gives, and the last must give a flat vector of class scores.
    public init(layers: [any Layer<Element>], inputShape: [Int]) throws {
        root = try Sequential(layers, inputShape: inputShape, place: { LayerPlace(integerLiteral: $0) }, isRoot: true)
        guard root.outputShape.count == 1 else {
            throw CohortError("model.layers: the last layer must give a flat vector of class scores [classes], got \(describe(root.outputShape)); end with flatten and dense")
        }
        self.inputShape = inputShape
        var total = 0
        for (index, layer) in layers.enumerated() {
            for shape in layer.parameterShapes {
                guard let count = elementCount(shape.shape), count <= ConfigLoader.largestSize - total else {
                    throw layerError(LayerPlace(integerLiteral: index), layer.kind, "\(shape.name) \(describe(shape.shape)) makes the model larger than \(ConfigLoader.largestSize) parameters")
                }
                total += count
            }
        }
        // Parameters, gradients and up to three optimizer buffers, in 4-byte floats.
        let bytes = Double(total) * 5 * Double(MemoryLayout<Element>.size)
        let budget = MemoryBudget.current()
        guard budget.holds(bytes) else {
            throw CohortError("model.layers: \(total) parameters need about \(memorySize(bytes)) with their gradients and optimizer state, more than \(budget.allowance)")
        }
        parameters = Buffer(count: total)
        gradients = Buffer(count: total)
        root.bind(parameters: parameters.pointer, gradients: gradients.pointer)
        var offset = 0
        parameterOffsets = layers.map { layer in
            defer { offset += layer.parameterShapes.reduce(0) { $0 + $1.count } }
            return offset
        }
    }

    /// The layers of `specs`, the first taking `input`; `place(i)` names layer i in messages.
    static func makeLayers(_ specs: [LayerSpec], input: [Int], convolution: ConvolutionPreference = .auto,
                           place: (Int) -> LayerPlace) throws -> [any Layer<Element>] {
        var shape = input
        var layers: [any Layer<Element>] = []
        for (index, spec) in specs.enumerated() {
            let layer: any Layer<Element>
            do {
                layer = try makeLayer(spec, input: shape, index: place(index), convolution: convolution)
            } catch let error as CohortError where spec.isRecurrent && index > 0 && specs[index - 1].isRecurrent && shape.count == 1 {
                throw CohortError(error.message + "; give \(place(index - 1)) return_sequences: true to pass it every step")
            }
            layers.append(layer)
            shape = layer.outputShape
        }
        return layers
    }

    static func makeLayer(_ spec: LayerSpec, input: [Int], index: LayerPlace,
                          convolution: ConvolutionPreference = .auto) throws -> any Layer<Element> {
        switch spec {
        case let .conv2d(out, kernel, stride, padding, bias, initializer):
            return try Conv2D<Element>(input: input, outChannels: out, kernel: kernel, stride: stride, padding: padding,
                                       bias: bias, initializer: initializer, index: index, preference: convolution)
        case let .dense(out, bias, initializer):
            return try Dense<Element>(input: input, outFeatures: out, bias: bias, initializer: initializer, index: index)
        case let .batchnorm(momentum, epsilon, synchronized, initializer):
            return try BatchNorm<Element>(input: input, momentum: momentum, epsilon: epsilon, synchronized: synchronized,
                                          initializer: initializer, index: index)
        case let .dropout(p):
            return Dropout<Element>(input: input, probability: p)
        case let .activation(function):
            return Activation<Element>(Activation<Element>.Function(rawValue: function.rawValue)!, input: input)
        case let .pool(mode, kernel, stride, padding):
            return try Pool2D<Element>(Pool2D<Element>.Mode(rawValue: mode.rawValue)!, input: input, kernel: kernel,
                                       stride: stride, padding: padding, index: index)
        case .flatten:
            return Flatten<Element>(input: input)
        case let .lstm(hidden, sequences, bias, initializer):
            return try LSTM<Element>(input: input, hiddenSize: hidden, returnSequences: sequences, bias: bias,
                                     initializer: initializer, index: index)
        case let .gru(hidden, sequences, bias, initializer):
            return try GRU<Element>(input: input, hiddenSize: hidden, returnSequences: sequences, bias: bias,
                                    initializer: initializer, index: index)
        case let .rnn(hidden, nonlinearity, sequences, bias, initializer):
            return try RNN<Element>(input: input, hiddenSize: hidden, nonlinearity: RNN<Element>.Nonlinearity(rawValue: nonlinearity.rawValue)!,
                                    returnSequences: sequences, bias: bias, initializer: initializer, index: index)
        case let .adaptiveAvgPool(height, width):
            return try AdaptiveAvgPool2D<Element>(input: input, outHeight: height, outWidth: width, index: index)
        case let .residual(bodySpecs, shortcutSpecs):
            let body = try Sequential(makeLayers(bodySpecs, input: input, convolution: convolution,
                                                 place: { index.item("residual.body", $0) }),
                                      inputShape: input, place: { index.item("residual.body", $0) })
            let shortcut = try shortcutSpecs.isEmpty ? nil
                : Sequential(makeLayers(shortcutSpecs, input: input, convolution: convolution,
                                        place: { index.item("residual.shortcut", $0) }),
                             inputShape: input, place: { index.item("residual.shortcut", $0) })
            return try Residual(body: body, shortcut: shortcut, place: index)
        }
    }

    public var classes: Int { outputShape[0] }
    public var inputSize: Int { inputShape.reduce(1, *) }

    /// Draws every parameter from its initializer; batch-norm statistics start at mean 0, variance 1.
    public func initialize(seed: UInt64) {
        for (index, layer) in layers.enumerated() { layer.initialize(seed: seed, layerIndex: index) }
    }

    /// At most the bytes that `reserve(maxBatch:)` allocates for activations and their gradients
    /// (counting a gradient buffer per layer; workspace such as one image's im2col columns per
    /// convolution comes on top).
    public func activationBytes(maxBatch: Int) -> Double {
        let values = (keepsActivationGradients ? 2 : 1) * inputSize + 2 * root.outputSize + root.activationValuesPerSample
        return Double(values) * Double(maxBatch) * Double(MemoryLayout<Element>.size)
    }

    /// Whether the gradient of every top-level layer's output stays readable after backward
    /// (`activationGradient`), for the debug probes; by default those buffers are shared. A change
    /// takes effect at the next `reserve`.
    public var keepsActivationGradients: Bool {
        get { root.keepsActivationGradients }
        set {
            guard newValue != root.keepsActivationGradients else { return }
            root.keepsActivationGradients = newValue
            maxBatch = 0
        }
    }

    /// At most the bytes that `reserveForInference(maxBatch:)` allocates for activations.
    public func inferenceBytes(maxBatch: Int) -> Double {
        Double(inputSize + root.outputSize + root.inferenceValuesPerSample) * Double(maxBatch) * Double(MemoryLayout<Element>.size)
    }

    /// Allocates what inference (`forward` in inference mode from the first layer) needs for
    /// batches of up to `maxBatch` samples: the layers' outputs take turns in two buffers per depth
    /// of nesting, and nothing is kept for backward, as under PyTorch's `torch.no_grad()`.
    public func reserveForInference(maxBatch: Int) {
        guard maxBatch > self.maxBatch || !reservedForInference else { return }
        self.maxBatch = maxBatch
        reservedForInference = true
        inputBuffer = Buffer(count: maxBatch * inputSize)
        inputGradientBuffer = nil
        outputBuffer = Buffer(count: maxBatch * root.outputSize)
        outputGradientBuffer = Buffer(count: 0)
        root.reserveForInference(maxBatch: maxBatch)
    }

    /// Allocates activations and workspace for batches of up to `maxBatch` samples.
    public func reserve(maxBatch: Int) {
        guard maxBatch > self.maxBatch || reservedForInference else { return }
        self.maxBatch = maxBatch
        reservedForInference = false
        inputBuffer = Buffer(count: maxBatch * inputSize)
        inputGradientBuffer = keepsActivationGradients ? Buffer(count: maxBatch * inputSize) : nil
        outputBuffer = Buffer(count: maxBatch * root.outputSize)
        outputGradientBuffer = Buffer(count: maxBatch * root.outputSize)
        root.reserve(maxBatch: maxBatch)
    }

    /// Where the caller puts a batch: `[N, input]`.
    public var input: UnsafeMutablePointer<Element> { inputBuffer.pointer }
    /// The class scores of the last forward: `[N, classes]`.
    public var output: UnsafeMutablePointer<Element> { outputBuffer.pointer }
    /// Where the loss puts its gradient before `backward`: `[N, classes]`.
    public var outputGradient: UnsafeMutablePointer<Element> { outputGradientBuffer.pointer }
    /// The input of top-level layer `index` in the last forward (`index == layers.count`: the model's output), for inspection.
    public func activation(_ index: Int) -> UnsafePointer<Element> {
        root.activation(index, input: inputBuffer.pointer, output: outputBuffer.pointer)
    }
    /// The loss's gradient with respect to `activation(index)` after the last backward: every layer's
    /// from index 1 on with `keepsActivationGradients`, else the last two written (nil where nothing
    /// computes one: index 0, and the layers that share the model's input, such as a flatten at the front).
    public func activationGradient(_ index: Int) -> UnsafePointer<Element>? {
        root.activationGradient(index, outputGradient: outputGradientBuffer.pointer, inputGradient: inputGradientBuffer?.pointer)
    }

    /// Runs the layers from `start` on (earlier activations are those of the last forward).
    public func forward(batch: Int, context: StepContext, fromLayer start: Int = 0) throws {
        precondition(batch <= maxBatch, "batch \(batch) exceeds the reserved \(maxBatch)")
        precondition(!reservedForInference || (start == 0 && !context.isTraining), "a model reserved for inference runs it whole")
        try root.forward(inputBuffer.pointer, outputBuffer.pointer, batch: batch, context: context, from: start)
    }

    /// Whether every parameter gradient is zero already (the optimizer zeroed them in its update),
    /// so that `backward` need not. Cleared by `backward`; set only by whoever zeroed them.
    var gradientsAreZero = false

    /// Zeroes the parameter gradients (unless `gradientsAreZero`), then backpropagates
    /// `outputGradient` through every layer.
    public func backward(batch: Int, context: StepContext) throws {
        precondition(!reservedForInference, "a model reserved for inference has no buffers for backward")
        if !gradientsAreZero { fillZero(gradients.pointer, count: gradients.count) }
        gradientsAreZero = false
        try root.backward(inputBuffer.pointer, outputBuffer.pointer, outputGradientBuffer.pointer, inputGradientBuffer?.pointer,
                          batch: batch, context: context, firstInputGradient: false, finished: layerFinished)
    }

    /// Moves the parameter gradients (their values too) to `storage`, `gradients.count` elements
    /// that must stay allocated as long as the model is used: memory that the other workers map,
    /// which the gradient sum then adds up where it lies (`SharedMemorySum`).
    public func placeGradients(in storage: UnsafeMutablePointer<Element>) {
        storage.update(from: gradients.pointer, count: gradients.count)
        gradients = Buffer(borrowing: storage, count: gradients.count)
        root.bind(parameters: parameters.pointer, gradients: storage)
    }

    /// Every state-dict tensor, named as PyTorch names them, in `nn.Sequential` order.
    public func stateTensors() -> [StateTensor] {
        var result: [StateTensor] = []
        var offset = 0
        for (index, layer) in layers.enumerated() {
            for shape in layer.parameterShapes {
                result.append(StateTensor(name: "\(index).\(shape.name)", shape: shape.shape,
                                          storage: .scalars(UnsafeMutableRawPointer(parameters.pointer + offset))))
                offset += shape.count
            }
            for var buffer in layer.buffers() {
                buffer.name = "\(index).\(buffer.name)"
                result.append(buffer)
            }
        }
        return result
    }
}
