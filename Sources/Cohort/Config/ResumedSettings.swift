/// The settings by which a resumed run's config differs from the config of the run that wrote its
/// checkpoint, among those that change the steps it takes: what the data pipeline feeds, the
/// layers' behaviour (dropout rates, batch norm's momentum, activations), the optimizer, the loss,
/// clipping, accumulation and gradient compression. Seed, batch size and data files have notes of
/// their own; where the checkpoint goes, how often the run logs and the weight initialization (spent
/// at step 0) change nothing a resumed run computes.
///
/// Each change reads `key old -> new`, with the key as the config spells it.
public func changedTrainingSettings(checkpointed old: TrainingConfig, resumed new: TrainingConfig,
                                    totalSteps: (TrainingConfig) -> Int?) -> [String] {
    var changes: [String] = []
    func compare<T: Equatable>(_ key: String, _ before: T, _ after: T, _ text: (T) -> String) {
        if before != after { changes.append("\(key) \(text(before)) -> \(text(after))") }
    }
    func number(_ value: Double) -> String { String(describing: value) }
    func flag(_ value: Bool) -> String { String(describing: value) }
    func list(_ values: [Double]) -> String { "[" + values.map(number).joined(separator: ", ") + "]" }

    compare("data.shuffle", old.data.shuffle, new.data.shuffle, flag)
    compare("data.scale", old.data.scale, new.data.scale, number)
    compare("data.normalize", old.data.normalize, new.data.normalize) { normalize in
        normalize.map { "{mean: \(list($0.mean)), std: \(list($0.std))}" } ?? "none"
    }
    compare("data.augment.random_crop.padding", old.data.augment.cropPadding, new.data.augment.cropPadding) { String($0) }
    compare("data.augment.horizontal_flip", old.data.augment.flipProbability, new.data.augment.flipProbability, number)
    if old.model.layers.map(\.withoutInitializers) != new.model.layers.map(\.withoutInitializers) {
        changes.append("model.layers (a dropout rate, batch norm setting, activation or pooling)")
    }

    let before = old.optimizer, after = new.optimizer
    compare("optimizer.name", before.name, after.name) { $0.rawValue }
    compare("optimizer.lr", before.lr, after.lr, number)
    for key in after.name.keys where before.name.keys.contains(key) {
        switch key {
        case "momentum": compare("optimizer.momentum", before.momentum, after.momentum, number)
        case "dampening": compare("optimizer.dampening", before.dampening, after.dampening, number)
        case "nesterov": compare("optimizer.nesterov", before.nesterov, after.nesterov, flag)
        case "weight_decay": compare("optimizer.weight_decay", before.weightDecay, after.weightDecay, number)
        case "betas": compare("optimizer.betas", [before.beta1, before.beta2], [after.beta1, after.beta2], list)
        case "amsgrad": compare("optimizer.amsgrad", before.amsgrad, after.amsgrad, flag)
        case "eps": compare("optimizer.eps", before.eps, after.eps, number)
        case "alpha": compare("optimizer.alpha", before.alpha, after.alpha, number)
        case "centered": compare("optimizer.centered", before.centered, after.centered, flag)
        case "lr_decay": compare("optimizer.lr_decay", before.lrDecay, after.lrDecay, number)
        case "initial_accumulator_value":
            compare("optimizer.initial_accumulator_value", before.initialAccumulatorValue, after.initialAccumulatorValue, number)
        default: break
        }
    }
    compare("optimizer.schedule", before.schedule, after.schedule) { schedule in
        var text = "{name: \(schedule.kind.rawValue)"
        if schedule.kind == .step { text += ", step_size: \(schedule.stepSize), gamma: \(number(schedule.gamma))" }
        if schedule.warmupSteps > 0 { text += ", warmup_steps: \(schedule.warmupSteps)" }
        return text + "}"
    }
    if before.schedule.kind == .cosine, after.schedule.kind == .cosine,
       let stepsBefore = totalSteps(old), let stepsAfter = totalSteps(new) {
        compare("the cosine schedule's length (train.max_steps or epochs)", stepsBefore, stepsAfter) { "\($0) steps" }
    }

    compare("train.loss", old.train.loss, new.train.loss) { $0 }
    compare("train.clip_grad_norm", old.train.clipGradNorm, new.train.clipGradNorm) { $0.map(number) ?? "none" }
    compare("train.accumulate", old.train.accumulate, new.train.accumulate) { String($0) }
    compare("distributed.compress", old.distributed.compress, new.distributed.compress) { $0.rawValue }
    return changes
}

extension LayerSpec {
    /// The layer with every initializer at its default: what it computes once its weights are set.
    var withoutInitializers: LayerSpec {
        let initial = LayerInit()
        switch self {
        case let .conv2d(outChannels, kernel, stride, padding, bias, _):
            return .conv2d(outChannels: outChannels, kernel: kernel, stride: stride, padding: padding, bias: bias, initializer: initial)
        case let .dense(outFeatures, bias, _): return .dense(outFeatures: outFeatures, bias: bias, initializer: initial)
        case let .batchnorm(momentum, epsilon, synchronized, _):
            return .batchnorm(momentum: momentum, epsilon: epsilon, synchronized: synchronized, initializer: initial)
        case let .lstm(hiddenSize, returnSequences, bias, _):
            return .lstm(hiddenSize: hiddenSize, returnSequences: returnSequences, bias: bias, initializer: initial)
        case let .gru(hiddenSize, returnSequences, bias, _):
            return .gru(hiddenSize: hiddenSize, returnSequences: returnSequences, bias: bias, initializer: initial)
        case let .rnn(hiddenSize, nonlinearity, returnSequences, bias, _):
            return .rnn(hiddenSize: hiddenSize, nonlinearity: nonlinearity, returnSequences: returnSequences, bias: bias, initializer: initial)
        case let .residual(body, shortcut):
            return .residual(body: body.map(\.withoutInitializers), shortcut: shortcut.map(\.withoutInitializers))
        case .dropout, .activation, .pool, .flatten, .adaptiveAvgPool:
            return self
        }
    }
}
