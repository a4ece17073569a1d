import Foundation

/// A 2-d convolution (PyTorch's `nn.Conv2d`, square kernel) lowered to GEMM, through im2col or,
/// for 3x3 kernels of stride 1 between enough channels, Winograd's F(2x2, 3x3) (`Winograd.swift`).
///
/// Weight `[out, in, K, K]`, bias `[out]`. im2col: forward unfolds each image into a column matrix
/// and multiplies it by the weight viewed as `[out, in*K*K]`. Backward unfolds the image again rather
/// than keep every image's columns: one image's columns stay in the core's L2 cache between the
/// unfolding and the product, where a whole batch's (38 MB for a 32x32x32 input of 32 images)
/// went out to memory and back (`cohort bench resnetish` on one core, batch 32: 116.4 -> 112.8 ms
/// per step). Winograd: 16 GEMMs over the transformed tiles of as many images as fit in L2 at once,
/// the input transformed again in backward for the same reason.
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

    public let algorithm: ConvolutionAlgorithm
    /// Set when `algorithm` is `.winograd`.
    let tiling: WinogradTiling?
    /// Whether the Winograd products may run `streamedProduct` (`WinogradProductKernel`).
    private let streamedProducts: Bool
    /// Images whose transformed tiles go through one set of 16 GEMMs.
    private var imagesPerChunk = 1
    /// Transformed filters U (of the weights of the last forward, which backward uses) and their
    /// gradient dU: `[16, out, in]` each.
    private var filters = Buffer<Element>(count: 0)
    private var filterGradient = Buffer<Element>(count: 0)
    /// Transformed input tiles V (or their gradient dV): `[16, in, tiles]`.
    private var inputTiles = Buffer<Element>(count: 0)
    /// Products M (or their gradient dM): `[16, out, tiles]`.
    private var productTiles = Buffer<Element>(count: 0)
    private var transformScratch = Buffer<Element>(count: 0)
    /// Where forward sums each output channel's values and squares, image by image as it writes
    /// them (`channelMoments`, while they are still in cache), for the batch norm after it
    /// (`BatchNorm.takeInputMoments`); nil: not summed. Set by `Sequential` around a training forward.
    var outputMoments: (sums: UnsafeMutablePointer<Double>, squares: UnsafeMutablePointer<Double>)?

    public init(input: [Int], outChannels: Int, kernel: Int, stride: Int, padding: Int, bias: Bool,
                initializer: LayerInit, index: LayerPlace, algorithm: ConvolutionAlgorithm? = nil) throws {
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
        let chosen = try algorithm ?? ConvolutionAlgorithm.automatic(for: g, outChannels: outChannels)
        guard chosen == .im2col || WinogradTiling.applies(to: g) else {
            throw layerError(index, "conv2d", "Winograd F(2x2, 3x3) needs kernel_size 3 and stride 1, got \(kernel) and \(stride)")
        }
        self.algorithm = chosen
        tiling = chosen == .winograd ? WinogradTiling(g, outChannels: outChannels) : nil
        streamedProducts = try chosen == .winograd && Element.self == Float.self && WinogradProductKernel.automatic() == .streamed
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
        if let tiling {
            let perImage = 16 * (geometry.channels + outChannels) * tiling.tilesPerImage
            imagesPerChunk = max(1, min(maxBatch, chunkElements / perImage))
            filters = Buffer(count: 16 * outChannels * geometry.channels)
            filterGradient = Buffer(count: 16 * outChannels * geometry.channels)
            inputTiles = Buffer(count: tiling.transformedCount(channels: geometry.channels, images: imagesPerChunk))
            productTiles = Buffer(count: tiling.transformedCount(channels: outChannels, images: imagesPerChunk))
            // One scratch per thread of the team, each on its own cache lines.
            transformScratch = Buffer(count: scratchStride(tiling) * (ThreadTeam.current?.size ?? 1))
            return
        }
        let perImage = geometry.patchSize * geometry.outHeight * geometry.outWidth
        columns = Buffer(count: perImage)
        columnGradient = Buffer(count: perImage)
    }

    /// Elements of V and M one chunk of images may fill: about half a core's L2 in Float (tests set
    /// it lower, before `reserve`, to run several chunks on small images).
    var chunkElements = 128 * 1024

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        if let tiling { return forwardWinograd(x, y, batch: batch, tiling) }
        let spatial = geometry.outHeight * geometry.outWidth
        let patch = geometry.patchSize
        let cols = columns.pointer
        for n in 0..<batch {
            unfold(x + n * geometry.inputSize, cols)
            let out = y + n * outChannels * spatial
            Element.gemm(transA: false, transB: false, m: outChannels, n: spatial, k: patch,
                         alpha: 1, a: weight, lda: patch, b: cols, ldb: spatial, beta: 0, c: out, ldc: spatial)
            if let bias { addChannelBias(out, bias, channels: outChannels, spatial: spatial) }
            sumMoments(out, images: 1)
        }
    }

    /// `outputMoments` of `images` images of output just written, from their first.
    private func sumMoments(_ out: UnsafePointer<Element>, images: Int) {
        guard let (sums, squares) = outputMoments else { return }
        let spatial = geometry.outHeight * geometry.outWidth
        forEachShare(of: outChannels, values: images * outChannels * spatial, granule: 1) { channels in
            channelMoments(out, sums: sums, squares: squares, batch: images, channels: outChannels, spatial: spatial, only: channels)
        }
    }

    /// im2col of one image, its channels shared among a `ThreadTeam`'s threads.
    private func unfold(_ image: UnsafePointer<Element>, _ cols: UnsafeMutablePointer<Element>) {
        forEachShare(of: geometry.channels, values: columns.count) { channels in im2col(image, cols, geometry, only: channels) }
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        if let tiling { return backwardWinograd(x, dy, dx, batch: batch, tiling) }
        let spatial = geometry.outHeight * geometry.outWidth
        let patch = geometry.patchSize
        let cols = columns.pointer
        for n in 0..<batch {
            unfold(x + n * geometry.inputSize, cols)
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
                let image = dx + n * geometry.inputSize
                forEachShare(of: geometry.channels, values: columnGradient.count) { channels in
                    col2im(columnGradient.pointer, image, geometry, only: channels)
                }
            }
        }
    }
}

