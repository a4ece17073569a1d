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
    /// The step this run resumed from (0: a fresh start).
    public var startStep = 0
    /// Training throughput of this run: images over the seconds spent in training steps.
    public var imagesPerSecond = 0.0
    /// The evaluation of highest test accuracy of the whole run, earlier attempts included (coordinator only).
    public var bestTest: MetricPoint?
}

/// A training run from a config: data, model, optimizer, the loop, checkpoints and the final evaluation.
public final class Trainer {
    public let config: TrainingConfig
    public let communicator: Communicator
    private let log: (String) -> Void
    /// Ends the run after this many steps (with a checkpoint) as if it had been interrupted there:
    /// the schedule still spans the configured run.
    public var stopAfterStep: Int?
    /// Where to draw a live progress bar per epoch (stdout on a terminal), instead of a line every
    /// `train.log_every_steps`; nil: plain lines. Only the coordinator draws.
    public var terminal: ProgressReporter.Terminal?
    /// The run directory's lock, held by the coordinator while `run` trains.
    private var runLock: RunLock?

    /// `log` receives progress lines; only the coordinator's are printed.
    public init(config: TrainingConfig, communicator: Communicator, log: @escaping (String) -> Void) {
        self.config = config
        self.communicator = communicator
        self.log = { line in if communicator.isCoordinator { log(line) } }
    }

