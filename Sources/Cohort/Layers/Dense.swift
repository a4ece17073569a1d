/// A fully connected layer (PyTorch's `nn.Linear`): y = x W^T + b.
///
/// Weight `[out, in]`, bias `[out]`; x: `[N, in]`, y: `[N, out]`.
public final class Dense<Element: Scalar>: Layer {
    public let kind = "dense"
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let inFeatures: Int
    public let outFeatures: Int
    public let hasBias: Bool
    let initializer: LayerInit

    private var weight: UnsafeMutablePointer<Element>!
    private var weightGradient: UnsafeMutablePointer<Element>!
    private var bias: UnsafeMutablePointer<Element>?
    private var biasGradient: UnsafeMutablePointer<Element>?

    public init(input: [Int], outFeatures: Int, bias: Bool, initializer: LayerInit, index: LayerPlace) throws {
        guard input.count == 1 else {
            throw layerError(index, "dense", "expects a flat input [features], got \(describe(input)); add `flatten: {}` before it")
        }
        inputShape = input
        inFeatures = input[0]
        self.outFeatures = outFeatures
        outputShape = [outFeatures]
        hasBias = bias
        self.initializer = initializer
    }

    public var parameterShapes: [ParameterShape] {
        let w = ParameterShape("weight", [outFeatures, inFeatures])
        return hasBias ? [w, ParameterShape("bias", [outFeatures])] : [w]
    }

    public func bind(parameters: UnsafeMutablePointer<Element>, gradients: UnsafeMutablePointer<Element>) {
        weight = parameters
        weightGradient = gradients
        if hasBias {
            bias = parameters + outFeatures * inFeatures
            biasGradient = gradients + outFeatures * inFeatures
        }
    }

    public func initialize(seed: UInt64, layerIndex: Int) {
        initializer.apply(weight: weight, shape: [outFeatures, inFeatures], bias: bias, seed: seed, layerIndex: layerIndex)
    }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        Element.gemm(transA: false, transB: true, m: batch, n: outFeatures, k: inFeatures,
                     alpha: 1, a: x, lda: inFeatures, b: weight, ldb: inFeatures, beta: 0, c: y, ldc: outFeatures)
        if let bias { addRowBias(y, bias, rows: batch, columns: outFeatures) }
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        // dW[out, in] += dY[N, out]^T * x[N, in]
        Element.gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: batch,
                     alpha: 1, a: dy, lda: outFeatures, b: x, ldb: inFeatures, beta: 1, c: weightGradient, ldc: inFeatures)
        if let biasGradient { accumulateColumnSums(dy, biasGradient, rows: batch, columns: outFeatures) }
        if let dx {
            // dx[N, in] = dY[N, out] * W[out, in]
            Element.gemm(transA: false, transB: false, m: batch, n: inFeatures, k: outFeatures,
                         alpha: 1, a: dy, lda: outFeatures, b: weight, ldb: inFeatures, beta: 0, c: dx, ldc: inFeatures)
        }
    }
}

/// y[r, c] += bias[c]. y: `[R, C]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func addRowBias<T: Scalar>(_ y: UnsafeMutablePointer<T>, _ bias: UnsafePointer<T>, rows: Int, columns: Int) {
    for r in 0..<rows {
        let row = y + r * columns
        for c in 0..<columns { row[c] += bias[c] }
    }
}

/// sums[c] += sum over r of dy[r, c]. dy: `[R, C]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func accumulateColumnSums<T: Scalar>(_ dy: UnsafePointer<T>, _ sums: UnsafeMutablePointer<T>, rows: Int, columns: Int) {
    for r in 0..<rows {
        let row = dy + r * columns
        for c in 0..<columns { sums[c] += row[c] }
    }
}
