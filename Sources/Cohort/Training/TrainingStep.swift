/// One step of data-parallel training: forward and backward of this worker's slice (in
/// `microBatches` successive parts, their gradients summed), the allreduce of the flat gradient
/// (after backward, or overlapped with the last one: `overlapCommunication`), optional clipping by
/// its norm, the optimizer's update. Everything it touches is allocated up front.
public final class TrainingStep {
    public let model: Model<Float>
    public let optimizer: Optimizer
    public let communicator: Communicator
    public let seed: UInt64
    /// Labels of the local slice (of one micro-batch): `[N]`.
    public let labels: Buffer<Int32>
    /// Clip the summed gradient to this global L2 norm before the update (`train.clip_grad_norm`).
    public var clipGradNorm: Double?
    /// What the errors about a NaN or infinite loss or gradient suggest instead of the learning rate
    /// (`OptimizerConfig.divergenceCause`).
    public var divergenceCause: String?
    /// How the gradients travel (`distributed.compress`).
    public var compression = GradientCompression.none
    /// Parts of the global batch per step (`train.accumulate`).
    public let microBatches: Int
    /// Loss sum, correct count and stop requests of the step, summed over workers.
    private let totals = Buffer<Double>(count: 3)
    /// The gradients of the step's earlier micro-batches, summed (only when `microBatches > 1`).
    private let accumulated: Buffer<Float>?
    /// The allreduce overlapped with backward (`overlapCommunication`); nil: one allreduce after it.
    private var exchange: GradientExchange?

    /// `maxLocalBatch`: the largest number of samples this worker takes in one micro-batch.
    public init(model: Model<Float>, optimizer: Optimizer, communicator: Communicator, seed: UInt64, maxLocalBatch: Int,
                microBatches: Int = 1) {
        precondition(microBatches >= 1)
        self.model = model
        self.optimizer = optimizer
        self.communicator = communicator
        self.seed = seed
        self.microBatches = microBatches
        model.reserve(maxBatch: maxLocalBatch)
        labels = Buffer(count: maxLocalBatch)
        accumulated = microBatches > 1 ? Buffer(count: model.gradients.count) : nil
    }

    /// Keeps the gradients in memory that every worker of this host maps
    /// (`Communicator.sharedSumBuffer`), where the sum adds them up in place instead of copying
    /// them in and out, when float32 gradients are summed through shared memory and not on a
    /// communication thread. Collective: every worker calls it, at set-up, after `compression` is set.
    public func placeGradientsForSum() throws {
        guard compression == .none, exchange == nil, communicator.sumsInSharedMemory,
              let storage = try communicator.sharedSumBuffer(count: model.gradients.count) else { return }
        model.placeGradients(in: storage)
    }

    /// Sums the gradients over the workers during backward, bucket by bucket, on a communication
    /// thread (`GradientExchange`), where MPI allows it (a world of one has nothing to send) and
    /// the sum is messages: not when float32 gradients are summed through shared memory (workers of
    /// one host), which is memory traffic on the worker's own core that a thread beside backward
    /// would only take from it. Collective: every worker calls it, at set-up, after `compression` is set.
    public func overlapCommunication(bucketCount: Int = GradientBuckets.defaultTargetCount) throws {
        guard exchange == nil, compression != .none || !communicator.sumsInSharedMemory,
              let channel = try communicator.duplicate() else { return }
        exchange = GradientExchange(model: model, communicator: channel, buckets: GradientBuckets(model: model, targetCount: bucketCount))
    }

    /// Trains on the `localBatch` samples already in `model.input` and `labels` (one micro-batch).
    @discardableResult
    public func run(step: Int, localBatch: Int, globalBatch: Int, firstSampleIndex: Int, lr: Double,
                    requestStop: Bool = false, keepGradients: Bool = true) throws -> (loss: Double, accuracy: Double, stop: Bool) {
        precondition(microBatches == 1, "a step of several micro-batches loads each one: use run(step:globalBatch:lr:load:)")
        return try run(step: step, globalBatch: globalBatch, lr: lr, requestStop: requestStop, keepGradients: keepGradients) { _ in
            (localBatch, firstSampleIndex)
        }
    }

