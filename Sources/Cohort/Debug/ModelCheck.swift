/// The debug mode (`cohort check`): a run's model checked from its config, in one process.
///
/// 1. `GradientCheck` in Double on the first few training samples, from the weights training
///    would start from (`seed`, `model.init.from`), dropout with step 0's masks, batch norm in
///    training mode.
/// 2. `TrainingProbe` over the first training steps in Float, through the trainer's own step:
///    per-layer statistics, and the first NaN or infinity.
public enum ModelCheck {
    public struct Options: Sendable {
        /// Training samples of the gradient check.
        public var samples = 4
        /// Training steps watched by the probe.
        public var steps = 3
        public var gradient = GradientCheck.Options()
        public init() {}
    }

    public struct Report: Sendable {
        public var parameterCount: Int
        public var trainingSamples: Int
        /// The training data's `note:` lines (`SampleSource.notes`).
        public var notes: [String] = []
        public var gradient: GradientCheck.Report
        public var probe: TrainingProbe.Result
        /// Everything passed: gradients agree, and no value became NaN or infinite.
        public var passed: Bool { gradient.passed && probe.nonFinite == nil }
    }

    /// `progress(done, total)`: the gradient check's, as its parts are done (`GradientCheck.run`).
    public static func run(_ config: TrainingConfig, options: Options = Options(),
                           progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> Report {
        let model = try Model<Float>.built(from: config)
        guard let trainFiles = config.data.train else {
            throw CohortError("\(config.sourcePath): data.train: missing: the check runs on training samples")
        }
        let transform = try InputTransform(config.data, inputShape: model.inputShape, seed: config.seed, file: config.sourcePath)
        let train = try Dataset(trainFiles, transform: transform, classes: model.classes, role: "data.train")
        let batchSize = try config.batchSize(trainingSamples: train.count)
        model.initialize(seed: config.seed)
        if let path = config.model.initFrom {
            try model.importStateDict(SafeTensors.read(path: path).tensors, source: path)
        }

        let samples = min(options.samples, train.count)
        // As training refuses it: a batch norm after a dense layer normalises each feature over the samples.
        if let norm = model.placedLayers.first(where: { ($0.layer as? BatchNorm<Float>)?.spatial == 1 }) {
            for (count, what) in [(batchSize, "\(config.sourcePath): train.batch_size: \(batchSize)"), (samples, "--samples \(samples)")] where count < 2 {
                throw CohortError("\(what) leaves \(norm.place) (batchnorm) one value per feature to normalise (as PyTorch, it needs at least 2)")
            }
        }
        let exact = try Model<Double>.built(from: config)
        exact.reserve(maxBatch: samples)
        try exact.importStateDict(Dictionary(uniqueKeysWithValues: model.exportStateDict()), source: "the initial weights")
        // The first samples of step 0 of the run: the same shuffle, the same dropout masks.
        var firstSamples = BatchPlan(sampleCount: train.count, batchSize: samples, shuffle: config.data.shuffle, seed: config.seed)
        let (indices, _) = firstSamples.samples(step: 0, rank: 0, worldSize: 1)
        let labels = Buffer<Int32>(count: samples)
        try train.gather(indices, into: exact.input, labels: labels.pointer)
        let context = StepContext(isTraining: true, seed: config.seed, step: 0, firstSampleIndex: 0, globalBatch: samples,
                                  communicator: SoloCommunicator())
        var gradientOptions = options.gradient
        gradientOptions.seed = config.seed
        let gradient = try GradientCheck.run(model: exact, batch: samples, labels: Array(labels.buffer), context: context,
                                             options: gradientOptions, progress: progress)

        let plan = BatchPlan(sampleCount: train.count, batchSize: batchSize, shuffle: config.data.shuffle, seed: config.seed)
        let totalSteps = config.train.maxSteps ?? (config.train.epochs! * plan.stepsPerEpoch)
        let stepper = TrainingStep(model: model, optimizer: makeOptimizer(config.optimizer, count: model.parameters.count),
                                   communicator: SoloCommunicator(), seed: config.seed, maxLocalBatch: batchSize)
        stepper.clipGradNorm = config.train.clipGradNorm
        let schedule = LearningRateSchedule(base: config.optimizer.lr, config: config.optimizer.schedule, totalSteps: totalSteps)
        let probe = try TrainingProbe.run(stepper, data: train, plan: plan, schedule: schedule,
                                          steps: min(options.steps, totalSteps))
        return Report(parameterCount: model.parameters.count, trainingSamples: train.count,
                      notes: train.images.notes(transform, scale: config.data.scale), gradient: gradient, probe: probe)
    }
}
