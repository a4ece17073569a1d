/// One step of data-parallel training: forward and backward of this worker's slice, one allreduce
/// of the flat gradient, optional clipping by its norm, the optimizer's update. Everything it
/// touches is allocated up front.
public final class TrainingStep {
    public let model: Model<Float>
    public let optimizer: Optimizer
    public let communicator: Communicator
    public let seed: UInt64
    /// Labels of the local slice: `[N]`.
    public let labels: Buffer<Int32>
    /// Clip the summed gradient to this global L2 norm before the update (`train.clip_grad_norm`).
    public var clipGradNorm: Double?
    /// Loss sum, correct count and stop requests of the step, summed over workers.
    private let totals = Buffer<Double>(count: 3)

    public init(model: Model<Float>, optimizer: Optimizer, communicator: Communicator, seed: UInt64, maxLocalBatch: Int) {
        self.model = model
        self.optimizer = optimizer
        self.communicator = communicator
        self.seed = seed
        model.reserve(maxBatch: maxLocalBatch)
        labels = Buffer(count: maxLocalBatch)
    }

    /// Trains on the `localBatch` samples already in `model.input` and `labels`.
    ///
    /// Returns the mean loss and accuracy over the global batch, and whether any worker asked to
    /// stop (`requestStop`): all workers learn it in the same step. A loss or gradient that is not
    /// finite stops training before the update, so the weights stay those of the last good step.
    @discardableResult
    public func run(step: Int, localBatch: Int, globalBatch: Int, firstSampleIndex: Int, lr: Double,
                    requestStop: Bool = false) throws -> (loss: Double, accuracy: Double, stop: Bool) {
        communicator.step = step
        let context = StepContext(isTraining: true, seed: seed, step: step, firstSampleIndex: firstSampleIndex,
                                  globalBatch: globalBatch, communicator: communicator)
        try model.forward(batch: localBatch, context: context)
        let result = softmaxCrossEntropy(logits: model.output, labels: labels.pointer, dlogits: model.outputGradient,
                                         batch: localBatch, classes: model.classes, gradientScale: 1 / Float(globalBatch))
        try model.backward(batch: localBatch, context: context)
        try communicator.allreduceSum(model.gradients.pointer, count: model.gradients.count)
        totals.pointer[0] = result.lossSum
        totals.pointer[1] = Double(result.correct)
        totals.pointer[2] = requestStop ? 1 : 0
        try communicator.allreduceSum(totals.pointer, count: 3)
        let loss = totals.pointer[0] / Double(globalBatch)
        guard loss.isFinite else {
            throw CohortError("step \(step): the loss became \(loss.isNaN ? "NaN" : "infinite"); training stopped before updating the weights (lower optimizer.lr?)")
        }
        guard allFinite(model.gradients.pointer, count: model.gradients.count) else {
            throw CohortError("step \(step): a gradient became NaN or infinite; training stopped before updating the weights (lower optimizer.lr, or find the layer with `cohort check`)")
        }
        if let clipGradNorm { clipGradientNorm(model.gradients.pointer, count: model.gradients.count, maxNorm: clipGradNorm) }
        optimizer.step(parameters: model.parameters.pointer, gradients: model.gradients.pointer,
                       count: model.parameters.count, lr: Float(lr))
        return (loss, totals.pointer[1] / Double(globalBatch), totals.pointer[2] > 0)
    }
}
