import XCTest
@testable import Cohort

/// Backward computes no gradient of the model's input, which nothing reads: the model allocates no
/// buffer for it, the first layer with parameters (a dense layer after a flatten in every MLP
/// config) is not asked for one, and the layers before it are skipped, with the parameter
/// gradients unchanged. The debug probes, which keep every gradient, still get all of them.
final class InputGradientTests: XCTestCase {
    /// An identity layer that counts its backward passes and remembers whether the last was asked for dx.
    final class BackwardSpy: Layer {
        let kind = "spy"
        let inputShape: [Int]
        var outputShape: [Int] { inputShape }
        let parameterShapes: [ParameterShape]
        var backwardCalls = 0
        var askedForInputGradient = false

        init(size: Int, parameters: Int) {
            inputShape = [size]
            parameterShapes = parameters > 0 ? [ParameterShape("weight", [parameters])] : []
        }

        func forward(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, batch: Int, context: StepContext) {
            y.update(from: x, count: batch * inputSize)
        }

        func backward(_ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>, _ dy: UnsafePointer<Double>,
                      _ dx: UnsafeMutablePointer<Double>?, batch: Int, context: StepContext) {
            backwardCalls += 1
            askedForInputGradient = dx != nil
            dx?.update(from: dy, count: batch * inputSize)
        }
    }

    /// [spy without parameters, spy with parameters, dense] after one forward and backward on 4 samples.
    func spiedStep(keepingActivationGradients keeps: Bool) throws -> (before: BackwardSpy, first: BackwardSpy) {
        let before = BackwardSpy(size: 6, parameters: 0), first = BackwardSpy(size: 6, parameters: 2)
        let dense = try Dense<Double>(input: [6], outFeatures: 3, bias: true, initializer: LayerInit(), index: 2)
        let model = try Model<Double>(layers: [before, first, dense], inputShape: [6])
        model.initialize(seed: 3)
        model.keepsActivationGradients = keeps
        model.reserve(maxBatch: 4)
        for i in 0..<(4 * model.inputSize) { model.input[i] = Double(i % 7) - 3 }
        try forwardAndBackward(model, labels: [2, 0, 1, 2])
        return (before, first)
    }

    func testTheLayersBeforeTheFirstWithParametersAreSkipped() throws {
        let (before, first) = try spiedStep(keepingActivationGradients: false)
        XCTAssertEqual(before.backwardCalls, 0)
        XCTAssertEqual(first.backwardCalls, 1)
        XCTAssertFalse(first.askedForInputGradient, "the first layer with parameters was asked for its input gradient")
    }

    func testTheDebugProbesGetEveryGradientButTheInputs() throws {
        let (before, first) = try spiedStep(keepingActivationGradients: true)
        XCTAssertEqual(before.backwardCalls, 1)
        XCTAssertFalse(before.askedForInputGradient)
        XCTAssertTrue(first.askedForInputGradient)
    }

    /// One forward and backward of [flatten, dropout, dense, tanh, dense] on 4 samples.
    func step(keepingActivationGradients keeps: Bool) throws -> Model<Double> {
        let labels: [Int32] = [2, 0, 1, 2]
        let model = try modelOnRandomInput(input: [2, 3], layers: """
                - flatten: {}
                - dropout: {p: 0.5}
                - dense: {out_features: 5}
                - tanh: {}
                - dense: {out_features: 3}
            """, batch: labels.count, seed: 3, inputSeed: 17, keepsActivationGradients: keeps)
        try forwardAndBackward(model, labels: labels)
        return model
    }

    /// The flatten at the front shares the model's input and its gradient: in training there is none.
    func testTrainingAllocatesNoInputGradient() throws {
        XCTAssertNil(try step(keepingActivationGradients: false).activationGradient(1))
        let probed = try step(keepingActivationGradients: true)
        let inputGradient = try XCTUnwrap(probed.activationGradient(1))
        XCTAssertTrue((0..<(4 * probed.inputSize)).allSatisfy { inputGradient[$0].isFinite })
        XCTAssertTrue((0..<(4 * probed.inputSize)).contains { inputGradient[$0] != 0 })
    }

    func testTheParameterGradientsAreThoseOfAFullBackward() throws {
        let skipping = try step(keepingActivationGradients: false), full = try step(keepingActivationGradients: true)
        XCTAssertEqual(Array(skipping.gradients.buffer), Array(full.gradients.buffer))
        XCTAssertTrue(skipping.gradients.buffer.contains { $0 != 0 })
    }
}