    public func run(resume: ResumeMode) throws -> TrainingSummary {
        let started = Date()
        defer { runLock = nil }
        let model = try Model<Float>.built(from: config)
        guard let trainFiles = config.data.train else {
            throw CohortError("\(config.sourcePath): data.train: missing: the training data is required")
        }
        let transform = try InputTransform(config.data, inputShape: model.inputShape, seed: config.seed, file: config.sourcePath)
        let train = try Dataset(trainFiles, transform: transform, classes: model.classes, role: "data.train")
        let test = try config.data.test.map { try Dataset($0, transform: transform, classes: model.classes, role: "data.test") }
        try test?.checkEverySample()
        let notes = ([train] + (test.map { [$0] } ?? [])).flatMap { $0.images.notes(transform, scale: config.data.scale) }
        var said = Set<String>()
        for note in notes where said.insert(note).inserted { log(note) }
        let batchSize = try config.batchSize(trainingSamples: train.count)
        let world = communicator.worldSize
        guard batchSize >= world else {
            throw CohortError("\(config.sourcePath): train.batch_size: \(batchSize) samples cannot be shared by \(world) workers (at least one each)")
        }
        let microBatches = config.train.accumulate
        // The smallest micro-batch (they differ by at most one sample) must give every worker a sample.
        let smallestMicroBatch = BatchPlan.slice(batch: batchSize, rank: microBatches - 1, worldSize: microBatches).count
        guard smallestMicroBatch >= world else {
            throw CohortError("\(config.sourcePath): train.accumulate: \(microBatches) micro-batches of train.batch_size \(batchSize) leave a worker of \(world) without samples (each step needs batch_size >= accumulate x workers = \(microBatches * world))")
        }
        try checkBatchNormStatistics(model, batchSize: smallestMicroBatch, world: world,
                                     key: microBatches == 1 ? "train.batch_size: \(batchSize)" : "train.accumulate: \(microBatches) micro-batches of train.batch_size \(batchSize) (the smallest of \(smallestMicroBatch))")
        var plan = BatchPlan(sampleCount: train.count, batchSize: batchSize, shuffle: config.data.shuffle, seed: config.seed)
        let totalSteps = config.train.maxSteps ?? (config.train.epochs! * plan.stepsPerEpoch)

        model.initialize(seed: config.seed)
        guard model.parameters.count > 0 else {
            throw CohortError("\(config.sourcePath): model.layers: no layer has parameters to train (add a dense or conv2d layer)")
        }
        let optimizer = makeOptimizer(config.optimizer, count: model.parameters.count)
        let store = CheckpointStore(runDirectory: config.checkpoint.dir, keep: config.checkpoint.keep)
        var startStep = 0
        var window = LogWindow()
        let dataFingerprint = train.fingerprint
        var replacingEarlierRun = true
        let resumed = try checkpointToResume(resume, store: store)
        // A resumed run takes its weights from the checkpoint: the initial ones may have been removed since.
        if resumed == nil, let path = config.model.initFrom {
            try model.importStateDict(SafeTensors.read(path: path).tensors, source: path)
        }
        if let directory = resumed {
            replacingEarlierRun = false
            let progress = try TrainingCheckpoint.restore(from: directory, model: model, optimizer: optimizer)
            startStep = progress.step
            window = progress.logWindow ?? LogWindow()
            guard startStep <= totalSteps else {
                let key = config.train.maxSteps != nil ? "train.max_steps" : "train.epochs"
                throw CohortError("\(config.sourcePath): \(key): the run has \(totalSteps) steps, but \(directory.path) is at step \(startStep): a resumed run can only go on (--resume DIR resumes an earlier checkpoint)")
            }
            log("resumed from \(directory.path) at step \(startStep) (written by \(progress.worldSize) worker\(progress.worldSize == 1 ? "" : "s"))")
            if progress.seed != config.seed {
                log("note: the checkpoint's run had seed \(progress.seed); with this config's seed \(config.seed) the shuffle, dropout masks and augmentation from step \(startStep + 1) on are not those the interrupted run would have drawn")
            }
            if progress.batchSize != batchSize || progress.epoch != plan.epoch(ofStep: startStep)
                || progress.stepInEpoch != startStep % plan.stepsPerEpoch {
                log("note: the checkpoint's run had train.batch_size \(progress.batchSize) and was at step \(progress.stepInEpoch + 1) of epoch \(progress.epoch + 1); with this config's batch size and data, step \(startStep + 1) is step \(startStep % plan.stepsPerEpoch + 1) of epoch \(plan.epoch(ofStep: startStep) + 1), so the samples from here on are not those the interrupted run would have drawn")
            } else if let trained = progress.dataFingerprint, trained != dataFingerprint {
                log("note: the checkpoint's run trained on other data than \(trainFiles.described(as: "data.train")): other images, labels, order or number of samples, so the samples from here on are not those the interrupted run would have drawn")
            }
            // A checkpoint's config parses as it did when written, unless Cohort has since changed its keys.
            if let trained = try? ConfigLoader.parse(progress.config, file: config.sourcePath) {
                // The checkpoint's epochs were as long as its progress says, whatever the data holds now.
                let trainedEpochSteps = progress.epoch > 0 ? (progress.step - progress.stepInEpoch) / progress.epoch
                    : (try? trained.batchSize(trainingSamples: train.count)).map { train.count / $0 }
                let trainedSteps = trained.train.maxSteps ?? trained.train.epochs.flatMap { epochs in trainedEpochSteps.map { epochs * $0 } }
                let changes = changedTrainingSettings(checkpointed: trained, resumed: config, scaleApplies: train.images.element == .uint8,
                                                      compressionApplies: max(progress.worldSize, world) > 1,
                                                      totalSteps: (trainedSteps, totalSteps))
                if !changes.isEmpty {
                    log("note: this config changes settings the checkpoint's run trained with: \(changes.joined(separator: ", ")); steps from \(startStep + 1) on follow this config")
                }
            }
        }
        let maxLocal = BatchPlan.slice(batch: batchSize, rank: 0, worldSize: world, microBatch: 0, of: microBatches).count
        let activationBytes = 2 * model.activationBytes(maxBatch: maxLocal)
        let budget = MemoryBudget.current()
        guard budget.holds(activationBytes) else {
            try budget.checkOneSample(2 * model.activationBytes(maxBatch: 1), source: config.sourcePath)
            throw CohortError("\(config.sourcePath): train.batch_size: \(maxLocal) samples per worker and micro-batch need about \(memorySize(activationBytes)) of activations, more than \(budget.allowance); lower the batch size, use more workers or raise train.accumulate")
        }
        // Every worker on a node holds its own copy of gzip (and CIFAR) data; memory-mapped files only what it reads.
        let dataBytes = Double(train.residentBytes + (test?.residentBytes ?? 0))
        guard budget.holds(activationBytes + dataBytes) else {
            throw CohortError("\(config.sourcePath): data: each worker holds \(memorySize(dataBytes)) of data (gzip files and CIFAR batches are read whole) besides \(memorySize(activationBytes)) of activations, more than \(budget.allowance); decompress gzip files (gunzip -k) so that they are memory-mapped")
        }
        if communicator.isCoordinator {
            runLock = try store.prepare(lockKey: "\(config.sourcePath): checkpoint.dir: \(config.checkpoint.dir)")
        }
        // Last in set-up, so that a run refused for any other reason leaves an earlier run's curves alone.
        let recorder = communicator.isCoordinator
            ? try MetricsRecorder(runDirectory: config.checkpoint.dir, resumedStep: replacingEarlierRun ? nil : startStep,
                                  windowOpen: !window.isEmpty,
                                  holdUntilCheckpoint: replacingEarlierRun && !store.completeSteps().isEmpty) : nil
        if communicator.isCoordinator, replacingEarlierRun, let newest = store.completeSteps().max() {
            log("note: \(config.checkpoint.dir) holds the checkpoints of an earlier run (the newest at step \(newest)); this run starts afresh and replaces them at its first checkpoint (to continue that run instead: --resume auto)")
        }
        try communicator.completeSetup()
        try RunIdentity.verify(configText: config.sourceText, configPath: config.sourcePath, communicator: communicator)
        let stepper = TrainingStep(model: model, optimizer: optimizer, communicator: communicator,
                                   seed: config.seed, maxLocalBatch: maxLocal, microBatches: microBatches)
        stepper.clipGradNorm = config.train.clipGradNorm
        stepper.divergenceCause = config.optimizer.divergenceCause
        stepper.compression = config.distributed.compress
        try stepper.placeGradientsForSum()
        if config.distributed.overlap { try stepper.overlapCommunication(bucketCount: config.distributed.bucketCount) }
        let schedule = LearningRateSchedule(base: config.optimizer.lr, config: config.optimizer.schedule, totalSteps: totalSteps)
        let reporter = ProgressReporter(log: log, terminal: communicator.isCoordinator ? terminal : nil, world: world,
                                        totalSteps: totalSteps, stepsPerEpoch: plan.stepsPerEpoch, batchSize: batchSize)
        defer { reporter.close() }
        ModelSummary.lines(model).forEach(log)
        log("training \(model.parameters.count) parameters on \(train.count) samples: \(totalSteps) steps of \(batchSize) (\(plan.stepsPerEpoch) per epoch), world=\(world)")

        var lastLoss = Double.nan
        var trainingSeconds = 0.0
        var lastCheckpoint: String?
        for step in startStep..<totalSteps {
            let stepStarted = DispatchTime.now().uptimeNanoseconds
            var lastMicroBatch = 0
            let lr = schedule.rate(at: step)
            let done = step + 1
            // Where this step's histograms go (they read the gradients, which the optimizer
            // otherwise zeroes as it updates).
            let histogramStep = config.train.histogramsEverySteps.map { done % $0 == 0 || done == 1 } ?? false
            let histograms = histogramStep ? recorder : nil
            let (loss, accuracy, stopRequested) = try stepper.run(step: step, globalBatch: batchSize, lr: lr,
                                                                  requestStop: StopSignal.received != 0,
                                                                  keepGradients: histograms != nil) { micro in
                let (indices, first) = plan.samples(step: step, rank: communicator.rank, worldSize: world,
                                                    microBatch: micro, of: microBatches)
                try train.gather(indices, into: model.input, labels: stepper.labels.pointer, epoch: plan.epoch(ofStep: step))
                lastMicroBatch = indices.count
                return (indices.count, first)
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - stepStarted) / 1e9
            lastLoss = loss
            window.add(loss: loss, accuracy: accuracy, seconds: seconds)
            trainingSeconds += seconds
            let epoch = plan.epoch(ofStep: step) + 1
            reporter.step(done, loss: loss, accuracy: accuracy, seconds: seconds)
            if let recorder = histograms {
                try recorder.record(histograms: ModelHistograms.measure(model, batch: lastMicroBatch), step: done,
                                    epoch: plan.epoch(ofStep: step) + 1)
            }
            let endOfEpoch = done % plan.stepsPerEpoch == 0
            let stopping = done == stopAfterStep || stopRequested
            let logStep = done % config.train.logEverySteps == 0 || endOfEpoch
            if logStep || stopping || done == totalSteps {
                let point = window.point(step: done, epoch: epoch, lr: lr, batchSize: batchSize)
                reporter.logged(point)
                try recorder?.record(point)
                // The point of a stop, or of a run's end between logged steps, is that run's last;
                // its window stays open in the checkpoint, for a resumed or extended run to count again.
                if logStep { window = LogWindow() }
            }
            if endOfEpoch, let test, done != totalSteps {
                let result = try evaluate(model, on: test, step: done)
                let point = MetricPoint.test(step: done, epoch: epoch, loss: result.loss, accuracy: result.accuracy, samples: result.samples)
                reporter.evaluated(point, final: false)
                try recorder?.record(point)
            }
            let every = config.checkpoint.everySteps
            if (every > 0 && done % every == 0) || done == totalSteps || stopping {
                lastCheckpoint = try saveCheckpoint(step: done, model: model, optimizer: optimizer, plan: plan, batchSize: batchSize,
                                                    window: window, dataFingerprint: dataFingerprint, store: store,
                                                    replacingEarlierRun: replacingEarlierRun)
                replacingEarlierRun = false
                try recorder?.checkpointWritten()
            }
            if stopping && done < totalSteps {
                try recorder?.writeCurves(title: curvesTitle)
                reporter.line("stopped at step \(done) of \(totalSteps) world=\(world)")
                return TrainingSummary(steps: done, lastLoss: lastLoss, test: nil, checkpoint: lastCheckpoint,
                                       seconds: Date().timeIntervalSince(started),
                                       interrupted: stopRequested, signal: StopSignal.received, startStep: startStep,
                                       imagesPerSecond: Double((done - startStep) * batchSize) / max(trainingSeconds, 1e-9),
                                       bestTest: recorder?.bestTest)
            }
        }
        if startStep >= totalSteps {
            reporter.line("nothing to do: the checkpoint is at step \(startStep) and the run has \(totalSteps) steps world=\(world)")
        }
        let result = try test.map { try evaluate(model, on: $0, step: totalSteps) }
        if let result {
            let point = MetricPoint.test(step: totalSteps, epoch: plan.epoch(ofStep: max(totalSteps - 1, 0)) + 1,
                                         loss: result.loss, accuracy: result.accuracy, samples: result.samples)
            reporter.evaluated(point, final: true)
            // A finished run extended by nothing has this evaluation in its log already.
            if startStep < totalSteps { try recorder?.record(point) }
        }
        try recorder?.writeCurves(title: curvesTitle)
        let trained = max(totalSteps - startStep, 0)
        let summary = TrainingSummary(steps: totalSteps, lastLoss: lastLoss, test: result, checkpoint: lastCheckpoint,
                                      seconds: Date().timeIntervalSince(started), startStep: startStep,
                                      imagesPerSecond: trained > 0 ? Double(trained * batchSize) / max(trainingSeconds, 1e-9) : 0,
                                      bestTest: recorder?.bestTest)
        reporter.summarize(summary, recorder: recorder)
        return summary
    }

