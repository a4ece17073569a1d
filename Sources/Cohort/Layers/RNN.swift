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

    /// h_t of every step: `[N, T, H]`.
    private var states = Buffer<Element>(count: 0)
    private var stateGradients = Buffer<Element>(count: 0)
    /// h_{t-1} at step t: `[N, T, H]`.
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
        stateGradients = Buffer(count: count)
        hidden = Buffer(count: count)
        hiddenGradient = Buffer(count: maxBatch * core.hiddenSize)
    }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        core.beginForward()
        core.projectInputs(x, into: states.pointer, batch: batch)
        for t in 0..<core.steps {
            if t > 0 { core.projectHidden(step: t, hidden.pointer, into: states.pointer, accumulate: true, batch: batch) }
            rnnForwardStep(t, states: states.pointer, hidden: hidden.pointer, biasIH: core.biasIH, biasHH: core.biasHH,
                           relu: nonlinearity == .relu, output: core.output(y, step: t), outputStride: core.outputStride,
                           batch: batch, steps: core.steps, hiddenSize: core.hiddenSize)
        }
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        core.beginBackward()
        fillZero(hiddenGradient.pointer, count: batch * core.hiddenSize)
        for t in (0..<core.steps).reversed() {
            rnnBackwardStep(t, states: states.pointer, stateGradients: stateGradients.pointer, hiddenGradient: hiddenGradient.pointer,
                            relu: nonlinearity == .relu, outputGradient: core.outputGradient(dy, step: t),
                            outputStride: core.outputStride, batch: batch, steps: core.steps, hiddenSize: core.hiddenSize)
            if t > 0 { core.backpropagateHidden(step: t, stateGradients.pointer, into: hiddenGradient.pointer, accumulate: false, batch: batch) }
        }
        core.accumulateGradients(x: x, inputGradients: stateGradients.pointer, recurrentGradients: stateGradients.pointer,
                                 hidden: hidden.pointer, dx: dx, batch: batch)
    }
}
