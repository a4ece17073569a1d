/// A residual block (He et al., 2016): y = body(x) + shortcut(x), the shortcut being the identity
/// when it has no layers. Both branches are `Sequential`s, whose tensors are named `body.j.<name>`
/// and `shortcut.j.<name>` as in PyTorch's twin, `Residual` in `shared/reference/ref_torch.py`.
///
/// The gradient reaches x through both branches: dx = body'(x)^T dy + shortcut'(x)^T dy (for the
/// identity, + dy), which is what lets a deep stack of blocks still train.
///
/// ### See Also
/// `Sequential`, `AdaptiveAvgPool2D`.
public final class Residual<Element: Scalar>: Layer {
    public let kind = "residual"
    public let body: Sequential<Element>
    /// nil: the identity.
    public let shortcut: Sequential<Element>?
    public var inputShape: [Int] { body.inputShape }
    public var outputShape: [Int] { body.outputShape }
    /// Set by `Sequential` when a ReLU follows: the sum applies it (y = max(body + shortcut, 0)) and
    /// the ReLU layer is skipped, so y is the ReLU's output and dy the gradient with respect to it.
    public internal(set) var appliesReLU = false
    private let bodyCount: Int
    /// The body's last layer when it is a batch norm: it adds the other branch (and applies the
    /// ReLU after the block) in its own pass and writes the block's output, so there is neither a
    /// pass of sums nor a buffer for the body's output (`BatchNorm.blockSum`).
    private let finalNorm: BatchNorm<Element>?
    /// With `appliesReLU`: dy through the ReLU, which both branches take: `[N, output]`.
    private var maskedGradient = Buffer<Element>(count: 0)
    /// The branches' outputs of the last forward (the body's only without `finalNorm`): `[N, output]`.
    private var bodyOutput = Buffer<Element>(count: 0)
    private var shortcutOutput = Buffer<Element>(count: 0)
    /// The shortcut's input gradient, before it is added to the body's: `[N, input]`.
    private var shortcutInputGradient = Buffer<Element>(count: 0)

    /// `body` and `shortcut` (when given) must take the same input and give the same shape;
    /// without a shortcut the body must keep its input's shape.
    public init(body: Sequential<Element>, shortcut: Sequential<Element>?, place: LayerPlace) throws {
        let other = shortcut?.outputShape ?? body.inputShape
        guard body.outputShape == other else {
            throw layerError(place, "residual", "the body gives \(describe(body.outputShape)) but the \(shortcut == nil ? "identity shortcut" : "shortcut") gives \(describe(other)); they are added, so they must match (a shortcut of conv2d with kernel_size 1 and the body's stride and out_channels, then batchnorm, makes them)")
        }
        if let shortcut { precondition(shortcut.inputShape == body.inputShape) }
        self.body = body
        self.shortcut = shortcut
        bodyCount = body.parameterShapes.reduce(0) { $0 + $1.count }
        finalNorm = body.layers.last as? BatchNorm<Element>
    }

    public var sublayers: [(name: String, layer: any Layer<Element>)] {
        [("body", body)] + (shortcut.map { [("shortcut", $0)] } ?? [])
    }

    public var parameterShapes: [ParameterShape] {
        body.parameterShapes.map { ParameterShape("body.\($0.name)", $0.shape) }
            + (shortcut?.parameterShapes.map { ParameterShape("shortcut.\($0.name)", $0.shape) } ?? [])
    }

    public func buffers() -> [StateTensor] {
        func prefixed(_ tensors: [StateTensor], _ prefix: String) -> [StateTensor] {
            tensors.map { var tensor = $0; tensor.name = prefix + tensor.name; return tensor }
        }
        return prefixed(body.buffers(), "body.") + prefixed(shortcut?.buffers() ?? [], "shortcut.")
    }

    public func bind(parameters: UnsafeMutablePointer<Element>, gradients: UnsafeMutablePointer<Element>) {
        body.bind(parameters: parameters, gradients: gradients)
        shortcut?.bind(parameters: parameters + bodyCount, gradients: gradients + bodyCount)
    }

    public func initialize(seed: UInt64, layerIndex: Int) {
        body.initialize(seed: seed, layerIndex: nestedLayerKey(parent: layerIndex, child: 0))
        shortcut?.initialize(seed: seed, layerIndex: nestedLayerKey(parent: layerIndex, child: 1))
    }

    public var activationValuesPerSample: Int {
        body.activationValuesPerSample + (shortcut?.activationValuesPerSample ?? 0)
            + outputSize * ((appliesReLU ? 1 : 0) + (finalNorm == nil ? 1 : 0)) + (shortcut == nil ? 0 : outputSize + inputSize)
    }

    public var inferenceValuesPerSample: Int {
        body.inferenceValuesPerSample + (shortcut?.inferenceValuesPerSample ?? 0)
            + outputSize * ((finalNorm == nil ? 1 : 0) + (shortcut == nil ? 0 : 1))
    }

