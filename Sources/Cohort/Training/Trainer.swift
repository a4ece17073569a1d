import Foundation

/// Where a run starts: fresh, from the newest checkpoint if any, or from a given checkpoint directory.
public enum ResumeMode: Equatable, Sendable {
    case fresh
    case auto
    case directory(String)
}

/// What a finished run reports.
public struct TrainingSummary: Sendable {
    public var steps: Int
    public var lastLoss: Double
    public var test: Evaluator.Result?
    public var checkpoint: String?
    public var seconds: Double
    /// Whether a stop signal ended the run early (after a checkpoint).
    public var interrupted = false
    /// The signal this process received (0 when it went to another worker).
    public var signal: Int32 = 0
}

/// A training run from a config: data, model, optimizer, the loop, checkpoints and the final evaluation.
public final class Trainer {
    public let config: TrainingConfig
    public let communicator: Communicator
    private let log: (String) -> Void
    /// Ends the run after this many steps (with a checkpoint) as if it had been interrupted there:
    /// the schedule still spans the configured run.
    public var stopAfterStep: Int?

    /// `log` receives progress lines; only the coordinator's are printed.
    public init(config: TrainingConfig, communicator: Communicator, log: @escaping (String) -> Void) {
        self.config = config
        self.communicator = communicator
        self.log = { line in if communicator.isCoordinator { log(line) } }
    }

    public func run(resume: ResumeMode) throws -> TrainingSummary {
        let started = Date()
        let model = try Model<Float>(config.model)
        guard let trainFiles = config.data.train else {
            throw CohortError("\(config.sourcePath): data.train: missing: the training data is required")
        }
        let train = try Dataset(trainFiles, scale: config.data.scale, inputShape: model.inputShape, classes: model.classes, role: "data.train")
        let test = try config.data.test.map {
            try Dataset($0, scale: config.data.scale, inputShape: model.inputShape, classes: model.classes, role: "data.test")
        }
        let batchSize: Int
        switch config.train.batchSize {
        case .full: batchSize = train.count
        case .samples(let size):
            guard size <= train.count else {
                throw CohortError("\(config.sourcePath): train.batch_size: \(size) is larger than the \(train.count) training samples")
            }
            batchSize = size
        }
        let world = communicator.worldSize
        guard batchSize >= world else {
            throw CohortError("\(config.sourcePath): train.batch_size: \(batchSize) samples cannot be shared by \(world) workers (at least one each)")
        }
        try checkBatchNormStatistics(model, batchSize: batchSize, world: world)
        var plan = BatchPlan(sampleCount: train.count, batchSize: batchSize, shuffle: config.data.shuffle, seed: config.seed)
        let totalSteps = config.train.maxSteps ?? (config.train.epochs! * plan.stepsPerEpoch)

        model.initialize(seed: config.seed)
        if let path = config.model.initFrom {
            try model.importStateDict(SafeTensors.read(path: path).tensors, source: path)
        }
        let optimizer = makeOptimizer(config.optimizer, count: model.parameters.count)
        let store = CheckpointStore(runDirectory: config.checkpoint.dir, keep: config.checkpoint.keep)
        var startStep = 0
        var replacingEarlierRun = true
        if let directory = try checkpointToResume(resume, store: store) {
            replacingEarlierRun = false
            let progress = try TrainingCheckpoint.restore(from: directory, model: model, optimizer: optimizer)
            startStep = progress.step
            log("resumed from \(directory.path) at step \(startStep) (written by \(progress.worldSize) worker\(progress.worldSize == 1 ? "" : "s"))")
        }
        let maxLocal = BatchPlan.slice(batch: batchSize, rank: 0, worldSize: world).count
        let activationBytes = 2 * model.activationBytes(maxBatch: maxLocal)
        guard activationBytes < Double(ProcessInfo.processInfo.physicalMemory) * 0.8 else {
            throw CohortError(String(format: "%@: train.batch_size: %d samples per worker need about %.1f GiB of activations, more than this machine has; lower the batch size or use more workers",
                                     config.sourcePath, maxLocal, activationBytes / 1_073_741_824))
        }
        try communicator.completeSetup()
        try RunIdentity.verify(configText: config.sourceText, configPath: config.sourcePath, communicator: communicator)
        let stepper = TrainingStep(model: model, optimizer: optimizer, communicator: communicator,
                                   seed: config.seed, maxLocalBatch: maxLocal)
        stepper.clipGradNorm = config.train.clipGradNorm
        let schedule = LearningRateSchedule(base: config.optimizer.lr, config: config.optimizer.schedule, totalSteps: totalSteps)
        log("training \(model.parameters.count) parameters on \(train.count) samples: \(totalSteps) steps of \(batchSize) (\(plan.stepsPerEpoch) per epoch), world=\(world)")

        var lastLoss = Double.nan
        var windowLoss = 0.0, windowAccuracy = 0.0, windowSteps = 0
        var windowStart = Date()
        var lastCheckpoint: String?
        for step in startStep..<totalSteps {
            let (indices, first) = plan.samples(step: step, rank: communicator.rank, worldSize: world)
            train.gather(indices, into: model.input, labels: stepper.labels.pointer)
            let lr = schedule.rate(at: step)
            let (loss, accuracy, stopRequested) = try stepper.run(step: step, localBatch: indices.count, globalBatch: batchSize,
                                                                  firstSampleIndex: first, lr: lr, requestStop: StopSignal.received != 0)
            lastLoss = loss
            windowLoss += loss; windowAccuracy += accuracy; windowSteps += 1
            let done = step + 1
            let endOfEpoch = done % plan.stepsPerEpoch == 0
            if done % config.train.logEverySteps == 0 || endOfEpoch || done == totalSteps {
                let seconds = Date().timeIntervalSince(windowStart)
                let rate = Double(windowSteps * batchSize) / max(seconds, 1e-9)
                log(String(format: "step %d/%d epoch %d loss %.4f accuracy %.4f lr %.5g images/s %.0f world=%d",
                           done, totalSteps, plan.epoch(ofStep: step) + 1, windowLoss / Double(windowSteps),
                           windowAccuracy / Double(windowSteps), lr, rate, world))
                windowLoss = 0; windowAccuracy = 0; windowSteps = 0
                windowStart = Date()
            }
            if endOfEpoch, let test, done != totalSteps {
                let result = try Evaluator.evaluate(model: model, data: test, communicator: communicator)
                log(String(format: "epoch %d test loss %.4f accuracy %.4f (%d samples) world=%d",
                           plan.epoch(ofStep: step) + 1, result.loss, result.accuracy, result.samples, world))
            }
            let every = config.checkpoint.everySteps
            let stopping = done == stopAfterStep || stopRequested
            if (every > 0 && done % every == 0) || done == totalSteps || stopping {
                lastCheckpoint = try saveCheckpoint(step: done, model: model, optimizer: optimizer, plan: plan, batchSize: batchSize,
                                                    store: store, replacingEarlierRun: replacingEarlierRun)
                replacingEarlierRun = false
            }
            if stopping && done < totalSteps {
                log("stopped at step \(done) of \(totalSteps) world=\(world)")
                return TrainingSummary(steps: done, lastLoss: lastLoss, test: nil, checkpoint: lastCheckpoint,
                                       seconds: Date().timeIntervalSince(started),
                                       interrupted: stopRequested, signal: StopSignal.received)
            }
        }
        if startStep >= totalSteps {
            log("nothing to do: the checkpoint is at step \(startStep) and the run has \(totalSteps) steps")
        }
        let result = try test.map { try Evaluator.evaluate(model: model, data: $0, communicator: communicator) }
        if let result {
            log(String(format: "test loss %.4f accuracy %.4f (%d samples) world=%d", result.loss, result.accuracy, result.samples, world))
        }
        return TrainingSummary(steps: totalSteps, lastLoss: lastLoss, test: result, checkpoint: lastCheckpoint,
                               seconds: Date().timeIntervalSince(started))
    }

