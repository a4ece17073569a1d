/// Adaptive average pooling (PyTorch's `nn.AdaptiveAvgPool2d`): `[C, H, W]` -> `[C, OH, OW]` whatever
/// H and W, each output the mean of a window PyTorch's way (`adaptiveWindow`). `output_size: 1` is
/// the global average pooling that ends a ResNet (Lin et al., 2014, "Network in Network").
///
/// ### See Also
/// `Pool2D`, `Residual`.
public final class AdaptiveAvgPool2D<Element: Scalar>: Layer {
    public let kind = "adaptiveavgpool2d"
    public let inputShape: [Int]
    public let outputShape: [Int]

    public init(input: [Int], outHeight: Int, outWidth: Int, index: LayerPlace) throws {
        guard input.count == 3 else {
            throw layerError(index, kind, "expects an input [C, H, W], got \(describe(input))")
        }
        inputShape = input
        outputShape = [input[0], outHeight, outWidth]
    }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        adaptiveAvgPoolForward(x, y, planes: batch * inputShape[0], height: inputShape[1], width: inputShape[2],
                               outHeight: outputShape[1], outWidth: outputShape[2])
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        guard let dx else { return }
        adaptiveAvgPoolBackward(dy, dx, planes: batch * inputShape[0], height: inputShape[1], width: inputShape[2],
                                outHeight: outputShape[1], outWidth: outputShape[2])
    }
}
