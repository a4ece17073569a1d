/// A gated recurrent unit layer (Cho et al. 2014; PyTorch's `nn.GRU` with `batch_first=True`, one
/// layer, one direction).
///
/// The reset gate r decides how much of the previous state the candidate n sees, the update gate
/// z how much of the previous state is kept: n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
/// h_t = (1 - z) n + z h_{t-1}. Two gates instead of the LSTM's three, and no separate cell state.
/// Gates in PyTorch's order r, z, n. x: `[N, T, F]`; y: `[N, H]` (h at the last step) or `[N, T, H]`.
///
/// ### See Also
/// `LSTM`, `RNN`, `RecurrentCore` (the tensors and products they share), `gruForwardStep`.
public final class GRU<Element: Scalar>: Layer {
    public let kind = "gru"
    public let inputShape: [Int]
    public var outputShape: [Int] { core.outputShape }
    private var core: RecurrentCore<Element>

    /// W_ih x_t of every step, then the activated r, z, n: `[N, T, 3H]`. The backward replaces each
    /// row with the gradient of the input product, once its step has read it.
    private var gates = Buffer<Element>(count: 0)
    /// W_hh h_{t-1} of every step, its n part then replaced by W_hn h_{t-1} + b_hn: `[N, T, 3H]`.
    /// The backward replaces each row with the gradient of the recurrent product (it differs from
    /// the input's in the n part).
    private var recurrent = Buffer<Element>(count: 0)
    /// Rows [h_{t-1}, 1, x_t] of every step (`RecurrentCore.hiddenStride`): `[N, T, S]`.
    private var hidden = Buffer<Element>(count: 0)
    /// dL/dh carried from one step back to the one before: `[N, H]`.
    private var hiddenGradient = Buffer<Element>(count: 0)

    public init(input: [Int], hiddenSize: Int, returnSequences: Bool, bias: Bool, initializer: LayerInit, index: LayerPlace) throws {
        core = try RecurrentCore(kind: "gru", input: input, hiddenSize: hiddenSize, gates: 3, bias: bias,
                                 returnSequences: returnSequences, initializer: initializer, index: index,
                                 separateRecurrentTerm: true)
        inputShape = input
    }

    public var parameterShapes: [ParameterShape] { core.parameterShapes }

    public func bind(parameters: UnsafeMutablePointer<Element>, gradients: UnsafeMutablePointer<Element>) {
        core.bind(parameters: parameters, gradients: gradients)
    }

    public func initialize(seed: UInt64, layerIndex: Int) { core.initialize(seed: seed, layerIndex: layerIndex) }

    public func reserve(maxBatch: Int) {
        let states = maxBatch * core.steps * core.hiddenSize
        gates = Buffer(count: 3 * states)
        recurrent = Buffer(count: 3 * states)
        hidden = Buffer(count: maxBatch * core.steps * core.hiddenStride)
        core.prepareHidden(hidden.pointer, maxBatch: maxBatch)
        hiddenGradient = Buffer(count: maxBatch * core.hiddenSize)
    }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        core.beginForward(x, hidden: hidden.pointer, batch: batch)
        core.projectInputs(x, into: gates.pointer, batch: batch)
        let (steps, h) = (core.steps, core.hiddenSize)
        core.forEachSampleShare(batch) { first, count in
            let gates = self.gates.pointer + first * steps * 3 * h, recurrent = self.recurrent.pointer + first * steps * 3 * h
            let hidden = self.hidden.pointer + first * steps * core.hiddenStride
            for t in 0..<steps {
                core.projectHidden(step: t, hidden, into: recurrent, accumulate: false, batch: count)
                gruForwardStep(t, gates: gates, recurrent: recurrent, hidden: hidden, hiddenStride: core.hiddenStride,
                               biasIH: core.biasIH, biasHH: core.biasHH,
                               output: core.output(y, step: t).map { $0 + first * core.outputStride },
                               outputStride: core.outputStride, batch: count, steps: steps, hiddenSize: h)
            }
        }
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        core.beginBackward()
        let (steps, h) = (core.steps, core.hiddenSize)
        core.forEachSampleShare(batch) { first, count in
            let gates = self.gates.pointer + first * steps * 3 * h, recurrent = self.recurrent.pointer + first * steps * 3 * h
            let hidden = self.hidden.pointer + first * steps * core.hiddenStride, hiddenGradient = self.hiddenGradient.pointer + first * h
            fillZero(hiddenGradient, count: count * h)
            for t in (0..<steps).reversed() {
                gruBackwardStep(t, gates: gates, recurrent: recurrent, hidden: hidden, hiddenStride: core.hiddenStride,
                                inputGradients: gates, recurrentGradients: recurrent, hiddenGradient: hiddenGradient,
                                outputGradient: core.outputGradient(dy, step: t).map { $0 + first * core.outputStride },
                                outputStride: core.outputStride, batch: count, steps: steps, hiddenSize: h)
                if t > 0 { core.backpropagateHidden(step: t, recurrent, into: hiddenGradient, accumulate: true, batch: count) }
            }
        }
        core.accumulateGradients(inputGradients: gates.pointer, recurrentGradients: recurrent.pointer,
                                 hidden: hidden.pointer, dx: dx, batch: batch)
    }
}
