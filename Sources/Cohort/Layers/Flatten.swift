/// Views `[C, H, W]` as `[C*H*W]`. The layout does not change, so the model lets it share its
/// input's buffers and it never copies.
public final class Flatten<Element: Scalar>: Layer {
    public let kind = "flatten"
    public let inputShape: [Int]
    public var outputShape: [Int] { [inputSize] }

    public init(input: [Int]) { inputShape = input }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        if UnsafePointer(y) != x { y.update(from: x, count: batch * inputSize) }
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        if let dx, UnsafePointer(dx) != dy { dx.update(from: dy, count: batch * inputSize) }
    }
}
