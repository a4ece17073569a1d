/// Layers run one after another (PyTorch's `nn.Sequential`), itself a layer: a model is one, and so
/// are the branches of a `Residual`. Child `j` owns the tensors named `"j.<name>"`.
///
/// The sequence allocates the activations between its children once, in `reserve(maxBatch:)`; the
/// gradients of their outputs alternate between the two buffers of a `BufferPool` (or, with
/// `keepsActivationGradients`, have a buffer each, for the debug probes that read them after
/// backward). Reserved for inference only (`reserveForInference`), the children's outputs
/// themselves alternate between the two buffers of another pool, and no gradient has a buffer.
/// Its own input and output are the caller's. Two kinds of child share their
/// input's buffers instead of writing their own: a `flatten` (the layout does not change) and a
/// ReLU right after a batch norm or a residual block, which applies it in its own pass
/// (`BatchNorm.appliesReLU`, `Residual.appliesReLU`) so the ReLU is not run. Where a sequence ends in such children, the last child that computes anything
/// writes the caller's output directly. A convolution followed by a batch norm sums its output's
/// moments for it in training, as it writes each chunk of images (`Conv2D.outputMoments`).
///
/// ### See Also
/// `Residual`, `Model`.
public final class Sequential<Element: Scalar>: Layer {
    public let kind = "sequential"
    public let layers: [any Layer<Element>]
    public let inputShape: [Int]
    public var outputShape: [Int] { layers.last?.outputShape ?? inputShape }
    /// Top-level: child `j` runs with key `j` (the model's layer index); nested: a key derived from
    /// the sequence's own (`nestedLayerKey`).
    let isRoot: Bool
    /// Children that share their input's buffers; `absorbed` ones are not run at all.
    private let shares: [Bool]
    private let absorbed: [Bool]
    /// Per convolution followed by a batch norm: the two.
    private let momentsLinks: [(conv: Conv2D<Element>, norm: BatchNorm<Element>)?]
    /// Children from this one on write (or share) the caller's output.
    private let tailStart: Int
    private let parameterCounts: [Int]
    /// The first child with parameters (`layers.count` if none): without an input gradient to
    /// give back, the children before it have nothing to compute in backward, and it no input gradient.
    private let firstWithParameters: Int
    /// Per child: its output buffer and its gradient's, as allocated (shared children, and every
    /// child after `reserveForInference`: nil).
    private var ownOutputs: [UnsafeMutablePointer<Element>?]
    private var ownOutputGradients: [UnsafeMutablePointer<Element>?]
    private var storage: [Buffer<Element>] = []
    /// Per child: which of the pool's buffers holds the gradient of its output (nil: its own or none).
    private var gradientSlots: [Int?]
    /// Where the children's output gradients live: set by the container of a nested sequence, else
    /// the sequence's own.
    var gradientPool: BufferPool<Element>?
    private let ownPool = BufferPool<Element>()
    private var pool: BufferPool<Element> { gradientPool ?? ownPool }
    /// After `reserveForInference`: where the children's outputs alternate (set by the container of
    /// a nested sequence, else the sequence's own), and which of its buffers holds each child's.
    var outputPool: BufferPool<Element>?
    private let ownOutputPool = BufferPool<Element>()
    private var inferencePool: BufferPool<Element> { outputPool ?? ownOutputPool }
    private var outputSlots: [Int?]
    /// Every child's output gradient in a buffer of its own, still there after backward
    /// (`Model.activationGradient`); set before `reserve`.
    var keepsActivationGradients = false
    /// Per child: where its output and the gradient of its output are, for the caller's pointers of
    /// the last `resolve` (they rarely change: the model and a residual hand the same buffers each step).
    private var outputs: [UnsafeMutablePointer<Element>]
    private var outputGradients: [UnsafeMutablePointer<Element>?]
    private var resolvedInput: UnsafePointer<Element>?
    private var resolvedOutput: UnsafeMutablePointer<Element>?
    private var resolvedInputGradient: UnsafeMutablePointer<Element>?
    private var resolvedOutputGradient: UnsafePointer<Element>?
    private var gradientsResolved = false

