import Foundation

/// What the recurrent layers (`LSTM`, `GRU`, `RNN`) share: their shapes, PyTorch's four tensors
/// and the matrix products that are the same for every cell.
///
/// Input `[T, F]` per sample (T time steps of F features; x: `[N, T, F]`, batch first), output the
/// last hidden state `[H]`, or every step's `[T, H]` with `returnSequences` (so recurrent layers
/// stack). The tensors are PyTorch's, G gates stacked in PyTorch's order: `weight_ih_l0`
/// `[G*H, F]`, `weight_hh_l0` `[G*H, H]`, `bias_ih_l0` and `bias_hh_l0` `[G*H]`; the initial
/// state is zero.
///
/// The hidden states are kept as `hidden[n, t] = [h_{t-1}, 1, x_t]` (`hiddenStride`), so that one
/// product does the work of three. In the forward, each step's pre-activations are one product of
/// those rows with [W_hh, b_ih + b_hh, W_ih]^T (prepared once per pass: `RepeatedOperand`): the
/// recurrent term, the biases and the input projection at once. In the backward, row (n, t) of the
/// gate gradients pairs with row (n, t) of `hidden`, and one product over all steps gives dW_hh,
/// the biases' gradients (the column of ones: column sums) and dW_ih, reading the gate gradients
/// once; then one product per step for dL/dh_{t-1} and one for dx. The GRU, whose reset gate
/// scales the recurrent term apart from the input's (`separateRecurrentTerm`), projects its inputs
/// for all steps in one product, multiplies by W_hh alone at each step, and takes two products
/// for the gradients.
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
    /// The distance between rows of the layers' `hidden` `[N, T, S]`: h_{t-1} (H values), a 1 and
    /// x_t (F values), padded to whole cache lines.
    let hiddenStride: Int
    /// Whether the step products take the recurrent term alone (the GRU) rather than with the
    /// biases and the input projection; the gradients of W_ih and W_hh then differ.
    let separateRecurrentTerm: Bool
    /// The gate gradients times `hidden`: `[G*H, S]`, twice with `separateRecurrentTerm`.
    private let parameterProducts: Buffer<Element>
    /// [W_hh, b_ih + b_hh, W_ih] `[G*H, H + 1 + F]`, what the forward's step products multiply by
    /// (unless `separateRecurrentTerm`).
    private let stepWeights: Buffer<Element>?
    /// The forward's step products: [W_hh, b, W_ih]^T `[H + 1 + F, G*H]` (W_hh^T `[H, G*H]` with
    /// `separateRecurrentTerm`); the backward's: W_hh `[G*H, H]`.
    private let forwardRecurrent: RepeatedOperand<Element>
    private let backwardRecurrent: RepeatedOperand<Element>

    init(kind: String, input: [Int], hiddenSize: Int, gates: Int, bias: Bool, returnSequences: Bool,
         initializer: LayerInit, index: LayerPlace, separateRecurrentTerm: Bool = false) throws {
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
        self.separateRecurrentTerm = separateRecurrentTerm
        // The weights' size before anything of that size is allocated here (`Model` checks the total
        // later): with their gradients, optimizer state and the two copies below, 7 of them.
        guard let weights = elementCount([gates * hiddenSize, hiddenSize + 1 + features + 16]), weights <= ConfigLoader.largestSize else {
            throw layerError(index, kind, "hidden_size \(hiddenSize) makes the weights [\(gates) x \(hiddenSize), \(hiddenSize) + \(features)] larger than \(ConfigLoader.largestSize) parameters")
        }
        let bytes = Double(weights) * 7 * Double(MemoryLayout<Element>.size), budget = MemoryBudget.current()
        guard budget.holds(bytes) else {
            throw layerError(index, kind, "hidden_size \(hiddenSize): its weights need about \(memorySize(bytes)) with their gradients, optimizer state and working copies, more than \(budget.allowance)")
        }
        let rows = gates * hiddenSize, stepInputs = hiddenSize + 1 + features
        hiddenStride = (stepInputs + 15) / 16 * 16
        parameterProducts = Buffer(count: (separateRecurrentTerm ? 2 : 1) * rows * hiddenStride)
        stepWeights = separateRecurrentTerm ? nil : Buffer(count: rows * stepInputs)
        let panels = try RecurrentProductKernel.automatic() == .panels
        forwardRecurrent = RepeatedOperand(k: separateRecurrentTerm ? hiddenSize : stepInputs, n: rows, transposed: true, panels: panels)
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
    /// whole tiles of the recurrent product's rows. Samples never meet between the passes over all
    /// steps (`beginForward`, `projectInputs`, `accumulateGradients`), so each thread can run its
    /// share of them through every step: one fork-join per pass, and each value computed as on one
    /// thread.
    func forEachSampleShare(_ batch: Int, _ body: (_ first: Int, _ count: Int) -> Void) {
        forEachShare(of: batch, values: batch * steps * gates * hiddenSize, granule: 8) { samples in
            body(samples.lowerBound, samples.count)
        }
    }

    /// gates[N*T, G*H] = x[N*T, F] W_ih^T: the input projection of every step in one product (for
    /// `separateRecurrentTerm`; the others' step products include it).
    func projectInputs(_ x: UnsafePointer<Element>, into gates: UnsafeMutablePointer<Element>, batch: Int) {
        let rows = self.gates * hiddenSize
        Element.gemm(transA: false, transB: true, m: batch * steps, n: rows, k: features,
                     alpha: 1, a: x, lda: features, b: weightIH, ldb: features, beta: 0, c: gates, ldc: rows)
    }

    /// Writes the 1 of every row of a layer's new `hidden` buffer `[maxBatch, T, S]` (the steps
    /// write only h, `beginForward` only x).
    func prepareHidden(_ hidden: UnsafeMutablePointer<Element>, maxBatch: Int) {
        for row in 0..<maxBatch * steps { hidden[row * hiddenStride + hiddenSize] = 1 }
    }

    /// Call before a forward pass's `projectHidden`: writes x_t into the rows of `hidden` `[N, T, S]`
    /// and prepares the weights as they are for the whole pass.
    func beginForward(_ x: UnsafePointer<Element>, hidden: UnsafeMutablePointer<Element>, batch: Int) {
        let samples = batch * steps, h = hiddenSize
        forEachShare(of: samples, values: samples * features) { range in
            copyColumns(x, sourceStride: features, into: hidden + h + 1, targetStride: hiddenStride, columns: features,
                        rows: range, accumulate: false)
        }
        guard let stepWeights else { return forwardRecurrent.prepare(weightHH) }
        let rows = gates * h, width = h + 1 + features, weights = stepWeights.pointer
        copyColumns(weightHH, sourceStride: h, into: weights, targetStride: width, columns: h, rows: 0..<rows, accumulate: false)
        copyColumns(biasIH, sourceStride: 1, into: weights + h, targetStride: width, columns: 1, rows: 0..<rows, accumulate: false)
        copyColumns(biasHH, sourceStride: 1, into: weights + h, targetStride: width, columns: 1, rows: 0..<rows, accumulate: true)
        copyColumns(weightIH, sourceStride: features, into: weights + h + 1, targetStride: width, columns: features,
                    rows: 0..<rows, accumulate: false)
        forwardRecurrent.prepare(weights)
    }

    /// Call before a backward pass's `backpropagateHidden`.
    func beginBackward() { backwardRecurrent.prepare(weightHH) }

    /// products[:, t] = [h_{t-1}, 1, x_t] [W_hh, b_ih + b_hh, W_ih]^T, or h_{t-1} W_hh^T with
    /// `separateRecurrentTerm` (+ products[:, t] when accumulating): step t's product.
    /// hidden: `[N, T, S]`; products: `[N, T, G*H]`.
    ///
    /// h_{-1} is zero: at t = 0 its terms are left out (of every element a chain of fused
    /// multiply-adds that they leave at +0, so bitwise the same), and the GRU's product is zero.
    func projectHidden(step t: Int, _ hidden: UnsafePointer<Element>, into products: UnsafeMutablePointer<Element>,
                       accumulate: Bool, batch: Int) {
        let rows = gates * hiddenSize, ldc = steps * rows, out = products + t * rows
        if t == 0 && separateRecurrentTerm {
            if !accumulate { for n in 0..<batch { (out + n * ldc).update(repeating: 0, count: rows) } }
            return
        }
        forwardRecurrent.multiply(m: batch, hidden + t * hiddenStride, lda: steps * hiddenStride, into: out, ldc: ldc,
                                  accumulate: accumulate, fromRow: t == 0 ? hiddenSize : 0)
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
    /// (the same buffer unless `separateRecurrentTerm`); hidden: `[N, T, S]`, [h_{t-1}, 1, x_t] at step t.
    func accumulateGradients(inputGradients: UnsafePointer<Element>,
                             recurrentGradients: UnsafePointer<Element>, hidden: UnsafePointer<Element>,
                             dx: UnsafeMutablePointer<Element>?, batch: Int) {
        let rows = gates * hiddenSize, samples = batch * steps, h = hiddenSize, stride = hiddenStride
        // [dW_hh | db | dW_ih] = dM[N*T, G*H]^T [h | 1 | x][N*T, H + 1 + F] (dM = dA: db is both
        // biases' gradient); for the GRU, [dW_hh | db_hh] = dM^T [h | 1], and [db_ih | dW_ih] =
        // dA^T [1 | x] into a second block, at the columns where they fall in the first.
        let hhProducts = parameterProducts.pointer
        Element.gemm(transA: true, transB: false, m: rows, n: separateRecurrentTerm ? h + 1 : h + 1 + features, k: samples,
                     alpha: 1, a: recurrentGradients, lda: rows, b: hidden, ldb: stride, beta: 0, c: hhProducts, ldc: stride)
        let ihProducts = separateRecurrentTerm ? hhProducts + rows * stride : hhProducts
        if separateRecurrentTerm {
            Element.gemm(transA: true, transB: false, m: rows, n: 1 + features, k: samples,
                         alpha: 1, a: inputGradients, lda: rows, b: hidden + h, ldb: stride, beta: 0, c: ihProducts + h, ldc: stride)
        }
        forEachShare(of: rows, values: rows * (h + 1 + features)) { range in
            copyColumns(hhProducts, sourceStride: stride, into: weightHHGradient, targetStride: h, columns: h, rows: range, accumulate: true)
            copyColumns(ihProducts + h + 1, sourceStride: stride, into: weightIHGradient, targetStride: features, columns: features,
                        rows: range, accumulate: true)
            if let biasIHGradient, let biasHHGradient {
                copyColumns(hhProducts + h, sourceStride: stride, into: biasHHGradient, targetStride: 1, columns: 1,
                            rows: range, accumulate: true)
                copyColumns(ihProducts + h, sourceStride: stride, into: biasIHGradient, targetStride: 1, columns: 1,
                            rows: range, accumulate: true)
            }
        }
        if let dx {
            // dx[N*T, F] = dA[N*T, G*H] W_ih[G*H, F]
            Element.gemm(transA: false, transB: false, m: samples, n: features, k: rows,
                         alpha: 1, a: inputGradients, lda: rows, b: weightIH, ldb: features, beta: 0, c: dx, ldc: features)
        }
    }
}
