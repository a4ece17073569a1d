/// What the recurrent layers (`LSTM`, `GRU`, `RNN`) share: their shapes, PyTorch's four tensors
/// and the matrix products that are the same for every cell.
///
/// Input `[T, F]` per sample (T time steps of F features; x: `[N, T, F]`, batch first), output the
/// last hidden state `[H]`, or every step's `[T, H]` with `returnSequences` (so recurrent layers
/// stack). The tensors are PyTorch's, G gates stacked in PyTorch's order: `weight_ih_l0`
/// `[G*H, F]`, `weight_hh_l0` `[G*H, H]`, `bias_ih_l0` and `bias_hh_l0` `[G*H]`; the initial
/// state is zero.
///
/// Backpropagation through time uses one GEMM for the input projection of all steps, one per
/// step for the recurrent product (W_hh prepared once per pass: `RepeatedOperand`), and one each
/// for dW_ih, dW_hh and dx over all steps: the
/// hidden states are kept as `hidden[n, t] = h_{t-1}`, so that row (n, t) of the gate gradients
/// pairs with row (n, t) of `hidden` as it pairs with row (n, t) of x.
///
/// ### See Also
/// `LSTM`, `GRU`, `RNN`, and their step kernels in `Kernels/RecurrentKernels.swift`.
struct RecurrentCore<Element: Scalar> {
    let steps: Int
    let features: Int
    let hiddenSize: Int
    /// G: 4 for the LSTM, 3 for the GRU, 1 for the RNN.
    let gates: Int
    let hasBias: Bool
    let returnSequences: Bool
    let initializer: LayerInit

    private(set) var weightIH: UnsafeMutablePointer<Element>!
    private(set) var weightHH: UnsafeMutablePointer<Element>!
    private var weightIHGradient: UnsafeMutablePointer<Element>!
    private var weightHHGradient: UnsafeMutablePointer<Element>!
    /// The biases, or zeros without them, so that the step kernels always add both.
    private(set) var biasIH: UnsafePointer<Element>!
    private(set) var biasHH: UnsafePointer<Element>!
    /// bias_ih_l0 followed by bias_hh_l0, when the layer has them.
    private var biases: UnsafeMutablePointer<Element>?
    private var biasIHGradient: UnsafeMutablePointer<Element>?
    private var biasHHGradient: UnsafeMutablePointer<Element>?
    private var zeroBias: Buffer<Element>?
    /// The column sums of the gate gradients `[G*H]`, when both biases take the same ones.
    private var sharedBiasGradient: Buffer<Element>?
    /// W_hh^T `[H, G*H]` for the forward's products, W_hh `[G*H, H]` for the backward's.
    private let forwardRecurrent: RepeatedOperand<Element>
    private let backwardRecurrent: RepeatedOperand<Element>

    init(kind: String, input: [Int], hiddenSize: Int, gates: Int, bias: Bool, returnSequences: Bool,
         initializer: LayerInit, index: LayerPlace) throws {
        guard input.count == 2 else {
            var message = "expects an input [T, F] (time steps, features), got \(describe(input))"
            if index == 0 && input.count == 3 && input[0] == 1 {
                message += "; give model.input as \(describe(Array(input.dropFirst()))) (rows as time steps)"
            }
            throw layerError(index, kind, message)
        }
        steps = input[0]
        features = input[1]
        self.hiddenSize = hiddenSize
        self.gates = gates
        hasBias = bias
        self.returnSequences = returnSequences
        self.initializer = initializer
        sharedBiasGradient = bias ? Buffer(count: gates * hiddenSize) : nil
        let panels = try RecurrentProductKernel.automatic() == .panels
        forwardRecurrent = RepeatedOperand(k: hiddenSize, n: gates * hiddenSize, transposed: true, panels: panels)
        backwardRecurrent = RepeatedOperand(k: gates * hiddenSize, n: hiddenSize, transposed: false, panels: panels)
    }

    var outputShape: [Int] { returnSequences ? [steps, hiddenSize] : [hiddenSize] }

