/// Stochastic gradient descent with PyTorch's momentum, dampening, Nesterov and weight decay
/// (`torch.optim.SGD`):
///
///     g = grad + weight_decay * p
///     b = g on the first step, else momentum * b + (1 - dampening) * g
///     g = g + momentum * b (Nesterov) or b
///     p = p - lr * g
///
/// Nesterov's form is Sutskever et al. (2013) as PyTorch writes it.
public final class SGD: Optimizer {
    public let momentum: Float
    public let dampening: Float
    public let nesterov: Bool
    public let weightDecay: Float
    public var steps: Int64 = 0
    private let momentumBuffer: Buffer<Float>

    public init(momentum: Float, dampening: Float, nesterov: Bool, weightDecay: Float, count: Int) {
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        momentumBuffer = Buffer(count: momentum != 0 ? count : 0)
    }

    public func step(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, count: Int, lr: Float) {
        forEachShare(of: count) { range in
            update(parameters + range.lowerBound, gradients + range.lowerBound,
                   momentumBuffer.pointer + (momentum != 0 ? range.lowerBound : 0), count: range.count, lr: lr)
        }
        steps += 1
    }

    /// Each chunk of 4,096 gradients zeroed right after its update, while it is in L1: no pass of
    /// its own over the gradients (mlp on one core: 1.067x, `benchmarks/pair`, 8 rounds).
    public func stepZeroingGradients(parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>,
                                     count: Int, lr: Float) {
        forEachShare(of: count) { range in
            for first in stride(from: range.lowerBound, to: range.upperBound, by: 4096) {
                let chunk = min(4096, range.upperBound - first)
                update(parameters + first, gradients + first, momentumBuffer.pointer + (momentum != 0 ? first : 0), count: chunk, lr: lr)
                (gradients + first).update(repeating: 0, count: chunk)
            }
        }
        steps += 1
    }

    /// The update of `count` consecutive parameters (`buffer`: their momentum).
    private func update(_ p: UnsafeMutablePointer<Float>, _ gradients: UnsafePointer<Float>, _ buffer: UnsafeMutablePointer<Float>,
                        count: Int, lr: Float) {
        let (decay, mu, keep) = (weightDecay, momentum, 1 - dampening)
        // One loop per case, so that each is a straight vectorisable pass with no test inside.
        if momentum == 0 {
            for i in 0..<count { p[i] -= lr * (gradients[i] + decay * p[i]) }
        } else if steps == 0 {
            for i in 0..<count {
                let g = gradients[i] + decay * p[i]
                buffer[i] = g
                p[i] -= lr * (nesterov ? g + mu * g : g)
            }
        } else if nesterov {
            for i in 0..<count {
                let g = gradients[i] + decay * p[i]
                let b = mu * buffer[i] + keep * g
                buffer[i] = b
                p[i] -= lr * (g + mu * b)
            }
        } else {
            for i in 0..<count {
                let g = gradients[i] + decay * p[i]
                let b = mu * buffer[i] + keep * g
                buffer[i] = b
                p[i] -= lr * b
            }
        }
    }

    public func stateTensors() -> [(name: String, values: UnsafeMutablePointer<Float>)] {
        momentum != 0 ? [("momentum_buffer", momentumBuffer.pointer)] : []
    }
}
