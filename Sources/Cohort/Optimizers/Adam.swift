import RealModule

/// Adam (Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015), with PyTorch's
/// L2 weight decay and AMSGrad (Reddi et al., 2018), as `torch.optim.Adam`. At step t (from 1):
///
///     g = grad + weight_decay * p                  (L2: the decay goes through the moments)
///     m = beta1 * m + (1 - beta1) * g
///     v = beta2 * v + (1 - beta2) * g^2
///     v_max = max(v_max, v)                        (AMSGrad; then v_max replaces v below)
///     p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
///
/// `AdamW` is the same rule with the decay taken out of the gradient and applied to the weight.
///
/// ### See Also
/// `AdamW`, `RMSprop`, `Adagrad`, `SGD`
public class Adam: Optimizer {
    /// Kept in Double for the bias corrections, as PyTorch computes them (Float(0.999) is not 0.999).
    public let beta1: Double
    public let beta2: Double
    public let epsilon: Float
    public let weightDecay: Float
    public let amsgrad: Bool
    /// Loshchilov & Hutter's decoupled decay (`p *= 1 - lr * weight_decay`) instead of L2.
    public let decoupledWeightDecay: Bool
    public var steps: Int64 = 0
    private let firstMoment: Buffer<Float>
    private let secondMoment: Buffer<Float>
    private let maxSecondMoment: Buffer<Float>

    public init(beta1: Double, beta2: Double, epsilon: Float, weightDecay: Float, amsgrad: Bool,
                decoupledWeightDecay: Bool = false, count: Int) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.amsgrad = amsgrad
        self.decoupledWeightDecay = decoupledWeightDecay
        firstMoment = Buffer(count: count)
        secondMoment = Buffer(count: count)
        maxSecondMoment = Buffer(count: amsgrad ? count : 0)
    }

    public func step(parameters p: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, count: Int, lr: Float) {
        steps += 1
        let t = Double(steps)
        let stepSize = Float(Double(lr) / (1 - Double.pow(beta1, t)))
        let correction2 = Float((1 - Double.pow(beta2, t)).squareRoot())
        // Multiplying by 1 and adding 0 * p are exact, so one loop serves both kinds of decay.
        let shrink = decoupledWeightDecay ? Float(1 - Double(lr) * Double(weightDecay)) : 1
        let l2: Float = decoupledWeightDecay ? 0 : weightDecay
        let m = firstMoment.pointer, v = secondMoment.pointer, vMax = maxSecondMoment.pointer
        let beta1 = Float(self.beta1), beta2 = Float(self.beta2)
        let keep1 = Float(1 - self.beta1), keep2 = Float(1 - self.beta2)
        forEachShare(of: count) { range in
            for i in range {
                p[i] *= shrink
                let g = gradients[i] + l2 * p[i]
                m[i] = beta1 * m[i] + keep1 * g
                v[i] = beta2 * v[i] + keep2 * g * g
                var second = v[i]
                if amsgrad {
                    second = max(vMax[i], second)
                    vMax[i] = second
                }
                p[i] -= stepSize * m[i] / (second.squareRoot() / correction2 + epsilon)
            }
        }
    }

    public func stateTensors() -> [(name: String, values: UnsafeMutablePointer<Float>)] {
        var state = [("exp_avg", firstMoment.pointer), ("exp_avg_sq", secondMoment.pointer)]
        if amsgrad { state.append(("max_exp_avg_sq", maxSecondMoment.pointer)) }
        return state
    }
}