    /// The pool the branches' output gradients come from (`Sequential.gradientPool`), given by the
    /// sequence the block is in; nil: each branch its own.
    var gradientPool: BufferPool<Element>? {
        didSet {
            body.gradientPool = gradientPool
            shortcut?.gradientPool = gradientPool
        }
    }

    /// The pool the branches' outputs come from in inference (`Sequential.outputPool`).
    var outputPool: BufferPool<Element>? {
        didSet {
            body.outputPool = outputPool
            shortcut?.outputPool = outputPool
        }
    }

    public func reserveForInference(maxBatch: Int) {
        body.reserveForInference(maxBatch: maxBatch)
        bodyOutput = Buffer(count: finalNorm == nil ? maxBatch * outputSize : 0)
        maskedGradient = Buffer(count: 0)
        shortcutInputGradient = Buffer(count: 0)
        if let shortcut {
            shortcut.reserveForInference(maxBatch: maxBatch)
            shortcutOutput = Buffer(count: maxBatch * outputSize)
        }
    }

    public func reserve(maxBatch: Int) {
        body.reserve(maxBatch: maxBatch)
        bodyOutput = Buffer(count: finalNorm == nil ? maxBatch * outputSize : 0)
        if appliesReLU { maskedGradient = Buffer(count: maxBatch * outputSize) }
        if let shortcut {
            shortcut.reserve(maxBatch: maxBatch)
            shortcutOutput = Buffer(count: maxBatch * outputSize)
            shortcutInputGradient = Buffer(count: maxBatch * inputSize)
        }
    }

    private func branchContexts(_ context: StepContext) -> (body: StepContext, shortcut: StepContext) {
        var body = context, shortcut = context
        body.layerIndex = nestedLayerKey(parent: context.layerIndex, child: 0)
        shortcut.layerIndex = nestedLayerKey(parent: context.layerIndex, child: 1)
        return (body, shortcut)
    }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) throws {
        let contexts = branchContexts(context)
        let count = batch * outputSize
        if let finalNorm {
            finalNorm.blockSum = (try shortcutForward(x, batch: batch, context: contexts.shortcut), appliesReLU)
            return try body.forward(x, y, batch: batch, context: contexts.body)
        }
        try body.forward(x, bodyOutput.pointer, batch: batch, context: contexts.body)
        let other = try shortcutForward(x, batch: batch, context: contexts.shortcut)
        let branch = UnsafePointer(bodyOutput.pointer)
        forEachShare(of: count, minimum: elementwiseMinimum) { range in
            let (branch, other, y) = (branch + range.lowerBound, other + range.lowerBound, y + range.lowerBound)
            if appliesReLU {
                addReLU(branch, other, y, count: range.count)
            } else {
                add(branch, other, y, count: range.count)
            }
        }
    }

    /// The other branch's output: the shortcut's, or x itself for the identity.
    private func shortcutForward(_ x: UnsafePointer<Element>, batch: Int, context: StepContext) throws -> UnsafePointer<Element> {
        guard let shortcut else { return x }
        try shortcut.forward(x, shortcutOutput.pointer, batch: batch, context: context)
        return UnsafePointer(shortcutOutput.pointer)
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) throws {
        let contexts = branchContexts(context)
        var dy = dy
        if appliesReLU {
            let masked = maskedGradient.pointer
            forEachShare(of: batch * outputSize, minimum: elementwiseMinimum) { range in
                let start = range.lowerBound
                reluBackward(y + start, dy + start, masked + start, count: range.count)
            }
            dy = UnsafePointer(maskedGradient.pointer)
        }
        // With `finalNorm` the body's output is the block's (its last layer's backward does not read it).
        let bodyY = finalNorm == nil ? bodyOutput.pointer : UnsafeMutablePointer(mutating: y)
        try body.backward(x, bodyY, dy, dx, batch: batch, context: contexts.body, firstInputGradient: true)
        let count = batch * inputSize
        if let shortcut {
            let gradient = dx == nil ? nil : shortcutInputGradient.pointer
            try shortcut.backward(x, shortcutOutput.pointer, dy, gradient, batch: batch, context: contexts.shortcut,
                                  firstInputGradient: true)
            if let dx, let gradient { addInPlace(dx, gradient, count: count) }
        } else if let dx {
            addInPlace(dx, dy, count: count)
        }
    }

    /// dx += gradient over `count` values, shared among a `ThreadTeam`'s threads.
    private func addInPlace(_ dx: UnsafeMutablePointer<Element>, _ gradient: UnsafePointer<Element>, count: Int) {
        forEachShare(of: count, minimum: elementwiseMinimum) { range in
            let start = range.lowerBound
            add(dx + start, gradient + start, dx + start, count: range.count)
        }
    }
}