    /// Batch norm after a dense layer normalises each feature over the batch alone: with one sample
    /// (`batch_size: 1`, or a worker's slice of one without `sync`) its variance is 0 and it would
    /// output its bias whatever the input. PyTorch refuses this; so do we, before training starts.
    private func checkBatchNormStatistics(_ model: Model<Float>, batchSize: Int, world: Int) throws {
        for (index, layer) in model.layers.enumerated() {
            guard let norm = layer as? BatchNorm<Float>, norm.spatial == 1 else { continue }
            let samples = norm.synchronized ? batchSize : BatchPlan.slice(batch: batchSize, rank: world - 1, worldSize: world).count
            guard samples < 2 else { continue }
            throw CohortError("\(config.sourcePath): train.batch_size: \(batchSize) leaves model.layers[\(index)] (batchnorm) one value per feature to normalise\(norm.synchronized ? "" : " on a worker") (as PyTorch, it needs at least 2); use a larger batch or remove that batchnorm")
        }
    }

    private func checkpointToResume(_ resume: ResumeMode, store: CheckpointStore) throws -> URL? {
        switch resume {
        case .fresh: return nil
        case .auto: return try store.latestDirectory()
        case .directory(let path):
            let url = URL(fileURLWithPath: path)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw CohortError("\(path): --resume: no such checkpoint directory")
            }
            return url
        }
    }

    private func saveCheckpoint(step: Int, model: Model<Float>, optimizer: Optimizer, plan: BatchPlan,
                                batchSize: Int, store: CheckpointStore, replacingEarlierRun: Bool) throws -> String? {
        guard communicator.isCoordinator else { return nil }
        let progress = TrainingProgress(step: step, epoch: step / plan.stepsPerEpoch, stepInEpoch: step % plan.stepsPerEpoch,
                                        seed: config.seed, batchSize: batchSize, worldSize: communicator.worldSize,
                                        config: config.sourceText)
        try store.write(step: step, files: TrainingCheckpoint.files(model: model, optimizer: optimizer, progress: progress),
                        replacingEarlierRun: replacingEarlierRun)
        return store.root.appendingPathComponent(String(step)).path
    }
}
