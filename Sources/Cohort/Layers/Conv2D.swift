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
///
/// On a `ThreadTeam` with enough images, each thread takes whole images (whole chunks of them) with
/// buffers of its own, and meets the others once per pass (`imageShares`); otherwise every kernel
/// is shared among the team, which meets after each (perf of a lone process on resnet20: the
/// helper's spin 8.6 % of the samples, the caller's waits inlined into the sharing loops 7.9 % and
/// more; one process 1.17-1.32 x faster on the conv workloads since). Outputs and input gradients
/// are bitwise the same either way; the weight gradient sums each thread's images, then the
/// threads' sums: the same within rounding.
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
    /// One per thread of the team (at least one).
    private var workspaces: [ConvolutionWorkspace<Element>] = []
    /// Per image and output channel of the last training forward, the sum of its values and of
    /// their squares, `[N, out, 2]`, from which `outputMoments` is summed in image order.
    private var imageMoments = Buffer<Element>(count: 0)

    public let algorithm: ConvolutionAlgorithm
    /// Set when `algorithm` is `.winograd`.
    let tiling: WinogradTiling?
    /// Whether the Winograd products may run `streamedProduct` (`WinogradProductKernel`).
    private let streamedProducts: Bool
    /// Images whose transformed tiles go through one set of 16 GEMMs.
    private var imagesPerChunk = 1
    /// Transformed filters U (of the weights of the last forward, which backward uses): `[16, out, in]`.
    private var filters = Buffer<Element>(count: 0)
    /// A transform's scratch for each thread of the team, each on its own cache lines.
    private var transformScratch = Buffer<Element>(count: 0)
    /// Where forward sums each output channel's values and squares, taken image by image as it
    /// writes them (`imageChannelMoments`, while they are still in cache), for the batch norm after it
    /// (`BatchNorm.takeInputMoments`); nil: not summed. Set by `Sequential` around a training forward.
    var outputMoments: (sums: UnsafeMutablePointer<Double>, squares: UnsafeMutablePointer<Double>)?

    /// `algorithm`: this one (an error where Winograd cannot compute the layer); else as `preference`
    /// says, or the environment (`ConvolutionAlgorithm.environmentVariable`), or automatically.
    public init(input: [Int], outChannels: Int, kernel: Int, stride: Int, padding: Int, bias: Bool,
                initializer: LayerInit, index: LayerPlace, algorithm: ConvolutionAlgorithm? = nil,
                preference: ConvolutionPreference = .auto) throws {
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
        let chosen = try algorithm ?? ConvolutionAlgorithm.chosen(preference, for: g, outChannels: outChannels)
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
        reserve(maxBatch: maxBatch, training: true)
    }

    public func reserveForInference(maxBatch: Int) {
        reserve(maxBatch: maxBatch, training: false)
    }

    /// Without `training`, none of backward's buffers, nor the moments a batch norm after takes in training.
    private func reserve(maxBatch: Int, training: Bool) {
        let threads = ThreadTeam.current?.size ?? 1
        imageMoments = Buffer(count: training ? 2 * maxBatch * outChannels : 0)
        if let tiling {
            let perImage = 16 * (geometry.channels + outChannels) * tiling.tilesPerImage
            imagesPerChunk = max(1, min(maxBatch, chunkElements / perImage))
            filters = Buffer(count: 16 * outChannels * geometry.channels)
            transformScratch = Buffer(count: scratchStride(tiling) * threads)
            workspaces = (0..<threads).map { _ in
                ConvolutionWorkspace(winograd: tiling, inChannels: geometry.channels, outChannels: outChannels,
                                     images: imagesPerChunk, training: training)
            }
            return
        }
        workspaces = (0..<threads).map { member in
            ConvolutionWorkspace(columns: geometry.patchSize * geometry.outHeight * geometry.outWidth,
                                 weightGradient: member == 0 ? 0 : outChannels * geometry.patchSize, training: training)
        }
    }

    /// The team whose threads each take whole units of `units` (images, or chunks of images), or
    /// nil when the kernels are to be shared instead: no team, a pass inside another, fewer units
    /// than threads, or so few that whole units would leave a thread idle for long.
    private func imageShares(units: Int) -> ThreadTeam? {
        guard let team = ThreadTeam.current, !team.isRunning, workspaces.count >= team.size, units >= team.size,
              units % team.size == 0 || units >= 4 * team.size else { return nil }
        return team
    }

    /// Elements of V and M one chunk of images may fill: about half a core's L2 in Float (tests set
    /// it lower, before `reserve`, to run several chunks on small images).
    var chunkElements = 128 * 1024

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        if let tiling {
            forwardWinograd(x, y, batch: batch, tiling)
        } else if let team = imageShares(units: batch) {
            team.run { member in
                forwardIm2col(x, y, images: team.share(of: batch, member: member, granule: 1), workspaces[member], sharing: false)
            }
        } else {
            forwardIm2col(x, y, images: 0..<batch, workspaces[0], sharing: true)
        }
        addImageMoments(batch: batch)
    }

    /// Forward of `images` through im2col, with `workspace`'s columns; `sharing`: each kernel shared
    /// among the team's threads.
    private func forwardIm2col(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, images: Range<Int>,
                               _ workspace: ConvolutionWorkspace<Element>, sharing: Bool) {
        let spatial = geometry.outHeight * geometry.outWidth
        let patch = geometry.patchSize
        let cols = workspace.columns.pointer
        for n in images {
            unfold(x + n * geometry.inputSize, cols, sharing: sharing)
            let out = y + n * outChannels * spatial
            Element.gemm(transA: false, transB: false, m: outChannels, n: spatial, k: patch,
                         alpha: 1, a: weight, lda: patch, b: cols, ldb: spatial, beta: 0, c: out, ldc: spatial)
            if let bias { addChannelBias(out, bias, channels: outChannels, spatial: spatial) }
            takeImageMoments(y, images: n..<(n + 1), sharing: sharing)
        }
    }

    /// When `outputMoments` is set, each output channel's sum and sum of squares for each of
    /// `images`, whose output is written (and still in cache), into `imageMoments`.
    private func takeImageMoments(_ y: UnsafePointer<Element>, images: Range<Int>, sharing: Bool) {
        guard outputMoments != nil else { return }
        let spatial = geometry.outHeight * geometry.outWidth, moments = imageMoments.pointer
        guard sharing else {
            return imageChannelMoments(y, moments, images: images, channels: outChannels, spatial: spatial)
        }
        forEachShare(of: outChannels, values: images.count * outChannels * spatial, granule: 1) { channels in
            imageChannelMoments(y, moments, images: images, channels: outChannels, spatial: spatial, only: channels)
        }
    }

    /// Adds `imageMoments` of `batch` images to `outputMoments`, image by image as `channelMoments`
    /// over the output would (so bitwise the sums the batch norm's own pass would take).
    private func addImageMoments(batch: Int) {
        guard let (sums, squares) = outputMoments else { return }
        addChannelMoments(imageMoments.pointer, sums: sums, squares: squares, batch: batch, channels: outChannels)
    }

    /// im2col of one image, its channels shared among a `ThreadTeam`'s threads when `sharing`.
    private func unfold(_ image: UnsafePointer<Element>, _ cols: UnsafeMutablePointer<Element>, sharing: Bool) {
        guard sharing else { return im2col(image, cols, geometry) }
        forEachShare(of: geometry.channels, values: geometry.patchSize * geometry.outHeight * geometry.outWidth) { channels in
            im2col(image, cols, geometry, only: channels)
        }
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        if let tiling {
            backwardWinograd(x, dy, dx, batch: batch, tiling)
        } else if let team = imageShares(units: batch) {
            let others = workspaces[1..<team.size]
            for workspace in others { fillZero(workspace.weightGradient.pointer, count: workspace.weightGradient.count) }
            team.run { member in
                backwardIm2col(x, dy, dx, images: team.share(of: batch, member: member, granule: 1), workspaces[member], sharing: false)
            }
            for workspace in others {
                add(weightGradient, workspace.weightGradient.pointer, weightGradient, count: workspace.weightGradient.count)
            }
            addBiasGradient(dy, images: 0..<batch)
        } else {
            backwardIm2col(x, dy, dx, images: 0..<batch, workspaces[0], sharing: true)
        }
    }

    /// dbias[c] += the sum of dy[n, c, .] for each of `images`, in image order (so the same sums
    /// whether one thread takes the batch or each takes its images).
    private func addBiasGradient(_ dy: UnsafePointer<Element>, images: Range<Int>) {
        guard let biasGradient else { return }
        let spatial = geometry.outHeight * geometry.outWidth
        for n in images { accumulateChannelSums(dy + n * outChannels * spatial, biasGradient, channels: outChannels, spatial: spatial) }
    }

    /// Backward of `images` through im2col: their weight gradient into `workspace`'s (the layer's
    /// own for the first workspace), their input gradient into dx.
    private func backwardIm2col(_ x: UnsafePointer<Element>, _ dy: UnsafePointer<Element>, _ dx: UnsafeMutablePointer<Element>?,
                                images: Range<Int>, _ workspace: ConvolutionWorkspace<Element>, sharing: Bool) {
        let spatial = geometry.outHeight * geometry.outWidth
        let patch = geometry.patchSize
        let cols = workspace.columns.pointer, columnGradient = workspace.columnGradient.pointer
        let dW = workspace.weightGradient.count > 0 ? workspace.weightGradient.pointer : weightGradient!
        for n in images {
            unfold(x + n * geometry.inputSize, cols, sharing: sharing)
            let dOut = dy + n * outChannels * spatial
            // dW[out, patch] += dY[out, spatial] * cols[patch, spatial]^T
            Element.gemm(transA: false, transB: true, m: outChannels, n: patch, k: spatial,
                         alpha: 1, a: dOut, lda: spatial, b: cols, ldb: spatial, beta: 1, c: dW, ldc: patch)
            // While dY is in cache; threads that take images leave it to the end.
            if sharing { addBiasGradient(dy, images: n..<(n + 1)) }
            guard let dx else { continue }
            // dcols[patch, spatial] = W[out, patch]^T * dY[out, spatial]
            Element.gemm(transA: true, transB: false, m: patch, n: spatial, k: outChannels,
                         alpha: 1, a: weight, lda: patch, b: dOut, ldb: spatial, beta: 0, c: columnGradient, ldc: spatial)
            let image = dx + n * geometry.inputSize
            guard sharing else { col2im(columnGradient, image, geometry); continue }
            forEachShare(of: geometry.channels, values: workspace.columnGradient.count) { channels in
                col2im(columnGradient, image, geometry, only: channels)
            }
        }
    }
}