    var parameterShapes: [ParameterShape] {
        let rows = gates * hiddenSize
        let weights = [ParameterShape("weight_ih_l0", [rows, features]), ParameterShape("weight_hh_l0", [rows, hiddenSize])]
        return hasBias ? weights + [ParameterShape("bias_ih_l0", [rows]), ParameterShape("bias_hh_l0", [rows])] : weights
    }

    mutating func bind(parameters: UnsafeMutablePointer<Element>, gradients: UnsafeMutablePointer<Element>) {
        let rows = gates * hiddenSize
        weightIH = parameters
        weightIHGradient = gradients
        weightHH = parameters + rows * features
        weightHHGradient = gradients + rows * features
        if hasBias {
            let offset = rows * (features + hiddenSize)
            biases = parameters + offset
            biasIH = UnsafePointer(parameters + offset)
            biasHH = UnsafePointer(parameters + offset + rows)
            biasIHGradient = gradients + offset
            biasHHGradient = gradients + offset + rows
        } else {
            let zeros = zeroBias ?? Buffer(count: rows)
            zeroBias = zeros
            biasIH = UnsafePointer(zeros.pointer)
            biasHH = UnsafePointer(zeros.pointer)
        }
    }

    /// Without `init:`, PyTorch's default for recurrent layers: all four tensors U(-1/sqrt(H), 1/sqrt(H)).
    /// With it, the initializer fills each weight (as `torch.nn.init` fills a tensor) and the
    /// biases start at zero unless `bias_init` says otherwise.
    func initialize(seed: UInt64, layerIndex: Int) {
        let rows = gates * hiddenSize
        func random(_ tensor: UInt64) -> CounterRandom { CounterRandom(seed, 0x1417, UInt64(layerIndex), tensor) }
        Cohort.initialize(weightIH, shape: [rows, features], with: initializer.weight, defaultFanIn: hiddenSize, random: random(0))
        Cohort.initialize(weightHH, shape: [rows, hiddenSize], with: initializer.weight, defaultFanIn: hiddenSize, random: random(1))
        guard let biases else { return }
        Cohort.initialize(biases, shape: [rows], with: initializer.biasInitializer, defaultFanIn: hiddenSize, random: random(2))
        Cohort.initialize(biases + rows, shape: [rows], with: initializer.biasInitializer, defaultFanIn: hiddenSize, random: random(3))
    }

    /// Where step t's output goes: every step's row of y `[N, T, H]` with `returnSequences`, else
    /// only the last step's, into y `[N, H]`.
    func output(_ y: UnsafeMutablePointer<Element>, step t: Int) -> UnsafeMutablePointer<Element>? {
        returnSequences ? y + t * hiddenSize : (t == steps - 1 ? y : nil)
    }

    /// The gradient of step t's output, from dy laid out as y.
    func outputGradient(_ dy: UnsafePointer<Element>, step t: Int) -> UnsafePointer<Element>? {
        returnSequences ? dy + t * hiddenSize : (t == steps - 1 ? dy : nil)
    }

    /// The distance between the output rows of two samples.
    var outputStride: Int { returnSequences ? steps * hiddenSize : hiddenSize }

    /// Runs `body(first, count)` over the batch's samples, shared among a `ThreadTeam`'s threads in
    /// whole tiles of the recurrent product's rows. Samples never meet between the products over
    /// all steps (`projectInputs`, `accumulateGradients`), so each thread can run its share of them
    /// through every step: one fork-join per pass, and each value computed as on one thread.
    func forEachSampleShare(_ batch: Int, _ body: (_ first: Int, _ count: Int) -> Void) {
        forEachShare(of: batch, values: batch * steps * gates * hiddenSize, granule: 8) { samples in
            body(samples.lowerBound, samples.count)
        }
    }

    /// gates[N*T, G*H] = x[N*T, F] W_ih^T: the input projection of every step in one product.
    func projectInputs(_ x: UnsafePointer<Element>, into gates: UnsafeMutablePointer<Element>, batch: Int) {
        let rows = self.gates * hiddenSize
        Element.gemm(transA: false, transB: true, m: batch * steps, n: rows, k: features,
                     alpha: 1, a: x, lda: features, b: weightIH, ldb: features, beta: 0, c: gates, ldc: rows)
    }