    /// The heading of `curves.svg`: the config and the run directory.
    private var curvesTitle: String {
        "\(URL(fileURLWithPath: config.sourcePath).lastPathComponent): \(config.checkpoint.dir)"
    }

    /// The test set's loss and accuracy after step `step`; outputs that are not finite there are an
    /// error, as in `cohort eval` (a loss of NaN and the accuracy of an argmax over NaN said nothing).
    private func evaluate(_ model: Model<Float>, on test: Dataset, step: Int) throws -> Evaluator.Result {
        let result = try Evaluator.evaluate(model: model, data: test, communicator: communicator)
        guard result.loss.isFinite else {
            throw CohortError("after step \(step): the model's outputs on \(config.data.test?.described(as: "data.test") ?? "data.test") are NaN or infinite, so its accuracy means nothing (\(Predictor.nonFiniteCause)); training stopped\(config.optimizer.divergenceCause.map { " (\($0))" } ?? "")",
                              sameOnEveryWorker: true)
        }
        return result
    }

    /// Batch norm after a dense layer normalises each feature over the batch alone: with one sample
    /// (`batch_size: 1`, or a worker's slice of one without `sync`) its variance is 0 and it would
    /// output its bias whatever the input. PyTorch refuses this; so do we, before training starts.
    /// `batchSize`: the samples of the smallest micro-batch; `key` names the setting that gives it.
    private func checkBatchNormStatistics(_ model: Model<Float>, batchSize: Int, world: Int, key: String) throws {
        for placed in model.placedLayers {
            guard let norm = placed.layer as? BatchNorm<Float>, norm.spatial == 1 else { continue }
            let samples = norm.synchronized ? batchSize : BatchPlan.slice(batch: batchSize, rank: world - 1, worldSize: world).count
            guard samples < 2 else { continue }
            throw CohortError("\(config.sourcePath): \(key) leaves \(placed.place) (batchnorm) one value per feature to normalise\(norm.synchronized ? "" : " on a worker") (as PyTorch, it needs at least 2); use a larger batch or remove that batchnorm")
        }
    }

