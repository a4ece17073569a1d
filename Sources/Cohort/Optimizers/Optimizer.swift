/// An update rule over the model's flat parameter vector. It knows nothing of layers: PyTorch's
/// optimizers see a list of (parameter, gradient) pairs; ours see the one flat buffer they are stored in.
public protocol Optimizer: AnyObject {
    /// Updates `count` parameters from their gradients with learning rate `lr`.
    func step(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, count: Int, lr: Float)
    /// As `step`, then sets the gradients to zero, ready for the next backward: in the same pass
    /// over memory where the optimizer can, chunk by chunk while a chunk's gradients are in cache.
    func stepZeroingGradients(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, count: Int, lr: Float)
    /// The state the next step depends on, for checkpoints: named flat tensors of `count` values.
    func stateTensors() -> [(name: String, values: UnsafeMutablePointer<Float>)]
    /// Steps taken so far (PyTorch's per-parameter `step`, the same for all here).
    var steps: Int64 { get set }
}

extension Optimizer {
    /// The update, then a pass of zeroes.
    public func stepZeroingGradients(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>,
                                     count: Int, lr: Float) {
        step(parameters: parameters, gradients: gradients, count: count, lr: lr)
        fillZero(gradients, count: count)
    }
}

/// Builds the optimizer a config names, for `count` parameters.
public func makeOptimizer(_ config: OptimizerConfig, count: Int) -> Optimizer {
    let weightDecay = Float(config.weightDecay), eps = Float(config.eps)
    switch config.name {
    case .sgd:
        return SGD(momentum: Float(config.momentum), dampening: Float(config.dampening), nesterov: config.nesterov,
                   weightDecay: weightDecay, count: count)
    case .adam:
        return Adam(beta1: config.beta1, beta2: config.beta2, epsilon: eps, weightDecay: weightDecay,
                    amsgrad: config.amsgrad, count: count)
    case .adamw:
        return AdamW(beta1: config.beta1, beta2: config.beta2, epsilon: eps, weightDecay: weightDecay,
                     amsgrad: config.amsgrad, count: count)
    case .rmsprop:
        return RMSprop(alpha: Float(config.alpha), epsilon: eps, weightDecay: weightDecay, momentum: Float(config.momentum),
                       centered: config.centered, count: count)
    case .adagrad:
        return Adagrad(lrDecay: config.lrDecay, weightDecay: weightDecay,
                       initialAccumulatorValue: Float(config.initialAccumulatorValue), epsilon: eps, count: count)
    }
}