    /// Call before a forward pass's `projectHidden`: W_hh as it is for the whole pass.
    func beginForward() { forwardRecurrent.prepare(weightHH) }

    /// Call before a backward pass's `backpropagateHidden`.
    func beginBackward() { backwardRecurrent.prepare(weightHH) }

    /// products[:, t] = hidden[:, t] W_hh^T (+ products[:, t] when accumulating): step t's
    /// recurrent product. hidden: `[N, T, H]`; products: `[N, T, G*H]`.
    func projectHidden(step t: Int, _ hidden: UnsafePointer<Element>, into products: UnsafeMutablePointer<Element>,
                       accumulate: Bool, batch: Int) {
        forwardRecurrent.multiply(m: batch, hidden + t * hiddenSize, lda: steps * hiddenSize,
                                  into: products + t * gates * hiddenSize, ldc: steps * gates * hiddenSize, accumulate: accumulate)
    }

    /// hiddenGradient[N, H] = d[:, t] W_hh (+ hiddenGradient when accumulating), for d
    /// `[N, T, G*H]`, the gradient of step t's recurrent product: dL/dh_{t-1} through W_hh.
    func backpropagateHidden(step t: Int, _ d: UnsafePointer<Element>, into hiddenGradient: UnsafeMutablePointer<Element>,
                             accumulate: Bool, batch: Int) {
        backwardRecurrent.multiply(m: batch, d + t * gates * hiddenSize, lda: steps * gates * hiddenSize,
                                   into: hiddenGradient, ldc: hiddenSize, accumulate: accumulate)
    }

    /// Accumulates the gradients of the four tensors over all steps and writes dx (when asked for).
    ///
    /// inputGradients `[N, T, G*H]`: dL/d(W_ih x_t + b_ih); recurrentGradients: dL/d(W_hh h_{t-1} + b_hh)
    /// (the same buffer for the LSTM and RNN); hidden: `[N, T, H]`, h_{t-1} at step t.
    func accumulateGradients(x: UnsafePointer<Element>, inputGradients: UnsafePointer<Element>,
                             recurrentGradients: UnsafePointer<Element>, hidden: UnsafePointer<Element>,
                             dx: UnsafeMutablePointer<Element>?, batch: Int) {
        let rows = gates * hiddenSize, samples = batch * steps
        // dW_ih[G*H, F] += dA[N*T, G*H]^T x[N*T, F]
        Element.gemm(transA: true, transB: false, m: rows, n: features, k: samples,
                     alpha: 1, a: inputGradients, lda: rows, b: x, ldb: features, beta: 1, c: weightIHGradient, ldc: features)
        // dW_hh[G*H, H] += dM[N*T, G*H]^T hidden[N*T, H]
        Element.gemm(transA: true, transB: false, m: rows, n: hiddenSize, k: samples,
                     alpha: 1, a: recurrentGradients, lda: rows, b: hidden, ldb: hiddenSize, beta: 1,
                     c: weightHHGradient, ldc: hiddenSize)
        if let biasIHGradient, let biasHHGradient {
            if inputGradients == recurrentGradients, let shared = sharedBiasGradient?.pointer {
                // The LSTM and RNN: one pass of column sums for both (bitwise the same as two
                // passes onto the zeroed gradients: 0 + the first row is exact).
                fillZero(shared, count: rows)
                accumulateColumnSums(inputGradients, shared, rows: samples, columns: rows)
                for k in 0..<rows { biasIHGradient[k] += shared[k]; biasHHGradient[k] += shared[k] }
            } else {
                accumulateColumnSums(inputGradients, biasIHGradient, rows: samples, columns: rows)
                accumulateColumnSums(recurrentGradients, biasHHGradient, rows: samples, columns: rows)
            }
        }
        if let dx {
            // dx[N*T, F] = dA[N*T, G*H] W_ih[G*H, F]
            Element.gemm(transA: false, transB: false, m: samples, n: features, k: rows,
                         alpha: 1, a: inputGradients, lda: rows, b: weightIH, ldb: features, beta: 0, c: dx, ldc: features)
        }
    }
}