    private func checkpointToResume(_ resume: ResumeMode, store: CheckpointStore) throws -> URL? {
        switch resume {
        case .fresh: return nil
        case .auto: return try store.latestDirectory(note: log)
        case .directory(let path):
            guard !path.isEmpty else { throw CohortError("--resume: expected auto or a checkpoint directory, got an empty string") }
            let url = URL(fileURLWithPath: path)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw CohortError("\(path): --resume: no such checkpoint directory")
            }
            return url
        }
    }

    private func saveCheckpoint(step: Int, model: Model<Float>, optimizer: Optimizer, plan: BatchPlan, batchSize: Int,
                                window: LogWindow, dataFingerprint: UInt32, store: CheckpointStore, replacingEarlierRun: Bool) throws -> String? {
        guard communicator.isCoordinator else { return nil }
        // Its own loaders refuse a checkpoint holding a NaN or an infinity: a batch norm's running
        // variance can overflow while the loss stays finite (the layers before it scale freely).
        for tensor in model.stateTensors() {
            guard case .scalars(let raw) = tensor.storage else { continue }
            let values = raw.assumingMemoryBound(to: Float.self)
            if let bad = (0..<tensor.count).first(where: { !values[$0].isFinite }) {
                throw CohortError("step \(step): tensor '\(tensor.name)' became NaN or infinite (element \(bad)); training stopped without writing the checkpoint of step \(step) (\(config.optimizer.divergenceCause ?? "lower optimizer.lr?"))")
            }
        }
        let progress = TrainingProgress(step: step, epoch: step / plan.stepsPerEpoch, stepInEpoch: step % plan.stepsPerEpoch,
                                        seed: config.seed, batchSize: batchSize, worldSize: communicator.worldSize,
                                        config: config.sourceText, logWindow: window, dataFingerprint: dataFingerprint)
        try store.write(step: step, files: TrainingCheckpoint.files(model: model, optimizer: optimizer, progress: progress),
                        replacingEarlierRun: replacingEarlierRun)
        return store.root.appendingPathComponent(String(step)).path
    }
}
