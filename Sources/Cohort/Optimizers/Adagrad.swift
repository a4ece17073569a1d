/// Adagrad (Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
/// Stochastic Optimization", JMLR 2011), as `torch.optim.Adagrad`. At step t (from 1):
///
///     g = grad + weight_decay * p
///     lr_t = lr / (1 + (t - 1) * lr_decay)
///     s = s + g^2                                  (s starts at initial_accumulator_value)
///     p = p - lr_t * g / (sqrt(s) + eps)
///
/// ### See Also
/// `RMSprop`, `Adam`, `SGD`
public final class Adagrad: Optimizer {
    public let lrDecay: Double
    public let weightDecay: Float
    public let initialAccumulatorValue: Float
    public let epsilon: Float
    public var steps: Int64 = 0
    private let sumOfSquares: Buffer<Float>

    public init(lrDecay: Double, weightDecay: Float, initialAccumulatorValue: Float, epsilon: Float, count: Int) {
        self.lrDecay = lrDecay
        self.weightDecay = weightDecay
        self.initialAccumulatorValue = initialAccumulatorValue
        self.epsilon = epsilon
        sumOfSquares = Buffer(count: count, zero: initialAccumulatorValue)
    }

    public func step(parameters p: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, count: Int, lr: Float) {
        steps += 1
        let rate = Float(Double(lr) / (1 + Double(steps - 1) * lrDecay))
        let s = sumOfSquares.pointer
        forEachShare(of: count) { range in
            for i in range {
                let g = gradients[i] + weightDecay * p[i]
                s[i] += g * g
                p[i] -= rate * g / (s[i].squareRoot() + epsilon)
            }
        }
    }

    public func stateTensors() -> [(name: String, values: UnsafeMutablePointer<Float>)] {
        [("sum", sumOfSquares.pointer)]
    }
}
