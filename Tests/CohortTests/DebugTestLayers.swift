@testable import Cohort

/// y = 2x, whose backward claims dx = 3 dy: a layer without parameters and a wrong gradient.
final class WrongInputGradient<Element: Scalar>: Layer {
    let kind = "wrong_dx"
    let inputShape: [Int]
    var outputShape: [Int] { inputShape }

    init(input: [Int]) { inputShape = input }

    func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        for i in 0..<(batch * inputSize) { y[i] = 2 * x[i] }
    }

    func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                  _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        guard let dx else { return }
        for i in 0..<(batch * inputSize) { dx[i] = 3 * dy[i] }
    }
}

/// y = w * x + b element-wise (w, b per feature), whose backward gets the weight's gradient wrong:
/// it forgets the batch's second half, or with `scale` it is `scale` times the true one. dx and
/// the bias are right.
final class WrongWeightGradient<Element: Scalar>: Layer {
    let kind = "wrong_dw"
    let inputShape: [Int]
    var outputShape: [Int] { inputShape }
    let scale: Element?
    private var weight: UnsafeMutablePointer<Element>!
    private var weightGradient: UnsafeMutablePointer<Element>!

    init(input: [Int], scale: Element? = nil) {
        inputShape = input
        self.scale = scale
    }

    var parameterShapes: [ParameterShape] { [ParameterShape("weight", [inputSize]), ParameterShape("bias", [inputSize])] }

    func bind(parameters: UnsafeMutablePointer<Element>, gradients: UnsafeMutablePointer<Element>) {
        weight = parameters
        weightGradient = gradients
    }

    func initialize(seed: UInt64, layerIndex: Int) {
        for i in 0..<inputSize {
            weight[i] = 1 + Element(i) / 10
            weight[inputSize + i] = Element(i) / 20
        }
    }

    func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        for n in 0..<batch {
            for i in 0..<inputSize { y[n * inputSize + i] = weight[i] * x[n * inputSize + i] + weight[inputSize + i] }
        }
    }

    func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                  _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        for n in 0..<batch {
            for i in 0..<inputSize {
                let g = dy[n * inputSize + i]
                if let scale {
                    weightGradient[i] += g * x[n * inputSize + i] * scale
                } else if n < batch / 2 {
                    weightGradient[i] += g * x[n * inputSize + i]
                }
                weightGradient[inputSize + i] += g
                dx?[n * inputSize + i] = weight[i] * g
            }
        }
    }
}

/// The identity, except that from step `step` on its first output is NaN: a layer that breaks the run.
final class NaNFromStep<Element: Scalar>: Layer {
    let kind = "nan_maker"
    let inputShape: [Int]
    var outputShape: [Int] { inputShape }
    let step: Int

    init(input: [Int], step: Int) {
        inputShape = input
        self.step = step
    }

    func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        y.update(from: x, count: batch * inputSize)
        if context.step >= step { y[0] = .nan }
    }

    func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                  _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        dx?.update(from: dy, count: batch * inputSize)
    }
}
