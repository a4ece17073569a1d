/// Batch normalization (Ioffe and Szegedy, 2015), PyTorch's `BatchNorm1d` on `[C]` and `BatchNorm2d` on `[C, H, W]`.
///
/// In training each channel is normalised by the mean and biased variance of the batch, then scaled
/// by `weight` and shifted by `bias`; the running statistics move towards the batch's by `momentum`
/// (with the unbiased variance, as PyTorch). At inference the running statistics are used instead.
/// With `synchronized` (the default) the statistics are those of the global batch, summed over all
/// workers in forward and backward, so the world size does not change the result.
public final class BatchNorm<Element: Scalar>: Layer {
    public let kind = "batchnorm"
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }
    public let channels: Int
    /// Values per channel and sample: H * W, or 1 after a dense layer.
    public let spatial: Int
    public let momentum: Double
    public let epsilon: Double
    public let synchronized: Bool
    /// Of the scale (PyTorch's default: 1) and the shift (0); only those that fill a vector.
    let initializer: LayerInit
    /// Set by `Model` when a ReLU follows: the normalisation applies it in its own pass and the ReLU
    /// layer is skipped, so y is the ReLU's output and dy the gradient with respect to it.
    public internal(set) var appliesReLU = false
    /// Set by `Residual` before each forward when this is the last layer of its body: forward
    /// writes the block's output, y = x * scale + shift + `other` (then the ReLU after the block
    /// when `relu`), the block's sum in the normalisation's pass. Backward is unchanged: the block
    /// hands it the gradient with respect to the sum.
    var blockSum: (other: UnsafePointer<Element>, relu: Bool)?
    /// Whether the sums of the next training forward's input and of its squares are already in
    /// `sums`, added by the convolution that wrote it (`takeInputMoments`).
    private var inputMomentsTaken = false

    private var gamma: UnsafeMutablePointer<Element>!
    private var gammaGradient: UnsafeMutablePointer<Element>!
    private var beta: UnsafeMutablePointer<Element>!
    private var betaGradient: UnsafeMutablePointer<Element>!
    private let runningMean: Buffer<Element>
    private let runningVariance: Buffer<Element>
    private let batchesTracked = Buffer<Int64>(count: 1)
    /// Per channel: the batch mean and 1 / sqrt(var + eps) of the last training forward.
    private let batchMean: Buffer<Element>
    private let batchInverseStd: Buffer<Element>
    /// Per channel: the folded y = x * scale + shift of the last forward.
    private let affineScale: Buffer<Element>
    private let affineShift: Buffer<Element>
    /// Whether the last forward normalised by the batch's statistics (training) or the running ones.
    private var usedBatchStatistics = false
    /// Per-channel sums to reduce over the batch (and the workers): `[2, C]`.
    private let sums: Buffer<Double>

    public init(input: [Int], momentum: Double, epsilon: Double, synchronized: Bool, initializer: LayerInit = LayerInit(),
                index: LayerPlace) throws {
        guard input.count == 1 || input.count == 3 else {
            throw layerError(index, "batchnorm", "expects [C] (after dense) or [C, H, W] (after conv2d), got \(describe(input))")
        }
        inputShape = input
        channels = input[0]
        spatial = input.dropFirst().reduce(1, *)
        self.momentum = momentum
        self.epsilon = epsilon
        self.synchronized = synchronized
        self.initializer = initializer
        runningMean = Buffer(count: channels)
        runningVariance = Buffer(count: channels)
        batchMean = Buffer(count: channels)
        batchInverseStd = Buffer(count: channels)
        sums = Buffer(count: 2 * channels)
        affineScale = Buffer(count: channels)
        affineShift = Buffer(count: channels)
        runningVariance.pointer.update(repeating: 1, count: channels)
    }

    public var parameterShapes: [ParameterShape] {
        [ParameterShape("weight", [channels]), ParameterShape("bias", [channels])]
    }

    public func bind(parameters: UnsafeMutablePointer<Element>, gradients: UnsafeMutablePointer<Element>) {
        gamma = parameters
        beta = parameters + channels
        gammaGradient = gradients
        betaGradient = gradients + channels
    }

    public func initialize(seed: UInt64, layerIndex: Int) {
        let weight = initializer.weight == .pytorchDefault ? .constant(1) : initializer.weight
        Cohort.initialize(gamma, shape: [channels], with: weight, defaultFanIn: channels,
                          random: CounterRandom(seed, 0x1417, UInt64(layerIndex), 0))
        Cohort.initialize(beta, shape: [channels], with: initializer.bias ?? .constant(0), defaultFanIn: channels,
                          random: CounterRandom(seed, 0x1417, UInt64(layerIndex), 1))
        runningMean.pointer.update(repeating: 0, count: channels)
        runningVariance.pointer.update(repeating: 1, count: channels)
        batchesTracked.pointer.pointee = 0
    }

    public func buffers() -> [StateTensor] {
        [StateTensor(name: "running_mean", shape: [channels], storage: .scalars(UnsafeMutableRawPointer(runningMean.pointer))),
         StateTensor(name: "running_var", shape: [channels], storage: .scalars(UnsafeMutableRawPointer(runningVariance.pointer)),
                    holdsVariances: true),
         StateTensor(name: "num_batches_tracked", shape: [], storage: .int64(batchesTracked.pointer))]
    }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) throws {
        let scale = affineScale.pointer, shift = affineShift.pointer
        usedBatchStatistics = context.isTraining
        if !context.isTraining {
            for c in 0..<channels {
                batchMean.pointer[c] = runningMean.pointer[c]
                batchInverseStd.pointer[c] = 1 / (runningVariance.pointer[c] + Element(epsilon)).squareRoot()
                scale[c] = gamma[c] * batchInverseStd.pointer[c]
                shift[c] = beta[c] - runningMean.pointer[c] * scale[c]
            }
            affine(x, y, batch: batch)
            return
        }
        let sum = sums.pointer, squares = sums.pointer + channels
        if inputMomentsTaken {
            inputMomentsTaken = false
        } else {
            sums.pointer.update(repeating: 0, count: 2 * channels)
            forEachChannelShare(batch: batch) { range in
                channelMoments(x, sums: sum, squares: squares, batch: batch, channels: channels, spatial: spatial, only: range)
            }
        }
        batchNormStatistics(sums: sum, squares: squares, count: try globalCount(batch: batch, context: context), epsilon: epsilon,
                            momentum: momentum, gamma: gamma, beta: beta, mean: batchMean.pointer, inverseStd: batchInverseStd.pointer,
                            scale: scale, shift: shift, runningMean: runningMean.pointer, runningVariance: runningVariance.pointer,
                            channels: channels)
        if !synchronized && context.communicator.worldSize > 1 {
            // Classic local statistics: workers agree on the mean of their running statistics.
            try context.communicator.allreduceSum(runningMean.pointer, count: channels)
            try context.communicator.allreduceSum(runningVariance.pointer, count: channels)
            let share = 1 / Element(context.communicator.worldSize)
            for c in 0..<channels { runningMean.pointer[c] *= share; runningVariance.pointer[c] *= share }
        }
        batchesTracked.pointer.pointee += 1
        affine(x, y, batch: batch)
    }

    /// For the layer that writes this one's input in the next training forward: where to add the
    /// sums of each channel's values and squares (`channelMoments` of its output, image by image in
    /// order, so bitwise the sums this layer's own pass would take), zeroed; forward then skips
    /// that pass.
    func takeInputMoments() -> (sums: UnsafeMutablePointer<Double>, squares: UnsafeMutablePointer<Double>) {
        sums.pointer.update(repeating: 0, count: 2 * channels)
        inputMomentsTaken = true
        return (sums.pointer, sums.pointer + channels)
    }

    /// y = x * scale + shift per channel (plus the block's other branch, then ReLU when they are
    /// folded in), with `affineScale` and `affineShift`.
    private func affine(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int) {
        let scale = affineScale.pointer, shift = affineShift.pointer
        forEachChannelShare(batch: batch) { range in
            channelAffine(x, y, scale: scale, shift: shift, adding: blockSum?.other, relu: blockSum?.relu ?? appliesReLU,
                          batch: batch, channels: channels, spatial: spatial, only: range)
        }
    }

    /// Runs `body` over the channels, shared among a `ThreadTeam`'s threads when the pass is long
    /// enough (whole cache lines of channels when they are contiguous, after a dense layer).
    private func forEachChannelShare(batch: Int, _ body: (Range<Int>) -> Void) {
        forEachShare(of: channels, values: batch * channels * spatial, granule: spatial == 1 ? 16 : 1, body)
    }

    /// The number of values per channel the statistics are over, after summing `sums` over the
    /// workers when synchronised.
    private func globalCount(batch: Int, context: StepContext) throws -> Int {
        guard synchronized else { return batch * spatial }
        try context.communicator.allreduceSum(sums.pointer, count: 2 * channels)
        return context.globalBatch * spatial
    }

    /// With `appliesReLU`, the affine of the last forward, from which backward tells where the ReLU was open.
    private var reluAffine: ReLUAffine<Element>? {
        appliesReLU ? (UnsafePointer(affineScale.pointer), UnsafePointer(affineShift.pointer)) : nil
    }

    /// dgamma = sum(dy * xhat), dbeta = sum(dy) (this worker's share; the gradient allreduce adds the rest);
    /// dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), the means over the global batch
    /// (after an inference forward, the statistics are constants and dx = gamma * invstd * dy).
    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) throws {
        let sumDy = sums.pointer, sumDyXhat = sums.pointer + channels
        sums.pointer.update(repeating: 0, count: 2 * channels)
        forEachChannelShare(batch: batch) { range in
            batchNormGradientSums(x, dy, relu: reluAffine, mean: batchMean.pointer, inverseStd: batchInverseStd.pointer,
                                  sumDy: sumDy, sumDyXhat: sumDyXhat, batch: batch, channels: channels, spatial: spatial, only: range)
        }
        addAffineGradients(sumDy: sumDy, sumDyXhat: sumDyXhat, gammaGradient: gammaGradient, betaGradient: betaGradient, channels: channels)
        guard let dx else { return }
        if usedBatchStatistics {
            let count = Double(try globalCount(batch: batch, context: context))
            for c in 0..<(2 * channels) { sums.pointer[c] /= count }
        } else {
            // Running statistics are constants: dx = dy * gamma * invstd.
            sums.pointer.update(repeating: 0, count: 2 * channels)
        }
        forEachChannelShare(batch: batch) { range in
            batchNormInputGradient(x, dy, relu: reluAffine, dx, mean: batchMean.pointer, inverseStd: batchInverseStd.pointer,
                                   gamma: gamma, meanDy: sumDy, meanDyXhat: sumDyXhat, batch: batch, channels: channels, spatial: spatial,
                                   only: range)
        }
    }
}