    /// Trains on global step `step`: `load(j)` puts this worker's samples of micro-batch `j` into
    /// `model.input` and `labels` and returns their count and the global index of the first.
    ///
    /// Returns the mean loss and accuracy over the global batch, and whether any worker asked to
    /// stop (`requestStop`): all workers learn it in the same step. A loss or gradient that is not
    /// finite stops training before the update, so the weights stay those of the last good step.
    /// Without `keepGradients`, the optimizer zeroes the gradients as it updates (one pass over
    /// memory fewer): they are not there to read after the step.
    @discardableResult
    public func run(step: Int, globalBatch: Int, lr: Double, requestStop: Bool = false, keepGradients: Bool = true,
                    load: (_ microBatch: Int) throws -> (count: Int, firstSampleIndex: Int)) throws -> (loss: Double, accuracy: Double, stop: Bool) {
        communicator.step = step
        var lossSum = 0.0, correct = 0
        for micro in 0..<microBatches {
            let (count, first) = try load(micro)
            // Batch norm normalises over the micro-batch, all workers' parts of it.
            let microGlobal = BatchPlan.slice(batch: globalBatch, rank: micro, worldSize: microBatches).count
            let context = StepContext(isTraining: true, seed: seed, step: step, firstSampleIndex: first,
                                      globalBatch: microGlobal, communicator: communicator)
            try model.forward(batch: count, context: context)
            let result = softmaxCrossEntropy(logits: model.output, labels: labels.pointer, dlogits: model.outputGradient,
                                             batch: count, classes: model.classes, gradientScale: 1 / Float(globalBatch))
            lossSum += result.lossSum
            correct += result.correct
            let last = micro == microBatches - 1
            if last { exchange?.begin(step: step, compression: compression, adding: accumulated.map { UnsafePointer($0.pointer) }) }
            try model.backward(batch: count, context: context)
            if let accumulated {
                let sum = accumulated.pointer, gradients = model.gradients.pointer
                if micro == 0 {
                    sum.update(from: gradients, count: model.gradients.count)
                } else if !last {
                    for i in 0..<model.gradients.count { sum[i] += gradients[i] }
                } else if exchange == nil {
                    for i in 0..<model.gradients.count { gradients[i] += sum[i] }
                }
            }
        }
        if let exchange {
            try exchange.finish()
        } else {
            switch compression {
            case .none: try communicator.allreduceSum(model.gradients.pointer, count: model.gradients.count)
            case .bf16: try communicator.allreduceSumBFloat16(model.gradients.pointer, count: model.gradients.count)
            }
        }
        totals.pointer[0] = lossSum
        totals.pointer[1] = Double(correct)
        totals.pointer[2] = requestStop ? 1 : 0
        try communicator.allreduceSum(totals.pointer, count: 3)
        let loss = totals.pointer[0] / Double(globalBatch)
        guard loss.isFinite else {
            throw CohortError("step \(step + 1): the loss became \(loss.isNaN ? "NaN" : "infinite"); training stopped before updating the weights (\(divergenceCause ?? "lower optimizer.lr?"))",
                              sameOnEveryWorker: true)
        }
        guard allFinite(model.gradients.pointer, count: model.gradients.count) else {
            throw CohortError("step \(step + 1): a gradient became NaN or infinite; training stopped before updating the weights (\(divergenceCause ?? "lower optimizer.lr, or find the layer with `cohort check`"))",
                              sameOnEveryWorker: true)
        }
        if let clipGradNorm { clipGradientNorm(model.gradients.pointer, count: model.gradients.count, maxNorm: clipGradNorm) }
        if keepGradients {
            optimizer.step(parameters: model.parameters.pointer, gradients: model.gradients.pointer,
                           count: model.parameters.count, lr: Float(lr))
        } else {
            optimizer.stepZeroingGradients(parameters: model.parameters.pointer, gradients: model.gradients.pointer,
                                           count: model.parameters.count, lr: Float(lr))
            model.gradientsAreZero = true
        }
        return (loss, totals.pointer[1] / Double(globalBatch), totals.pointer[2] > 0)
    }
}