extension Conv2D {
    func forwardWinograd(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, _ tiling: WinogradTiling) {
        let inChannels = geometry.channels, spatial = geometry.outHeight * geometry.outWidth
        let u = filters.pointer, v = inputTiles.pointer, m = productTiles.pointer
        winogradTransformFilters(weight, u, outChannels: outChannels, inChannels: inChannels)
        for first in stride(from: 0, to: batch, by: imagesPerChunk) {
            let images = min(imagesPerChunk, batch - first)
            let tiles = images * tiling.tilesPerImage
            let vs = tiling.transformedStride(channels: inChannels, images: images)
            let ms = tiling.transformedStride(channels: outChannels, images: images)
            forEachChannelShare(of: inChannels, images: images, tiling) { channels, scratch in
                winogradTransformInput(x + first * geometry.inputSize, v, images: images, tiling, scratch: scratch, only: channels)
            }
            forEachPlane { xi in
                // M[ξ][out, tiles] = U[ξ][out, in] * V[ξ][in, tiles]
                smallProduct(m: outChannels, n: tiles, k: inChannels, a: u + xi * outChannels * inChannels, lda: inChannels,
                             transposedA: false, b: v + xi * vs, ldb: tiles, c: m + xi * ms, ldc: tiles)
            }
            let out = y + first * outChannels * spatial
            forEachChannelShare(of: outChannels, images: images, tiling) { channels, scratch in
                winogradTransformOutput(m, out, images: images, tiling, scratch: scratch, only: channels)
            }
            if let bias {
                for n in 0..<images { addChannelBias(out + n * outChannels * spatial, bias, channels: outChannels, spatial: spatial) }
            }
            sumMoments(out, images: images)
        }
    }

    /// c[m, n] = op(a)[m, k] b[k, n] (op(a) = a^T when `transposedA`), for one plane of tiles
    /// (n = tiles): `streamedProduct` when the layer runs it and the tiles fill whole panels of 32,
    /// else BLAS. Partial panels waste their missing columns' arithmetic: cnn's 7 x 7 tiles an image
    /// (n = 49, two panels) ran slower than BLAS (`benchmarks/pair`, 0.94). Whole panels also mean
    /// the kernel reads nothing past a plane's last tile.
    private func smallProduct(m: Int, n: Int, k: Int, a: UnsafePointer<Element>, lda: Int, transposedA: Bool,
                              b: UnsafePointer<Element>, ldb: Int, c: UnsafeMutablePointer<Element>, ldc: Int) {
        if streamedProducts && n % panelWidth == 0 {
            return a.withMemoryRebound(to: Float.self, capacity: (transposedA ? k : m) * lda) { a in
                b.withMemoryRebound(to: Float.self, capacity: k * ldb) { b in
                    c.withMemoryRebound(to: Float.self, capacity: m * ldc) { c in
                        streamedProduct(m: m, n: n, k: k, a: a, lda: lda, transposedA: transposedA, b: b, ldb: ldb, c: c, ldc: ldc)
                    }
                }
            }
        }
        Element.gemm(transA: transposedA, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb,
                     beta: 0, c: c, ldc: ldc)
    }

    /// Runs `body(ξ)` for the 16 planes of a Winograd product, shared out whole among a
    /// `ThreadTeam`'s threads (each product one OpenBLAS call on one thread).
    private func forEachPlane(_ body: (Int) -> Void) {
        forEachShare(of: 16, minimum: 1, granule: 1) { planes in
            for xi in planes { body(xi) }
        }
    }

