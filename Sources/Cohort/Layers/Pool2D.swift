/// 2-d pooling over square windows: `maxpool2d` (the gradient goes to the maximum) and
/// `avgpool2d` (the gradient is shared evenly). Stride defaults to the kernel size, as in PyTorch.
public final class Pool2D<Element: Scalar>: Layer {
    public enum Mode: String, Sendable { case max = "maxpool2d", average = "avgpool2d" }

    public let mode: Mode
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let geometry: WindowGeometry
    public var kind: String { mode.rawValue }
    /// Where each maximum came from: `[N, C, OH, OW]`.
    private var argmax = Buffer<Int32>(count: 0)

    public init(_ mode: Mode, input: [Int], kernel: Int, stride: Int, padding: Int, index: LayerPlace) throws {
        guard input.count == 3 else {
            throw layerError(index, mode.rawValue, "expects an input [C, H, W], got \(describe(input))")
        }
        let g = WindowGeometry(channels: input[0], height: input[1], width: input[2],
                               kernel: kernel, stride: stride, padding: padding)
        guard g.outHeight >= 1, g.outWidth >= 1 else {
            throw layerError(index, mode.rawValue, "kernel_size \(kernel) is larger than its input \(describe(input))")
        }
        guard 2 * padding <= kernel else {
            throw layerError(index, mode.rawValue, "padding \(padding) must be at most half of kernel_size \(kernel)")
        }
        self.mode = mode
        inputShape = input
        geometry = g
        outputShape = [input[0], g.outHeight, g.outWidth]
    }

    public func reserve(maxBatch: Int) {
        if mode == .max { argmax = Buffer(count: maxBatch * outputSize) }
    }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        forEachImageShare(batch: batch) { first, images in
            let input = x + first * inputSize, output = y + first * outputSize
            switch mode {
            case .max: maxPoolForward(input, output, argmax.pointer + first * outputSize, batch: images, geometry)
            case .average: avgPoolForward(input, output, batch: images, geometry)
            }
        }
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        guard let dx else { return }
        forEachImageShare(batch: batch) { first, images in
            let outputGradient = dy + first * outputSize, inputGradient = dx + first * inputSize
            switch mode {
            case .max: maxPoolBackward(outputGradient, argmax.pointer + first * outputSize, inputGradient, batch: images, geometry)
            case .average: avgPoolBackward(outputGradient, inputGradient, batch: images, geometry)
            }
        }
    }

    /// Runs `body(first, count)` over the batch's images, shared among a `ThreadTeam`'s threads when
    /// the pass is long enough (each image's windows are computed alike either way: bitwise the same).
    private func forEachImageShare(batch: Int, _ body: (_ first: Int, _ images: Int) -> Void) {
        forEachShare(of: batch, values: batch * inputSize, granule: 1) { images in body(images.lowerBound, images.count) }
    }
}
