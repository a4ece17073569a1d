/// The element-wise nonlinearities: `relu`, `sigmoid` (the gates' switch between 0 and 1) and
/// `tanh` (values centred on zero). Each derivative is computed from the output.
public final class Activation<Element: Scalar>: Layer {
    public enum Function: String, CaseIterable, Sendable { case relu, sigmoid, tanh }

    public let function: Function
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }
    public var kind: String { function.rawValue }

    public init(_ function: Function, input: [Int]) {
        self.function = function
        inputShape = input
    }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        forEachShare(of: batch * inputSize, minimum: elementwiseMinimum) { range in
            let (x, y, count) = (x + range.lowerBound, y + range.lowerBound, range.count)
            switch function {
            case .relu: reluForward(x, y, count: count)
            case .sigmoid: sigmoidForward(x, y, count: count)
            case .tanh: tanhForward(x, y, count: count)
            }
        }
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        guard let dx else { return }
        forEachShare(of: batch * inputSize, minimum: elementwiseMinimum) { range in
            let (y, dy, dx, count) = (y + range.lowerBound, dy + range.lowerBound, dx + range.lowerBound, range.count)
            switch function {
            case .relu: reluBackward(y, dy, dx, count: count)
            case .sigmoid: sigmoidBackward(y, dy, dx, count: count)
            case .tanh: tanhBackward(y, dy, dx, count: count)
            }
        }
    }
}
