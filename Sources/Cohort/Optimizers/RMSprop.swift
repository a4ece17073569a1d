/// RMSprop (Tieleman & Hinton, "Lecture 6.5 - rmsprop", COURSERA: Neural Networks for Machine
/// Learning, 2012), with Graves's (2013) centred variant, as `torch.optim.RMSprop`:
///
///     g = grad + weight_decay * p
///     s = alpha * s + (1 - alpha) * g^2
///     a = alpha * a + (1 - alpha) * g              (centred only)
///     d = sqrt(s - a^2) + eps   (centred)   or   sqrt(s) + eps
///     b = momentum * b + g / d;  p = p - lr * b    (momentum > 0)
///     p = p - lr * g / d                           (otherwise)
///
/// ### See Also
/// `Adam`, `Adagrad`, `SGD`
public final class RMSprop: Optimizer {
    public let alpha: Float
    public let epsilon: Float
    public let weightDecay: Float
    public let momentum: Float
    public let centered: Bool
    public var steps: Int64 = 0
    private let squareAverage: Buffer<Float>
    private let gradientAverage: Buffer<Float>
    private let momentumBuffer: Buffer<Float>

    public init(alpha: Float, epsilon: Float, weightDecay: Float, momentum: Float, centered: Bool, count: Int) {
        self.alpha = alpha
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.momentum = momentum
        self.centered = centered
        squareAverage = Buffer(count: count)
        gradientAverage = Buffer(count: centered ? count : 0)
        momentumBuffer = Buffer(count: momentum > 0 ? count : 0)
    }

    public func step(parameters p: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, count: Int, lr: Float) {
        let s = squareAverage.pointer, a = gradientAverage.pointer, b = momentumBuffer.pointer
        let keep = 1 - alpha
        forEachShare(of: count) { range in
            for i in range {
                let g = gradients[i] + weightDecay * p[i]
                s[i] = alpha * s[i] + keep * g * g
                var variance = s[i]
                if centered {
                    a[i] = alpha * a[i] + keep * g
                    // s - a^2 >= 0 in exact arithmetic; float rounding must not make its root NaN.
                    variance = max(variance - a[i] * a[i], 0)
                }
                let scaled = g / (variance.squareRoot() + epsilon)
                if momentum > 0 {
                    b[i] = momentum * b[i] + scaled
                    p[i] -= lr * b[i]
                } else {
                    p[i] -= lr * scaled
                }
            }
        }
        steps += 1
    }

    public func stateTensors() -> [(name: String, values: UnsafeMutablePointer<Float>)] {
        var state = [("square_avg", squareAverage.pointer)]
        if momentum > 0 { state.append(("momentum_buffer", momentumBuffer.pointer)) }
        if centered { state.append(("grad_avg", gradientAverage.pointer)) }
        return state
    }
}
