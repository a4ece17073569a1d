import XCTest
@testable import Cohort

/// Gradients moved into memory the model does not own (the window in which workers of one host sum
/// them in place): backward writes them there, and the training step moves them only where that
/// sum runs.
final class GradientPlacementTests: XCTestCase {
    let layers = """
            - conv2d: {out_channels: 3, kernel_size: 3, padding: 1, bias: false}
            - batchnorm: {}
            - relu: {}
            - residual:
                body:
                  - conv2d: {out_channels: 3, kernel_size: 3, padding: 1}
                  - tanh: {}
            - flatten: {}
            - dense: {out_features: 3}
        """

    func testBackwardWritesTheGradientsWhereTheyWerePlaced() throws {
        let labels: [Int32] = [2, 0, 1]
        let model = try modelOnRandomInput(input: [2, 5, 5], layers: layers, batch: labels.count, seed: 5, inputSeed: 13)
        try forwardAndBackward(model, labels: labels)
        let expected = Array(model.gradients.buffer)
        XCTAssertTrue(expected.contains { $0 != 0 })
        let own = model.gradients
        let storage = UnsafeMutablePointer<Double>.allocate(capacity: expected.count)
        defer { storage.deallocate() }
        model.placeGradients(in: storage)
        XCTAssertEqual(model.gradients.pointer, storage)
        XCTAssertEqual(Array(model.gradients.buffer), expected, "the values move with the gradients")

        own.pointer.update(repeating: .nan, count: own.count)
        storage.update(repeating: 7, count: expected.count)
        try forwardAndBackward(model, labels: labels)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: storage, count: expected.count)), expected)
        XCTAssertTrue(own.buffer.allSatisfy { $0.isNaN }, "a layer wrote to the buffer the gradients left")
    }

    /// Float32 gradients summed through shared memory live in it; bfloat16 ones, which travel as
    /// messages, and those of workers on several hosts stay in the model's own buffer.
    func testTheStepPlacesGradientsOnlyWhereTheSharedSumRuns() throws {
        for (compression, shared, placed) in [(GradientCompression.none, true, true), (.bf16, true, false), (.none, false, false)] {
            let model = try Model<Float>(layers: [Dense<Float>(input: [4], outFeatures: 3, bias: true, initializer: LayerInit(), index: 0)], inputShape: [4])
            let communicator = OneHostCommunicator(sumsInSharedMemory: shared)
            let stepper = TrainingStep(model: model, optimizer: SGD(momentum: 0, dampening: 0, nesterov: false, weightDecay: 0,
                                                                    count: model.parameters.count),
                                       communicator: communicator, seed: 0, maxLocalBatch: 2)
            stepper.compression = compression
            try stepper.placeGradientsForSum()
            XCTAssertEqual(model.gradients.pointer == communicator.storage, placed, "\(compression), shared memory: \(shared)")
            XCTAssertEqual(communicator.storage != nil, placed)
        }
    }
}