    /// `layers` must chain: each takes the shape the one before gives (the first, `inputShape`).
    public init(_ layers: [any Layer<Element>], inputShape: [Int], place: (Int) -> LayerPlace, isRoot: Bool = false) throws {
        var shape = inputShape
        for (index, layer) in layers.enumerated() {
            guard layer.inputShape == shape else {
                throw layerError(place(index), layer.kind, "expects input \(describe(layer.inputShape)), but the layer before gives \(describe(shape))")
            }
            shape = layer.outputShape
        }
        self.layers = layers
        self.inputShape = inputShape
        self.isRoot = isRoot
        var absorbed = [Bool](repeating: false, count: layers.count)
        for index in layers.indices.dropLast() {
            guard let next = layers[index + 1] as? Activation<Element>, next.function == .relu else { continue }
            if let norm = layers[index] as? BatchNorm<Element> {
                norm.appliesReLU = true
            } else if let block = layers[index] as? Residual<Element> {
                block.appliesReLU = true
            } else {
                continue
            }
            absorbed[index + 1] = true
        }
        self.absorbed = absorbed
        momentsLinks = layers.indices.map { index in
            guard let conv = layers[index] as? Conv2D<Element>, index + 1 < layers.count,
                  let norm = layers[index + 1] as? BatchNorm<Element> else { return nil }
            return (conv, norm)
        }
        shares = layers.indices.map { absorbed[$0] || layers[$0] is Flatten<Element> }
        var tail = max(layers.count - 1, 0)
        while tail > 0 && shares[tail] { tail -= 1 }
        tailStart = tail
        parameterCounts = layers.map { $0.parameterShapes.reduce(0) { $0 + $1.count } }
        firstWithParameters = parameterCounts.firstIndex { $0 > 0 } ?? layers.count
        ownOutputs = Array(repeating: nil, count: layers.count)
        ownOutputGradients = Array(repeating: nil, count: layers.count)
        gradientSlots = Array(repeating: nil, count: layers.count)
        outputSlots = Array(repeating: nil, count: layers.count)
        outputs = []
        outputGradients = Array(repeating: nil, count: layers.count)
    }

    public var sublayers: [(name: String, layer: any Layer<Element>)] {
        layers.enumerated().map { (String($0.offset), $0.element) }
    }

    public var parameterShapes: [ParameterShape] {
        layers.enumerated().flatMap { index, layer in
            layer.parameterShapes.map { ParameterShape("\(index).\($0.name)", $0.shape) }
        }
    }

    public func buffers() -> [StateTensor] {
        layers.enumerated().flatMap { index, layer in
            layer.buffers().map { tensor -> StateTensor in
                var tensor = tensor
                tensor.name = "\(index).\(tensor.name)"
                return tensor
            }
        }
    }

    public func bind(parameters: UnsafeMutablePointer<Element>, gradients: UnsafeMutablePointer<Element>) {
        var offset = 0
        for (layer, count) in zip(layers, parameterCounts) {
            layer.bind(parameters: parameters + offset, gradients: gradients + offset)
            offset += count
        }
    }

    public func initialize(seed: UInt64, layerIndex: Int) {
        for (index, layer) in layers.enumerated() { layer.initialize(seed: seed, layerIndex: childKey(index, of: layerIndex)) }
    }

    public var activationValuesPerSample: Int {
        layers.indices.reduce(0) { total, index in
            total + layers[index].activationValuesPerSample + (shares[index] || index >= tailStart ? 0 : 2 * layers[index].outputSize)
        }
    }

    /// The two buffers the children's outputs alternate between, at most (sequences of one depth share them).
    public var inferenceValuesPerSample: Int {
        let outputs = layers.indices.filter { !shares[$0] && $0 < tailStart }.map { layers[$0].outputSize }
        return 2 * (outputs.max() ?? 0) + layers.reduce(0) { $0 + $1.inferenceValuesPerSample }
    }

    public func reserveForInference(maxBatch: Int) {
        storage = []
        var owners = 0
        for (index, layer) in layers.enumerated() {
            (layer as? Residual<Element>)?.outputPool = inferencePool.deeper
            layer.reserveForInference(maxBatch: maxBatch)
            ownOutputs[index] = nil
            ownOutputGradients[index] = nil
            gradientSlots[index] = nil
            outputSlots[index] = nil
            guard !shares[index] && index < tailStart else { continue }
            inferencePool.require(maxBatch * layer.outputSize, slot: owners % 2)
            outputSlots[index] = owners % 2
            owners += 1
        }
        resolvedInput = nil
        gradientsResolved = false
    }

    public func reserve(maxBatch: Int) {
        storage = []
        var owners = 0
        for (index, layer) in layers.enumerated() {
            (layer as? Residual<Element>)?.gradientPool = pool.deeper
            layer.reserve(maxBatch: maxBatch)
            outputSlots[index] = nil
            guard !shares[index] && index < tailStart else { continue }
            let output = Buffer<Element>(count: maxBatch * layer.outputSize)
            storage.append(output)
            ownOutputs[index] = output.pointer
            if keepsActivationGradients {
                let gradient = Buffer<Element>(count: maxBatch * layer.outputSize)
                storage.append(gradient)
                ownOutputGradients[index] = gradient.pointer
                gradientSlots[index] = nil
            } else {
                pool.require(maxBatch * layer.outputSize, slot: owners % 2)
                ownOutputGradients[index] = nil
                gradientSlots[index] = owners % 2
            }
            owners += 1
        }
        resolvedInput = nil
        gradientsResolved = false
    }

    private func childKey(_ index: Int, of key: Int) -> Int {
        isRoot ? index : nestedLayerKey(parent: key, child: index)
    }

