/// The settings by which a resumed run's config differs from the config of the run that wrote its
/// checkpoint, among those that change the steps it takes: what the data pipeline feeds, the
/// layers' behaviour (dropout rates, batch norm's momentum, activations), the optimizer, the loss,
/// clipping, accumulation and gradient compression. Seed, batch size and data files have notes of
/// their own; where the checkpoint goes, how often the run logs and the weight initialization (spent
/// at step 0) change nothing a resumed run computes.
///
/// Each change reads `key old -> new`, with the key as the config spells it. `scaleApplies`: the
/// training images are integer pixels (`data.scale` leaves float ones alone); `compressionApplies`:
/// either run had more than one worker (one worker sums nothing); `totalSteps`: each run's length
/// in steps, what a cosine schedule spans (nil: not known).
public func changedTrainingSettings(checkpointed old: TrainingConfig, resumed new: TrainingConfig,
                                    scaleApplies: Bool, compressionApplies: Bool,
                                    totalSteps: (checkpointed: Int?, resumed: Int)) -> [String] {
    var changes: [String] = []
    func compare<T: Equatable>(_ key: String, _ before: T, _ after: T, _ text: (T) -> String) {
        if before != after { changes.append("\(key) \(text(before)) -> \(text(after))") }
    }
    func number(_ value: Double) -> String { String(describing: value) }
    func flag(_ value: Bool) -> String { String(describing: value) }
    func list(_ values: [Double]) -> String { "[" + values.map(number).joined(separator: ", ") + "]" }

    compare("data.shuffle", old.data.shuffle, new.data.shuffle, flag)
    if scaleApplies { compare("data.scale", old.data.scale, new.data.scale, number) }
    if !sameNormalization(old.data.normalize, new.data.normalize) {
        compare("data.normalize", old.data.normalize, new.data.normalize) { normalize in
            normalize.map { "{mean: \(list($0.mean)), std: \(list($0.std))}" } ?? "none"
        }
    }
    compare("data.augment.random_crop.padding", old.data.augment.cropPadding, new.data.augment.cropPadding) { String($0) }
    compare("data.augment.horizontal_flip", old.data.augment.flipProbability, new.data.augment.flipProbability, number)
    if let change = firstLayerChange(old.model.layers, new.model.layers, path: "model.layers") { changes.append(change) }

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
       let stepsBefore = totalSteps.checkpointed {
        compare("the cosine schedule's length (train.max_steps or epochs)", stepsBefore, totalSteps.resumed) { "\($0) steps" }
    }

    compare("train.loss", old.train.loss, new.train.loss) { $0 }
    compare("train.clip_grad_norm", old.train.clipGradNorm, new.train.clipGradNorm) { $0.map(number) ?? "none" }
    compare("train.accumulate", old.train.accumulate, new.train.accumulate) { String($0) }
    if compressionApplies { compare("distributed.compress", old.distributed.compress, new.distributed.compress) { $0.rawValue } }
    return changes
}

/// Whether two `data.normalize` settings normalise alike: one value stands for every channel.
func sameNormalization(_ a: NormalizeConfig?, _ b: NormalizeConfig?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    func same(_ x: [Double], _ y: [Double]) -> Bool {
        x.count == y.count ? x == y : (x.count == 1 && y.allSatisfy { $0 == x[0] }) || (y.count == 1 && x.allSatisfy { $0 == y[0] })
    }
    return same(a.mean, b.mean) && same(a.std, b.std)
}

/// `path[i] old -> new` for the first layer that computes otherwise in `new` (initializers aside),
/// looking into residual blocks; a list of another length is named by its counts.
func firstLayerChange(_ old: [LayerSpec], _ new: [LayerSpec], path: String) -> String? {
    guard old.count == new.count else { return "\(path) \(old.count) layers -> \(new.count)" }
    for (index, (before, after)) in zip(old, new).enumerated() where before.withoutInitializers != after.withoutInitializers {
        if case let .residual(body, shortcut) = before, case let .residual(newBody, newShortcut) = after {
            return firstLayerChange(body, newBody, path: "\(path)[\(index)].residual.body")
                ?? firstLayerChange(shortcut, newShortcut, path: "\(path)[\(index)].residual.shortcut")
        }
        return "\(path)[\(index)] \(before.configText) -> \(after.configText)"
    }
    return nil
}

extension LayerSpec {
    /// The layer as a config writes it, initializers and a residual block's layers left out.
    var configText: String {
        switch self {
        case let .conv2d(outChannels, kernel, stride, padding, bias, _):
            "{conv2d: {out_channels: \(outChannels), kernel_size: \(kernel), stride: \(stride), padding: \(padding), bias: \(bias)}}"
        case let .dense(outFeatures, bias, _): "{dense: {out_features: \(outFeatures), bias: \(bias)}}"
        case let .batchnorm(momentum, epsilon, synchronized, _): "{batchnorm: {momentum: \(momentum), eps: \(epsilon), sync: \(synchronized)}}"
        case let .dropout(p): "{dropout: {p: \(p)}}"
        case let .activation(function): "{\(function.rawValue): {}}"
        case let .pool(mode, kernel, stride, padding): "{\(mode.rawValue): {kernel_size: \(kernel), stride: \(stride), padding: \(padding)}}"
        case .flatten: "{flatten: {}}"
        case let .lstm(hiddenSize, returnSequences, bias, _):
            "{lstm: {hidden_size: \(hiddenSize), return_sequences: \(returnSequences), bias: \(bias)}}"
        case let .gru(hiddenSize, returnSequences, bias, _):
            "{gru: {hidden_size: \(hiddenSize), return_sequences: \(returnSequences), bias: \(bias)}}"
        case let .rnn(hiddenSize, nonlinearity, returnSequences, bias, _):
            "{rnn: {hidden_size: \(hiddenSize), nonlinearity: \(nonlinearity.rawValue), return_sequences: \(returnSequences), bias: \(bias)}}"
        case let .adaptiveAvgPool(height, width): "{adaptiveavgpool2d: {output_size: [\(height), \(width)]}}"
        case let .residual(body, shortcut): "{residual: \(body.count) layers and a shortcut of \(shortcut.count)}"
        }
    }

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
