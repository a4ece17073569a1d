extension OptimizerConfig {
    /// What a message about a NaN or an infinity in training suggests changing when the weight decay
    /// or the momentum alone make the weights grow without bound; nil otherwise (the learning rate,
    /// most likely).
    ///
    /// SGD's decay on its own is heavy-ball descent on lambda/2 |w|^2, stable while
    /// lr x weight_decay x (1 - dampening) < 2 (1 + momentum), Nesterov's while it is below that over
    /// 1 + 2 momentum; AdamW's decoupled decay scales the weights by 1 - lr x weight_decay, stable
    /// while that product is < 2. Adam, RMSprop and Adagrad divide the decay's term by the
    /// gradients' own scale, which bounds it.
    public var divergenceCause: String? {
        let shrink: Double
        let bound: Double
        switch name {
        case .sgd: (shrink, bound) = (lr * weightDecay * (1 - dampening), 2 * (1 + momentum) / (nesterov ? 1 + 2 * momentum : 1))
        case .adamw: (shrink, bound) = (lr * weightDecay, 2)
        case .adam, .rmsprop, .adagrad: (shrink, bound) = (0, 1)
        }
        if shrink >= bound {
            return "lower optimizer.lr or optimizer.weight_decay: with lr \(lr), weight decay \(weightDecay) alone grows the weights at every step"
        }
        if (name == .sgd || name == .rmsprop) && momentum >= 1 {
            return "lower optimizer.momentum below 1, where every update adds up without fading, and then optimizer.lr if it persists"
        }
        return nil
    }
}
