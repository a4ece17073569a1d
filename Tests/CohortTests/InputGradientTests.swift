import XCTest
@testable import Cohort

/// Backward computes no gradient of the model's input, which nothing reads: the first layer with
/// parameters (a dense layer after a flatten in every MLP config) is not asked for one, and the
/// layers before it are skipped, with the parameter gradients unchanged.
final class InputGradientTests: XCTestCase {
    /// One forward and backward of [flatten, dropout, dense, tanh, dense] on 4 samples, the model's
    /// input gradient buffer first filled with NaN.
    func step(keepingActivationGradients keeps: Bool) throws -> Model<Double> {
        let config = try ConfigLoader.parse("""
            data: {train: {images: a, labels: b}}
            model:
              input: [2, 3]
              layers:
                - flatten: {}
                - dropout: {p: 0.5}
                - dense: {out_features: 5}
                - tanh: {}
                - dense: {out_features: 3}
            train: {batch_size: 4, max_steps: 1}
            """, file: "inline.yaml")
        let model = try Model<Double>(config.model)
        model.initialize(seed: 3)
        model.keepsActivationGradients = keeps
        let labels: [Int32] = [2, 0, 1, 2]
        model.reserve(maxBatch: labels.count)
        let random = CounterRandom(17)
        for i in 0..<(labels.count * model.inputSize) { model.input[i] = random.normal(UInt64(i)) }
        let inputGradient = UnsafeMutablePointer(mutating: model.activationGradient(1))
        inputGradient.update(repeating: .nan, count: labels.count * model.inputSize)
        let context = StepContext(isTraining: true, seed: 5, step: 0, firstSampleIndex: 0, globalBatch: labels.count,
                                  communicator: SoloCommunicator())
        try model.forward(batch: labels.count, context: context)
        _ = labels.withUnsafeBufferPointer { l in
            softmaxCrossEntropy(logits: model.output, labels: l.baseAddress!, dlogits: model.outputGradient,
                                batch: labels.count, classes: model.classes, gradientScale: 0.25)
        }
        try model.backward(batch: labels.count, context: context)
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
