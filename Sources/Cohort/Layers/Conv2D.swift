/// A 2-d convolution (PyTorch's `nn.Conv2d`, square kernel) lowered to GEMM through im2col.
///
/// Weight `[out, in, K, K]`, bias `[out]`. Forward unfolds each image into a column matrix and
/// multiplies it by the weight viewed as `[out, in*K*K]`. Backward unfolds the image again rather
/// than keep every image's columns: one image's columns stay in the core's L2 cache between the
/// unfolding and the product, where a whole batch's (38 MB for a 32x32x32 input of 32 images)
/// went out to memory and back (`cohort bench resnetish` on one core, batch 32: 116.4 -> 112.8 ms
/// per step).
public final class Conv2D<Element: Scalar>: Layer {
    public let kind = "conv2d"
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let geometry: WindowGeometry
    public let outChannels: Int
    public let hasBias: Bool
    let initializer: LayerInit

    private var weight: UnsafeMutablePointer<Element>!
    private var weightGradient: UnsafeMutablePointer<Element>!
    private var bias: UnsafeMutablePointer<Element>?
    private var biasGradient: UnsafeMutablePointer<Element>?
    /// im2col of one image: `[in*K*K, OH*OW]`.
    private var columns = Buffer<Element>(count: 0)
    /// Gradient of one image's columns: `[in*K*K, OH*OW]`.
    private var columnGradient = Buffer<Element>(count: 0)

    public init(input: [Int], outChannels: Int, kernel: Int, stride: Int, padding: Int, bias: Bool,
                initializer: LayerInit, index: LayerPlace) throws {
        guard input.count == 3 else {
            throw layerError(index, "conv2d", "expects an input [C, H, W], got \(describe(input))")
        }
        let g = WindowGeometry(channels: input[0], height: input[1], width: input[2],
                               kernel: kernel, stride: stride, padding: padding)
        guard g.outHeight >= 1, g.outWidth >= 1 else {
            throw layerError(index, "conv2d", "kernel_size \(kernel) with padding \(padding) is larger than its input \(describe(input))")
        }
        inputShape = input
        geometry = g
        self.outChannels = outChannels
        outputShape = [outChannels, g.outHeight, g.outWidth]
        hasBias = bias
        self.initializer = initializer
    }

    public var parameterShapes: [ParameterShape] {
        let w = ParameterShape("weight", [outChannels, geometry.channels, geometry.kernel, geometry.kernel])
        return hasBias ? [w, ParameterShape("bias", [outChannels])] : [w]
    }

    public func bind(parameters: UnsafeMutablePointer<Element>, gradients: UnsafeMutablePointer<Element>) {
        weight = parameters
        weightGradient = gradients
        if hasBias {
            bias = parameters + outChannels * geometry.patchSize
            biasGradient = gradients + outChannels * geometry.patchSize
        }
    }

    public func initialize(seed: UInt64, layerIndex: Int) {
        initializer.apply(weight: weight, shape: parameterShapes[0].shape, bias: bias, seed: seed, layerIndex: layerIndex)
    }

    public func reserve(maxBatch: Int) {
        let perImage = geometry.patchSize * geometry.outHeight * geometry.outWidth
        columns = Buffer(count: perImage)
        columnGradient = Buffer(count: perImage)
    }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        let spatial = geometry.outHeight * geometry.outWidth
        let patch = geometry.patchSize
        let cols = columns.pointer
        for n in 0..<batch {
            im2col(x + n * geometry.inputSize, cols, geometry)
            let out = y + n * outChannels * spatial
            Element.gemm(transA: false, transB: false, m: outChannels, n: spatial, k: patch,
                         alpha: 1, a: weight, lda: patch, b: cols, ldb: spatial, beta: 0, c: out, ldc: spatial)
            if let bias { addChannelBias(out, bias, channels: outChannels, spatial: spatial) }
        }
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        let spatial = geometry.outHeight * geometry.outWidth
        let patch = geometry.patchSize
        let cols = columns.pointer
        for n in 0..<batch {
            im2col(x + n * geometry.inputSize, cols, geometry)
            let dOut = dy + n * outChannels * spatial
            // dW[out, patch] += dY[out, spatial] * cols[patch, spatial]^T
            Element.gemm(transA: false, transB: true, m: outChannels, n: patch, k: spatial,
                         alpha: 1, a: dOut, lda: spatial, b: cols, ldb: spatial, beta: 1, c: weightGradient, ldc: patch)
            if let biasGradient { accumulateChannelSums(dOut, biasGradient, channels: outChannels, spatial: spatial) }
            if let dx {
                // dcols[patch, spatial] = W[out, patch]^T * dY[out, spatial]
                Element.gemm(transA: true, transB: false, m: patch, n: spatial, k: outChannels,
                             alpha: 1, a: weight, lda: patch, b: dOut, ldb: spatial, beta: 0,
                             c: columnGradient.pointer, ldc: spatial)
                col2im(columnGradient.pointer, dx + n * geometry.inputSize, geometry)
            }
        }
    }
}

/// y[c, s] += bias[c]. y: `[C, S]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func addChannelBias<T: Scalar>(_ y: UnsafeMutablePointer<T>, _ bias: UnsafePointer<T>, channels: Int, spatial: Int) {
    for c in 0..<channels {
        let b = bias[c]
        let row = y + c * spatial
        for s in 0..<spatial { row[s] += b }
    }
}

/// sums[c] += sum over s of dy[c, s]. dy: `[C, S]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func accumulateChannelSums<T: Scalar>(_ dy: UnsafePointer<T>, _ sums: UnsafeMutablePointer<T>, channels: Int, spatial: Int) {
    for c in 0..<channels { sums[c] += sum(dy + c * spatial, count: spatial) }
}
