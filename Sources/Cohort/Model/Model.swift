import Foundation

/// A sequential model (PyTorch's `nn.Sequential`): layers, their flat parameter and gradient
/// buffers, and activations sized once for the largest local batch.
///
/// Layer `i` owns the state-dict tensors named `"i.<name>"`. Parameters and gradients are each one
/// contiguous buffer, in state-dict order, so that the optimizer and the gradient allreduce see a
/// single flat vector.
public final class Model<Element: Scalar> {
    public let layers: [any Layer<Element>]
    public let inputShape: [Int]
    public var outputShape: [Int] { layers.last?.outputShape ?? inputShape }
    public let parameters: Buffer<Element>
    public let gradients: Buffer<Element>
    public private(set) var maxBatch = 0
    /// activations[i] is the input of layer i; the last is the model's output. A flatten shares its input's.
    private var activations: [UnsafeMutablePointer<Element>] = []
    private var activationGradients: [UnsafeMutablePointer<Element>] = []
    private var storage: [Buffer<Element>] = []
    /// Called in `backward` after each layer with the offset in `gradients` from which every
    /// gradient is final (layers own consecutive ranges, in layer order), so that their allreduce
    /// can start while the layers before run (`GradientExchange`). nil: not called.
    public var onParametersFinished: ((Int) -> Void)?
    /// Where layer i's parameters (and gradients) start in the flat buffers.
    private var parameterOffsets: [Int] = []
    /// Layers whose work another does: a ReLU right after a batch norm, which applies it in its own
    /// pass (`BatchNorm.appliesReLU`). They share their input's buffers and are not run.
    private let absorbed: [Bool]

    /// Builds the layers of `config`, inferring every shape from `config.input`.
    public convenience init(_ config: ModelConfig) throws {
        var shape = config.input
        var layers: [any Layer<Element>] = []
        for (index, spec) in config.layers.enumerated() {
            let layer = try Model.makeLayer(spec, input: shape, index: index)
            layers.append(layer)
            shape = layer.outputShape
        }
        try self.init(layers: layers, inputShape: config.input)
    }

    /// A model of layers built elsewhere (a test's, for instance): each must take the shape the one
    /// before it gives, and the last must give a flat vector of class scores.
    public init(layers: [any Layer<Element>], inputShape: [Int]) throws {
        var shape = inputShape
        for (index, layer) in layers.enumerated() {
            guard layer.inputShape == shape else {
                throw layerError(index, layer.kind, "expects input \(describe(layer.inputShape)), but the layer before gives \(describe(shape))")
            }
            shape = layer.outputShape
        }
        guard shape.count == 1 else {
            throw CohortError("model.layers: the last layer must give a flat vector of class scores [classes], got \(describe(shape)); end with flatten and dense")
        }
        self.layers = layers
        self.inputShape = inputShape
        var absorbed = [Bool](repeating: false, count: layers.count)
        for index in layers.indices.dropLast() {
            guard let norm = layers[index] as? BatchNorm<Element>,
                  let next = layers[index + 1] as? Activation<Element>, next.function == .relu else { continue }
            norm.appliesReLU = true
            absorbed[index + 1] = true
        }
        self.absorbed = absorbed
        var total = 0
        for (index, layer) in layers.enumerated() {
            for shape in layer.parameterShapes {
                guard let count = elementCount(shape.shape), count <= ConfigLoader.largestSize - total else {
                    throw layerError(index, layer.kind, "\(shape.name) \(describe(shape.shape)) makes the model larger than \(ConfigLoader.largestSize) parameters")
                }
                total += count
            }
        }
        // Parameters, gradients and up to three optimizer buffers, in 4-byte floats.
        let bytes = Double(total) * 5 * Double(MemoryLayout<Element>.size)
        guard bytes < Double(ProcessInfo.processInfo.physicalMemory) * 0.8 else {
            throw CohortError(String(format: "model.layers: %d parameters need about %.1f GiB with their gradients and optimizer state, more than this machine's %.1f GiB",
                                     total, bytes / 1_073_741_824, Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824))
        }
        parameters = Buffer(count: total)
        gradients = Buffer(count: total)
        var offset = 0
        for layer in layers {
            parameterOffsets.append(offset)
            layer.bind(parameters: parameters.pointer + offset, gradients: gradients.pointer + offset)
            offset += layer.parameterShapes.reduce(0) { $0 + $1.count }
        }
    }

