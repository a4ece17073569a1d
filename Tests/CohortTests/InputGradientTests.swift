import XCTest
@testable import Cohort

/// Backward computes no gradient of the model's input, which nothing reads: the first layer with
/// parameters (a dense layer after a flatten in every MLP config) is not asked for one, and the
/// layers before it are skipped, with the parameter gradients unchanged.
final class InputGradientTests: XCTestCase {
    /// One forward and backward of [flatten, dropout, dense, tanh, dense] on 4 samples, the model's
    /// input gradient buffer first filled with NaN.
    func step(keepingActivationGradients keeps: Bool) throws -> Model<Double> {
        let labels: [Int32] = [2, 0, 1, 2]
        let model = try modelOnRandomInput(input: [2, 3], layers: """
                - flatten: {}
                - dropout: {p: 0.5}
                - dense: {out_features: 5}
                - tanh: {}
                - dense: {out_features: 3}
            """, batch: labels.count, seed: 3, inputSeed: 17, keepsActivationGradients: keeps)
        let inputGradient = UnsafeMutablePointer(mutating: model.activationGradient(1))
        inputGradient.update(repeating: .nan, count: labels.count * model.inputSize)
        try forwardAndBackward(model, labels: labels)
        return model
    }

    func testNoGradientOfTheInputIsComputed() throws {
        let model = try step(keepingActivationGradients: false)
        let written = (0..<(4 * model.inputSize)).filter { !model.activationGradient(1)[$0].isNaN }
        XCTAssertEqual(written, [], "the gradient of the input was written")
    }

    func testTheParameterGradientsAreThoseOfAFullBackward() throws {
        let skipping = try step(keepingActivationGradients: false), full = try step(keepingActivationGradients: true)
        // The debug probes keep every gradient, the input's too: the full backward.
        XCTAssertFalse(full.activationGradient(1)[0].isNaN)
        XCTAssertEqual(Array(skipping.gradients.buffer), Array(full.gradients.buffer))
        XCTAssertTrue(skipping.gradients.buffer.contains { $0 != 0 })
    }
}
