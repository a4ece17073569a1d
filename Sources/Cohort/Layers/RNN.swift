/// A plain recurrent layer (Elman 1990; PyTorch's `nn.RNN` with `batch_first=True`, one layer, one
/// direction): h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act tanh (the default) or relu.
///
/// Without gates, the gradient reaching step t - k is a product of k Jacobians W_hh^T diag(act'),
/// which vanishes or explodes over long sequences: what the LSTM and GRU were built to avoid.
/// x: `[N, T, F]`; y: `[N, H]` (h at the last step) or `[N, T, H]`.
///
/// ### See Also
/// `LSTM`, `GRU`, `RecurrentCore` (the tensors and products they share), `rnnForwardStep`.
public final class RNN<Element: Scalar>: Layer {
    public enum Nonlinearity: String, CaseIterable, Sendable { case tanh, relu }

    public let kind = "rnn"
    public let inputShape: [Int]
    public var outputShape: [Int] { core.outputShape }
    public let nonlinearity: Nonlinearity
    private var core: RecurrentCore<Element>

    /// h_t of every step: `[N, T, H]`; the backward replaces each row with its gradient, once its
    /// step has read it.
    private var states = Buffer<Element>(count: 0)
    /// Rows [h_{t-1}, 1, x_t] of every step (`RecurrentCore.hiddenStride`): `[N, T, S]`.
    private var hidden = Buffer<Element>(count: 0)
    /// dL/dh carried from one step back to the one before: `[N, H]`.
    private var hiddenGradient = Buffer<Element>(count: 0)

    public init(input: [Int], hiddenSize: Int, nonlinearity: Nonlinearity, returnSequences: Bool, bias: Bool,
                initializer: LayerInit, index: LayerPlace) throws {
        core = try RecurrentCore(kind: "rnn", input: input, hiddenSize: hiddenSize, gates: 1, bias: bias,
                                 returnSequences: returnSequences, initializer: initializer, index: index)
        inputShape = input
        self.nonlinearity = nonlinearity
    }

    public var parameterShapes: [ParameterShape] { core.parameterShapes }

    public func bind(parameters: UnsafeMutablePointer<Element>, gradients: UnsafeMutablePointer<Element>) {
        core.bind(parameters: parameters, gradients: gradients)
    }

    public func initialize(seed: UInt64, layerIndex: Int) { core.initialize(seed: seed, layerIndex: layerIndex) }

    public func reserve(maxBatch: Int) {
        let count = maxBatch * core.steps * core.hiddenSize
        states = Buffer(count: count)
        hidden = Buffer(count: maxBatch * core.steps * core.hiddenStride)
        core.prepareHidden(hidden.pointer, maxBatch: maxBatch)
        hiddenGradient = Buffer(count: maxBatch * core.hiddenSize)
    }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        core.beginForward(x, hidden: hidden.pointer, batch: batch)
        let (steps, h) = (core.steps, core.hiddenSize)
        core.forEachSampleShare(batch) { first, count in
            let states = self.states.pointer + first * steps * h, hidden = self.hidden.pointer + first * steps * core.hiddenStride
            for t in 0..<steps {
                core.projectHidden(step: t, hidden, into: states, accumulate: false, batch: count)
                rnnForwardStep(t, states: states, hidden: hidden, hiddenStride: core.hiddenStride,
                               relu: nonlinearity == .relu, output: core.output(y, step: t).map { $0 + first * core.outputStride },
                               outputStride: core.outputStride, batch: count, steps: steps, hiddenSize: h)
            }
        }
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        core.beginBackward()
        let (steps, h) = (core.steps, core.hiddenSize)
        core.forEachSampleShare(batch) { first, count in
            let states = self.states.pointer + first * steps * h
            let hiddenGradient = self.hiddenGradient.pointer + first * h
            fillZero(hiddenGradient, count: count * h)
            for t in (0..<steps).reversed() {
                rnnBackwardStep(t, states: states, stateGradients: states, hiddenGradient: hiddenGradient,
                                relu: nonlinearity == .relu, outputGradient: core.outputGradient(dy, step: t).map { $0 + first * core.outputStride },
                                outputStride: core.outputStride, batch: count, steps: steps, hiddenSize: h)
                if t > 0 { core.backpropagateHidden(step: t, states, into: hiddenGradient, accumulate: false, batch: count) }
            }
        }
        core.accumulateGradients(inputGradients: states.pointer, recurrentGradients: states.pointer,
                                 hidden: hidden.pointer, dx: dx, batch: batch)
    }
}