    static func makeLayer(_ spec: LayerSpec, input: [Int], index: Int) throws -> any Layer<Element> {
        switch spec {
        case let .conv2d(out, kernel, stride, padding, bias, initializer):
            return try Conv2D<Element>(input: input, outChannels: out, kernel: kernel, stride: stride, padding: padding,
                                       bias: bias, initializer: initializer, index: index)
        case let .dense(out, bias, initializer):
            return try Dense<Element>(input: input, outFeatures: out, bias: bias, initializer: initializer, index: index)
        case let .batchnorm(momentum, epsilon, synchronized):
            return try BatchNorm<Element>(input: input, momentum: momentum, epsilon: epsilon, synchronized: synchronized, index: index)
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
        }
    }

    public var classes: Int { outputShape[0] }
    public var inputSize: Int { inputShape.reduce(1, *) }

    /// Draws every parameter from its initializer; batch-norm statistics start at mean 0, variance 1.
    public func initialize(seed: UInt64) {
        for (index, layer) in layers.enumerated() { layer.initialize(seed: seed, layerIndex: index) }
    }

    /// Bytes that `reserve(maxBatch:)` would allocate for activations and their gradients (workspace
    /// such as one image's im2col columns per convolution comes on top).
    public func activationBytes(maxBatch: Int) -> Double {
        let values = layers.reduce(Double(inputSize)) { $0 + Double($1.outputSize) }
        return 2 * values * Double(maxBatch) * Double(MemoryLayout<Element>.size)
    }

    /// Allocates activations and workspace for batches of up to `maxBatch` samples.
    public func reserve(maxBatch: Int) {
        guard maxBatch > self.maxBatch else { return }
        self.maxBatch = maxBatch
        storage = []
        func allocate(_ size: Int) -> UnsafeMutablePointer<Element> {
            let buffer = Buffer<Element>(count: maxBatch * size)
            storage.append(buffer)
            return buffer.pointer
        }
        activations = [allocate(inputSize)]
        activationGradients = [allocate(inputSize)]
        for (index, layer) in layers.enumerated() {
            if layer is Flatten<Element> || absorbed[index] {
                activations.append(activations.last!)
                activationGradients.append(activationGradients.last!)
            } else {
                activations.append(allocate(layer.outputSize))
                activationGradients.append(allocate(layer.outputSize))
            }
            layer.reserve(maxBatch: maxBatch)
        }
    }

    /// Where the caller puts a batch: `[N, input]`.
    public var input: UnsafeMutablePointer<Element> { activations[0] }
    /// The class scores of the last forward: `[N, classes]`.
    public var output: UnsafeMutablePointer<Element> { activations[layers.count] }
    /// Where the loss puts its gradient before `backward`: `[N, classes]`.
    public var outputGradient: UnsafeMutablePointer<Element> { activationGradients[layers.count] }
    /// The input of layer `index` in the last forward (`index == layers.count`: the model's output), for inspection.
    public func activation(_ index: Int) -> UnsafePointer<Element> { UnsafePointer(activations[index]) }
    /// The loss's gradient with respect to `activation(index)` after the last backward (none for index 0).
    public func activationGradient(_ index: Int) -> UnsafePointer<Element> { UnsafePointer(activationGradients[index]) }

    /// Runs the layers from `start` on (earlier activations are those of the last forward).
    public func forward(batch: Int, context: StepContext, fromLayer start: Int = 0) throws {
        precondition(batch <= maxBatch, "batch \(batch) exceeds the reserved \(maxBatch)")
        var context = context
        for index in start..<layers.count where !absorbed[index] {
            context.layerIndex = index
            try layers[index].forward(activations[index], activations[index + 1], batch: batch, context: context)
        }
    }

    /// Zeroes the parameter gradients, then backpropagates `outputGradient` through every layer.
    public func backward(batch: Int, context: StepContext) throws {
        gradients.pointer.update(repeating: 0, count: gradients.count)
        var context = context
        for index in layers.indices.reversed() where !absorbed[index] {
            context.layerIndex = index
            try layers[index].backward(activations[index], activations[index + 1], activationGradients[index + 1],
                                       index == 0 ? nil : activationGradients[index], batch: batch, context: context)
            onParametersFinished?(parameterOffsets[index])
        }
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
