/// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019), as
/// `torch.optim.AdamW`: Adam's update with the weight decay applied to the weight, not the gradient,
///
///     p = p * (1 - lr * weight_decay)
///     p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)   (m, v of the raw gradient)
///
/// so that the decay is not rescaled by Adam's per-parameter step sizes. PyTorch's default decay is 0.01.
///
/// ### See Also
/// `Adam`
public final class AdamW: Adam {
    public init(beta1: Double, beta2: Double, epsilon: Float, weightDecay: Float, amsgrad: Bool, count: Int) {
        super.init(beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay, amsgrad: amsgrad,
                   decoupledWeightDecay: true, count: count)
    }
}