    /// Points each child's output at its own buffer, its input's, or `y`.
    private func resolve(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>) {
        guard x != resolvedInput || y != resolvedOutput else { return }
        if outputs.isEmpty { outputs = Array(repeating: y, count: layers.count) }
        for index in layers.indices {
            if index >= tailStart {
                outputs[index] = y
            } else if shares[index] {
                outputs[index] = index == 0 ? UnsafeMutablePointer(mutating: x) : outputs[index - 1]
            } else {
                outputs[index] = ownOutputs[index] ?? inferencePool.pointer(outputSlots[index]!)
            }
        }
        resolvedInput = x
        resolvedOutput = y
    }

    /// Points each child's output gradient at its own buffer, its input gradient's, or `dy`.
    private func resolveGradients(_ dy: UnsafePointer<Element>, _ dx: UnsafeMutablePointer<Element>?) {
        guard !gradientsResolved || dy != resolvedOutputGradient || dx != resolvedInputGradient else { return }
        for index in layers.indices {
            if index >= tailStart {
                outputGradients[index] = UnsafeMutablePointer(mutating: dy)
            } else if shares[index] {
                outputGradients[index] = index == 0 ? dx : outputGradients[index - 1]
            } else {
                outputGradients[index] = ownOutputGradients[index] ?? pool.pointer(gradientSlots[index]!)
            }
        }
        resolvedOutputGradient = dy
        resolvedInputGradient = dx
        gradientsResolved = true
    }

    /// The input of child `index` in the last forward from `x` into `y` (`index == layers.count`: `y`).
    func activation(_ index: Int, input x: UnsafePointer<Element>, output y: UnsafeMutablePointer<Element>) -> UnsafePointer<Element> {
        resolve(x, y)
        return index == 0 ? x : UnsafePointer(outputs[index - 1])
    }

    /// The gradient of the loss with respect to the input of child `index` (`layers.count`: `dy`),
    /// for a backward given `dy` and `dx`; nil where nothing computes it.
    func activationGradient(_ index: Int, outputGradient dy: UnsafePointer<Element>,
                            inputGradient dx: UnsafeMutablePointer<Element>?) -> UnsafePointer<Element>? {
        resolveGradients(dy, dx)
        return index == 0 ? dx.map { UnsafePointer($0) } : outputGradients[index - 1].map { UnsafePointer($0) }
    }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) throws {
        try forward(x, y, batch: batch, context: context, from: 0)
    }

    /// Runs the children from `start` on; the activations before it are those of the last forward.
    func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext,
                 from start: Int) throws {
        if layers.isEmpty { return copy(x, to: y, count: batch * inputSize) }
        resolve(x, y)
        var childContext = context
        for index in start..<layers.count where !absorbed[index] {
            childContext.layerIndex = childKey(index, of: context.layerIndex)
            let input = index == 0 ? x : UnsafePointer(outputs[index - 1])
            let link = context.isTraining ? momentsLinks[index] : nil
            link?.conv.outputMoments = link?.norm.takeInputMoments()
            try layers[index].forward(input, outputs[index], batch: batch, context: childContext)
            link?.conv.outputMoments = nil
        }
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) throws {
        try backward(x, UnsafeMutablePointer(mutating: y), dy, dx, batch: batch, context: context, firstInputGradient: true)
    }

    /// An empty sequence is the identity (a residual block's empty body, as an empty `nn.Sequential`).
    private func copy(_ source: UnsafePointer<Element>, to destination: UnsafeMutablePointer<Element>, count: Int) {
        if UnsafePointer(destination) != source { destination.update(from: source, count: count) }
    }

    /// Backpropagates `dy` through the children. Without `firstInputGradient` no gradient of the
    /// input is computed (the model's, which nothing reads): the children before the first with
    /// parameters are skipped, and that one is asked for none (mlp, whose first dense layer follows
    /// a flatten: 1.17x on one core, `benchmarks/pair -r 6 -s 300 -b 64`; checkpoints
    /// byte-identical), unless the debug probes keep every gradient: then only child 0 computes
    /// none, and a flatten at the front hands the next layer `dx` for its input gradient.
    ///
    /// `finished(i)`, when given, is called once child `i`'s backward is done (every child, in reverse order).
    func backward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, _ dy: UnsafePointer<Element>,
                  _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext, firstInputGradient: Bool,
                  finished: ((Int) -> Void)? = nil) throws {
        if layers.isEmpty {
            if let dx { copy(dy, to: dx, count: batch * inputSize) }
            return
        }
        resolve(x, y)
        resolveGradients(dy, dx)
        let inputGradientsFrom = firstInputGradient ? 0 : keepsActivationGradients ? 1 : firstWithParameters + 1
        var childContext = context
        for index in layers.indices.reversed() {
            if !absorbed[index], index + 1 >= inputGradientsFrom, let outputGradient = outputGradients[index] {
                childContext.layerIndex = childKey(index, of: context.layerIndex)
                let input = index == 0 ? x : UnsafePointer(outputs[index - 1])
                let inputGradient = index < inputGradientsFrom ? nil : index == 0 ? dx : outputGradients[index - 1]
                try layers[index].backward(input, outputs[index], outputGradient, inputGradient, batch: batch, context: childContext)
            }
            finished?(index)
        }
    }
}
