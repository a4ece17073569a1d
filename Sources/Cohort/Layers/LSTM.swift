/// A long short-term memory layer (Hochreiter and Schmidhuber 1997; PyTorch's `nn.LSTM` with
/// `batch_first=True`, one layer, one direction).
///
/// At each step the input, forget and output gates (sigmoids: switches between 0 and 1) decide
/// what enters the cell state, what stays in it and what leaves it; the candidate g (tanh, a value
/// centred on zero) is what may enter: c_t = f c_{t-1} + i g, h_t = o tanh(c_t). Gates in
/// PyTorch's order i, f, g, o. x: `[N, T, F]`; y: `[N, H]` (h at the last step) or `[N, T, H]`.
///
/// ### See Also
/// `GRU`, `RNN`, `RecurrentCore` (the tensors and products they share), `lstmForwardStep`.
public final class LSTM<Element: Scalar>: Layer {
    public let kind = "lstm"
    public let inputShape: [Int]
    public var outputShape: [Int] { core.outputShape }
    private var core: RecurrentCore<Element>

    /// Activated gates i, f, g, o of every step: `[N, T, 4H]`; the backward replaces each row with
    /// its gradients (da), once its step has read it, so that it reads and writes the same lines.
    private var gates = Buffer<Element>(count: 0)
    /// c_{t-1} at step t, and tanh(c_t): `[N, T, H]`.
    private var cells = Buffer<Element>(count: 0)
    /// Rows [h_{t-1}, 1, x_t] of every step (`RecurrentCore.hiddenStride`): `[N, T, S]`.
    private var hidden = Buffer<Element>(count: 0)
    private var cellTanh = Buffer<Element>(count: 0)
    /// dL/dh and dL/dc carried from one step back to the one before: `[N, H]`.
    private var hiddenGradient = Buffer<Element>(count: 0)
    private var cellGradient = Buffer<Element>(count: 0)

    public init(input: [Int], hiddenSize: Int, returnSequences: Bool, bias: Bool, initializer: LayerInit, index: LayerPlace) throws {
        core = try RecurrentCore(kind: "lstm", input: input, hiddenSize: hiddenSize, gates: 4, bias: bias,
                                 returnSequences: returnSequences, initializer: initializer, index: index)
        inputShape = input
    }

    public var parameterShapes: [ParameterShape] { core.parameterShapes }

    public func bind(parameters: UnsafeMutablePointer<Element>, gradients: UnsafeMutablePointer<Element>) {
        core.bind(parameters: parameters, gradients: gradients)
    }

    public func initialize(seed: UInt64, layerIndex: Int) { core.initialize(seed: seed, layerIndex: layerIndex) }

    public func reserve(maxBatch: Int) {
        let states = maxBatch * core.steps * core.hiddenSize
        gates = Buffer(count: 4 * states)
        cells = Buffer(count: states)
        hidden = Buffer(count: maxBatch * core.steps * core.hiddenStride)
        core.prepareHidden(hidden.pointer, maxBatch: maxBatch)
        cellTanh = Buffer(count: states)
        hiddenGradient = Buffer(count: maxBatch * core.hiddenSize)
        cellGradient = Buffer(count: maxBatch * core.hiddenSize)
    }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        core.beginForward(x, hidden: hidden.pointer, batch: batch)
        let (steps, h) = (core.steps, core.hiddenSize)
        core.forEachSampleShare(batch) { first, count in
            let gates = self.gates.pointer + first * steps * 4 * h
            let cells = self.cells.pointer + first * steps * h, hidden = self.hidden.pointer + first * steps * core.hiddenStride
            let cellTanh = self.cellTanh.pointer + first * steps * h
            for t in 0..<steps {
                core.projectHidden(step: t, hidden, into: gates, accumulate: false, batch: count)
                lstmForwardStep(t, gates: gates, cells: cells, cellTanh: cellTanh, hidden: hidden, hiddenStride: core.hiddenStride,
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
            let gates = self.gates.pointer + first * steps * 4 * h
            let cells = self.cells.pointer + first * steps * h, cellTanh = self.cellTanh.pointer + first * steps * h
            let hiddenGradient = self.hiddenGradient.pointer + first * h, cellGradient = self.cellGradient.pointer + first * h
            fillZero(hiddenGradient, count: count * h)
            fillZero(cellGradient, count: count * h)
            for t in (0..<steps).reversed() {
                lstmBackwardStep(t, gates: gates, cells: cells, cellTanh: cellTanh, gateGradients: gates,
                                 hiddenGradient: hiddenGradient, cellGradient: cellGradient,
                                 outputGradient: core.outputGradient(dy, step: t).map { $0 + first * core.outputStride },
                                 outputStride: core.outputStride, batch: count, steps: steps, hiddenSize: h)
                if t > 0 { core.backpropagateHidden(step: t, gates, into: hiddenGradient, accumulate: false, batch: count) }
            }
        }
        core.accumulateGradients(inputGradients: gates.pointer, recurrentGradients: gates.pointer,
                                 hidden: hidden.pointer, dx: dx, batch: batch)
    }
}