extension Conv2D {
    func forwardWinograd(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, _ tiling: WinogradTiling) {
        winogradTransformFilters(weight, filters.pointer, outChannels: outChannels, inChannels: geometry.channels)
        let chunks = (batch + imagesPerChunk - 1) / imagesPerChunk
        if let team = imageShares(units: chunks) {
            team.run { member in
                forwardWinograd(x, y, images: imagesOfChunks(team.share(of: chunks, member: member, granule: 1), batch: batch),
                                tiling, member: member, sharing: false)
            }
        } else {
            forwardWinograd(x, y, images: 0..<batch, tiling, member: 0, sharing: true)
        }
    }

    /// The images of chunks `chunks` of a batch of `batch`.
    private func imagesOfChunks(_ chunks: Range<Int>, batch: Int) -> Range<Int> {
        min(batch, chunks.lowerBound * imagesPerChunk) ..< min(batch, chunks.upperBound * imagesPerChunk)
    }

    /// Forward of `images`, chunk by chunk, with workspace `member`'s tiles; `sharing`: each
    /// transform and each plane's product shared among the team's threads.
    private func forwardWinograd(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, images range: Range<Int>,
                                 _ tiling: WinogradTiling, member: Int, sharing: Bool) {
        let inChannels = geometry.channels, spatial = geometry.outHeight * geometry.outWidth
        let u = filters.pointer, v = workspaces[member].inputTiles.pointer, m = workspaces[member].productTiles.pointer
        for first in stride(from: range.lowerBound, to: range.upperBound, by: imagesPerChunk) {
            let images = min(imagesPerChunk, range.upperBound - first)
            let tiles = images * tiling.tilesPerImage
            let vs = tiling.transformedStride(channels: inChannels, images: images)
            let ms = tiling.transformedStride(channels: outChannels, images: images)
            forEachChannelShare(of: inChannels, images: images, tiling, member: member, sharing: sharing) { channels, scratch in
                winogradTransformInput(x + first * geometry.inputSize, v, images: images, tiling, scratch: scratch, only: channels)
            }
            forEachPlane(sharing: sharing) { xi in
                // M[ξ][out, tiles] = U[ξ][out, in] * V[ξ][in, tiles]
                smallProduct(m: outChannels, n: tiles, k: inChannels, a: u + xi * outChannels * inChannels, lda: inChannels,
                             transposedA: false, b: v + xi * vs, ldb: tiles, c: m + xi * ms, ldc: tiles)
            }
            let out = y + first * outChannels * spatial
            forEachChannelShare(of: outChannels, images: images, tiling, member: member, sharing: sharing) { channels, scratch in
                winogradTransformOutput(m, out, images: images, tiling, scratch: scratch, only: channels)
            }
            if let bias {
                for n in 0..<images { addChannelBias(out + n * outChannels * spatial, bias, channels: outChannels, spatial: spatial) }
            }
            takeImageMoments(y, images: first..<(first + images), sharing: sharing)
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

    /// Runs `body(ξ)` for the 16 planes of a Winograd product; `sharing`: shared out whole among a
    /// `ThreadTeam`'s threads (each product one OpenBLAS call on one thread).
    private func forEachPlane(sharing: Bool, _ body: (Int) -> Void) {
        guard sharing else {
            for xi in 0..<16 { body(xi) }
            return
        }
        forEachShare(of: 16, minimum: 1, granule: 1) { planes in
            for xi in planes { body(xi) }
        }
    }

    /// A transform's scratch, rounded up to whole cache lines.
    private func scratchStride(_ tiling: WinogradTiling) -> Int { (tiling.scratchCount + 15) / 16 * 16 }

    /// Runs a Winograd transform over `channels` channels of `images` images: with `sharing`, the
    /// channels shared among a `ThreadTeam`'s threads (each with its scratch) when the pass is long
    /// enough; otherwise all of them with the scratch of team member `member`.
    private func forEachChannelShare(of channels: Int, images: Int, _ tiling: WinogradTiling, member: Int, sharing: Bool,
                                     _ body: (Range<Int>, UnsafeMutablePointer<Element>) -> Void) {
        let stride = scratchStride(tiling)
        guard sharing, let team = ThreadTeam.current, transformScratch.count >= team.size * stride,
              16 * channels * images * tiling.tilesPerImage >= elementwiseMinimum else {
            return body(0..<channels, transformScratch.pointer + member * stride)
        }
        team.run { thread in
            let share = team.share(of: channels, member: thread, granule: 1)
            if !share.isEmpty { body(share, transformScratch.pointer + thread * stride) }
        }
    }

    func backwardWinograd(_ x: UnsafePointer<Element>, _ dy: UnsafePointer<Element>, _ dx: UnsafeMutablePointer<Element>?,
                          batch: Int, _ tiling: WinogradTiling) {
        let chunks = (batch + imagesPerChunk - 1) / imagesPerChunk
        let du = workspaces[0].filterGradient
        if let team = imageShares(units: chunks) {
            team.run { member in
                backwardWinograd(x, dy, dx, images: imagesOfChunks(team.share(of: chunks, member: member, granule: 1), batch: batch),
                                 tiling, member: member, sharing: false)
            }
            for workspace in workspaces[1..<team.size] {
                add(du.pointer, workspace.filterGradient.pointer, du.pointer, count: du.count)
            }
            addBiasGradient(dy, images: 0..<batch)
        } else {
            backwardWinograd(x, dy, dx, images: 0..<batch, tiling, member: 0, sharing: true)
        }
        winogradFilterGradient(du.pointer, weightGradient, outChannels: outChannels, inChannels: geometry.channels)
    }

    /// Backward of `images`, chunk by chunk, with workspace `member`'s tiles: their filter gradient
    /// dU into the workspace's (zeroed first), their input gradient into dx.
    private func backwardWinograd(_ x: UnsafePointer<Element>, _ dy: UnsafePointer<Element>, _ dx: UnsafeMutablePointer<Element>?,
                                  images range: Range<Int>, _ tiling: WinogradTiling, member: Int, sharing: Bool) {
        let inChannels = geometry.channels, spatial = geometry.outHeight * geometry.outWidth
        let workspace = workspaces[member]
        let u = filters.pointer, du = workspace.filterGradient.pointer
        let v = workspace.inputTiles.pointer, dm = workspace.productTiles.pointer
        fillZero(du, count: 16 * outChannels * inChannels)
        for first in stride(from: range.lowerBound, to: range.upperBound, by: imagesPerChunk) {
            let images = min(imagesPerChunk, range.upperBound - first)
            let tiles = images * tiling.tilesPerImage
            let vs = tiling.transformedStride(channels: inChannels, images: images)
            let ms = tiling.transformedStride(channels: outChannels, images: images)
            let dOut = dy + first * outChannels * spatial
            forEachChannelShare(of: inChannels, images: images, tiling, member: member, sharing: sharing) { channels, scratch in
                winogradTransformInput(x + first * geometry.inputSize, v, images: images, tiling, scratch: scratch, only: channels)
            }
            forEachChannelShare(of: outChannels, images: images, tiling, member: member, sharing: sharing) { channels, scratch in
                winogradOutputGradient(dOut, dm, images: images, tiling, scratch: scratch, only: channels)
            }
            forEachPlane(sharing: sharing) { xi in
                // dU[ξ][out, in] += dM[ξ][out, tiles] * V[ξ][in, tiles]^T
                Element.gemm(transA: false, transB: true, m: outChannels, n: inChannels, k: tiles,
                             alpha: 1, a: dm + xi * ms, lda: tiles,
                             b: v + xi * vs, ldb: tiles,
                             beta: 1, c: du + xi * outChannels * inChannels, ldc: inChannels)
            }
            if sharing { addBiasGradient(dy, images: first..<(first + images)) }
            guard let dx else { continue }
            forEachPlane(sharing: sharing) { xi in
                // dV[ξ][in, tiles] = U[ξ][out, in]^T * dM[ξ][out, tiles], over V (used above).
                smallProduct(m: inChannels, n: tiles, k: outChannels, a: u + xi * outChannels * inChannels, lda: inChannels,
                             transposedA: true, b: dm + xi * ms, ldb: tiles, c: v + xi * vs, ldc: tiles)
            }
            forEachChannelShare(of: inChannels, images: images, tiling, member: member, sharing: sharing) { channels, scratch in
                winogradInputGradient(v, dx + first * geometry.inputSize, images: images, tiling, scratch: scratch, only: channels)
            }
        }
    }
}

/// What one thread of a `Conv2D` works in: one image's columns and their gradient (im2col) and,
/// past the first thread, a weight gradient of its own images; or the transformed tiles of a chunk
/// of images and the filter gradient dU of its own images (Winograd).
final class ConvolutionWorkspace<Element: Scalar> {
    /// im2col of one image, and its gradient: `[in*K*K, OH*OW]` each.
    let columns: Buffer<Element>
    let columnGradient: Buffer<Element>
    /// im2col: `[out, in*K*K]`, or empty for the thread that adds into the layer's own.
    let weightGradient: Buffer<Element>
    /// Winograd: transformed input tiles V (or their gradient dV), `[16, in, tiles]`, and products M
    /// (or their gradient dM), `[16, out, tiles]`, of one chunk of images.
    let inputTiles: Buffer<Element>
    let productTiles: Buffer<Element>
    /// Winograd: dU, `[16, out, in]`.
    let filterGradient: Buffer<Element>

    /// Without `training`, no gradients.
    init(columns: Int, weightGradient: Int, training: Bool) {
        self.columns = Buffer(count: columns)
        columnGradient = Buffer(count: training ? columns : 0)
        self.weightGradient = Buffer(count: training ? weightGradient : 0)
        inputTiles = Buffer(count: 0)
        productTiles = Buffer(count: 0)
        filterGradient = Buffer(count: 0)
    }

    init(winograd tiling: WinogradTiling, inChannels: Int, outChannels: Int, images: Int, training: Bool) {
        columns = Buffer(count: 0)
        columnGradient = Buffer(count: 0)
        weightGradient = Buffer(count: 0)
        inputTiles = Buffer(count: tiling.transformedCount(channels: inChannels, images: images))
        productTiles = Buffer(count: tiling.transformedCount(channels: outChannels, images: images))
        filterGradient = Buffer(count: training ? 16 * outChannels * inChannels : 0)
    }
}

/// What a model's convolutions prefer (`model.convolution`, or `COHORT_CONV_ALGORITHM`): Winograd
/// where it applies and pays (`auto`), wherever it applies, or im2col everywhere (whose weight
/// gradients keep the exact zeros PyTorch's do, which Winograd's rounding does not).
public enum ConvolutionPreference: String, Sendable, CaseIterable {
    case auto, im2col, winograd
}

/// How a `Conv2D` computes: im2col + GEMM for every shape, Winograd F(2x2, 3x3) for 3x3 kernels of stride 1.
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
    case im2col, winograd

    /// The environment variable that chooses for every layer of a model whose `model.convolution` is
    /// `auto` (`im2col`, `winograd` or `auto`), for measuring one against the other; a layer that
    /// Winograd cannot compute stays im2col.
    public static let environmentVariable = "COHORT_CONV_ALGORITHM"

    /// What `preference` picks for a layer of geometry `g`; `.auto` defers to the environment, whose
    /// own `auto` (or absence) is Winograd where it applies and the channels make its GEMMs worth it.
    static func chosen(_ preference: ConvolutionPreference, for g: WindowGeometry, outChannels: Int) throws -> ConvolutionAlgorithm {
        let given = ProcessInfo.processInfo.environment[environmentVariable] ?? "auto"
        guard let environment = ConvolutionPreference(rawValue: given) else {
            throw CohortError("\(environmentVariable)=\(given): expected im2col, winograd or auto")
        }
        let fits = WinogradTiling.applies(to: g)
        switch preference == .auto ? environment : preference {
        case .winograd: return fits ? .winograd : .im2col
        case .im2col: return .im2col
        case .auto: return fits && min(g.channels, outChannels) >= minimumWinogradChannels ? .winograd : .im2col
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