    /// A transform's scratch, rounded up to whole cache lines.
    private func scratchStride(_ tiling: WinogradTiling) -> Int { (tiling.scratchCount + 15) / 16 * 16 }

    /// Runs a Winograd transform over `channels` channels of `images` images, the channels shared
    /// among a `ThreadTeam`'s threads (each with its scratch) when the pass is long enough.
    private func forEachChannelShare(of channels: Int, images: Int, _ tiling: WinogradTiling,
                                     _ body: (Range<Int>, UnsafeMutablePointer<Element>) -> Void) {
        let stride = scratchStride(tiling)
        guard let team = ThreadTeam.current, transformScratch.count >= team.size * stride,
              16 * channels * images * tiling.tilesPerImage >= elementwiseMinimum else {
            return body(0..<channels, transformScratch.pointer)
        }
        team.run { member in
            let share = team.share(of: channels, member: member, granule: 1)
            if !share.isEmpty { body(share, transformScratch.pointer + member * stride) }
        }
    }

    func backwardWinograd(_ x: UnsafePointer<Element>, _ dy: UnsafePointer<Element>, _ dx: UnsafeMutablePointer<Element>?,
                          batch: Int, _ tiling: WinogradTiling) {
        let inChannels = geometry.channels, spatial = geometry.outHeight * geometry.outWidth
        let u = filters.pointer, du = filterGradient.pointer, v = inputTiles.pointer, dm = productTiles.pointer
        fillZero(du, count: 16 * outChannels * inChannels)
        for first in stride(from: 0, to: batch, by: imagesPerChunk) {
            let images = min(imagesPerChunk, batch - first)
            let tiles = images * tiling.tilesPerImage
            let vs = tiling.transformedStride(channels: inChannels, images: images)
            let ms = tiling.transformedStride(channels: outChannels, images: images)
            let dOut = dy + first * outChannels * spatial
            forEachChannelShare(of: inChannels, images: images, tiling) { channels, scratch in
                winogradTransformInput(x + first * geometry.inputSize, v, images: images, tiling, scratch: scratch, only: channels)
            }
            forEachChannelShare(of: outChannels, images: images, tiling) { channels, scratch in
                winogradOutputGradient(dOut, dm, images: images, tiling, scratch: scratch, only: channels)
            }
            forEachPlane { xi in
                // dU[ξ][out, in] += dM[ξ][out, tiles] * V[ξ][in, tiles]^T
                Element.gemm(transA: false, transB: true, m: outChannels, n: inChannels, k: tiles,
                             alpha: 1, a: dm + xi * ms, lda: tiles,
                             b: v + xi * vs, ldb: tiles,
                             beta: 1, c: du + xi * outChannels * inChannels, ldc: inChannels)
            }
            if let biasGradient {
                for n in 0..<images { accumulateChannelSums(dOut + n * outChannels * spatial, biasGradient, channels: outChannels, spatial: spatial) }
            }
            guard let dx else { continue }
            forEachPlane { xi in
                // dV[ξ][in, tiles] = U[ξ][out, in]^T * dM[ξ][out, tiles], over V (used above).
                smallProduct(m: inChannels, n: tiles, k: outChannels, a: u + xi * outChannels * inChannels, lda: inChannels,
                             transposedA: true, b: dm + xi * ms, ldb: tiles, c: v + xi * vs, ldc: tiles)
            }
            forEachChannelShare(of: inChannels, images: images, tiling) { channels, scratch in
                winogradInputGradient(v, dx + first * geometry.inputSize, images: images, tiling, scratch: scratch, only: channels)
            }
        }
        winogradFilterGradient(du, weightGradient, outChannels: outChannels, inChannels: inChannels)
    }
}

/// How a `Conv2D` computes: im2col + GEMM for every shape, Winograd F(2x2, 3x3) for 3x3 kernels of stride 1.
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
    case im2col, winograd

    /// The environment variable that overrides the choice for every layer (`im2col`, `winograd` or
    /// `auto`), for measuring one against the other; a layer that Winograd cannot compute stays im2col.
    public static let environmentVariable = "COHORT_CONV_ALGORITHM"

    /// Winograd where it applies and the channels make its GEMMs worth it, unless the environment says otherwise.
    static func automatic(for g: WindowGeometry, outChannels: Int) throws -> ConvolutionAlgorithm {
        let fits = WinogradTiling.applies(to: g)
        switch ProcessInfo.processInfo.environment[environmentVariable] ?? "auto" {
        case "auto": return fits && min(g.channels, outChannels) >= minimumWinogradChannels ? .winograd : .im2col
        case "winograd": return fits ? .winograd : .im2col
        case "im2col": return .im2col
        case let other: throw CohortError("\(environmentVariable)=\(other): expected im2col, winograd or auto")
        }
    }

    /// Below this many input or output channels the tile transforms cost more than the multiplications saved.
    static var minimumWinogradChannels: Int { 16 }
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
