import XCTest
@testable import Cohort

/// The gradients of the layers' outputs share two buffers per depth of nesting (`BufferPool`):
/// backward must give what buffers of their own give, and `keepsActivationGradients` must keep
/// every layer's for the debug probes. Reserved for inference, the outputs themselves take turns
/// in such buffers, and must give what training's buffers give.
final class BufferPoolTests: XCTestCase {
    let layers = """
            - conv2d: {out_channels: 3, kernel_size: 3, padding: 1, bias: false}
            - batchnorm: {}
            - relu: {}
            - residual:
                body:
                  - conv2d: {out_channels: 3, kernel_size: 3, padding: 1, bias: false}
                  - batchnorm: {}
                  - relu: {}
                  - residual:
                      body:
                        - conv2d: {out_channels: 3, kernel_size: 3, padding: 1}
                        - tanh: {}
                        - conv2d: {out_channels: 3, kernel_size: 3, padding: 1}
                  - batchnorm: {}
            - relu: {}
            - residual:
                body:
                  - conv2d: {out_channels: 4, kernel_size: 3, stride: 2, padding: 1}
                  - sigmoid: {}
                  - conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
                shortcut:
                  - conv2d: {out_channels: 4, kernel_size: 1, stride: 2}
                  - batchnorm: {}
            - flatten: {}
            - dense: {out_features: 5}
            - tanh: {}
            - dense: {out_features: 3}
        """

    /// One training step's forward and backward; returns the model.
    func step(keepingActivationGradients keeps: Bool) throws -> Model<Double> {
        let labels: [Int32] = [2, 0, 1, 2]
        let model = try modelOnRandomInput(input: [2, 6, 6], layers: layers, batch: labels.count, seed: 5, inputSeed: 13,
                                           keepsActivationGradients: keeps)
        try forwardAndBackward(model, labels: labels)
        return model
    }

    func testSharedGradientBuffersGiveTheGradientsOfBuffersOfTheirOwn() throws {
        let shared = try step(keepingActivationGradients: false), own = try step(keepingActivationGradients: true)
        XCTAssertEqual(Array(shared.gradients.buffer), Array(own.gradients.buffer))
        XCTAssertTrue(shared.gradients.buffer.contains { $0 != 0 })
    }

    func testKeptActivationGradientsAreEveryLayersOwn() throws {
        let model = try step(keepingActivationGradients: true)
        let pointers = (1..<model.layers.count).map { model.activationGradient($0) }
        // Flatten and the ReLUs after batch norm share their input's buffers; every other layer has its own.
        XCTAssertGreaterThanOrEqual(Set(pointers).count, 6)
        // The output gradient of the first dense layer's tanh is still there after backward: not zero.
        let tanh = model.layers.count - 2
        XCTAssertTrue((0..<(4 * model.layers[tanh].outputSize)).contains { model.activationGradient(tanh + 1)![$0] != 0 })
        let pooled = try step(keepingActivationGradients: false)
        let pooledPointers = Set((1..<pooled.layers.count).map { pooled.activationGradient($0) })
        XCTAssertLessThanOrEqual(pooledPointers.count, 4)
    }

    /// The same weights and running statistics, reserved for training and for inference: the same
    /// outputs in inference mode, bit for bit, for residual blocks nested two deep (fused ReLUs,
    /// a projection shortcut, a flatten, a dropout) and for a recurrent model; the inference
    /// model's buffers are fewer, and reserved for training again it trains.
    func testAModelReservedForInferenceGivesTheOutputsOfOneReservedForTraining() throws {
        let recurrent = """
                - lstm: {hidden_size: 6}
                - dropout: {p: 0.5}
                - dense: {out_features: 3}
            """
        let convolutional = layers.replacingOccurrences(of: "- flatten: {}", with: "- flatten: {}\n    - dropout: {p: 0.3}")
        for (input, layers) in [([2, 6, 6], convolutional), ([5, 4], recurrent)] {
            let batch = 4
            let training = try modelOnRandomInput(input: input, layers: layers, batch: batch, seed: 5, inputSeed: 13)
            let inference = try inlineModel(input: input, layers: layers)
            inference.initialize(seed: 5)
            inference.reserveForInference(maxBatch: batch)
            XCTAssertTrue(inference.reservedForInference)
            inference.input.update(from: training.input, count: batch * training.inputSize)
            let random = CounterRandom(29)
            var drawn: UInt64 = 0
            for (mine, theirs) in zip(training.stateTensors(), inference.stateTensors()) {
                guard case .scalars(let raw) = mine.storage, case .scalars(let other) = theirs.storage,
                      mine.name.contains("running") else { continue }
                let values = raw.assumingMemoryBound(to: Double.self), copies = other.assumingMemoryBound(to: Double.self)
                for i in 0..<mine.count {
                    let value = random.normal(drawn)
                    drawn += 1
                    values[i] = mine.holdsVariances ? 0.5 + value * value : value
                    copies[i] = values[i]
                }
            }
            let context = StepContext(isTraining: false, seed: 1, step: 0, firstSampleIndex: 0, globalBatch: batch,
                                      communicator: SoloCommunicator())
            try training.forward(batch: batch, context: context)
            try inference.forward(batch: batch, context: context)
            let outputs = batch * training.outputShape.reduce(1, *)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: inference.output, count: outputs)),
                           Array(UnsafeBufferPointer(start: training.output, count: outputs)), "\(input)")
            XCTAssertTrue((0..<outputs).contains { inference.output[$0] != 0 })
            XCTAssertLessThan(inference.inferenceBytes(maxBatch: batch), training.activationBytes(maxBatch: batch))
            if drawn == 0 { XCTAssertEqual(input, [5, 4], "the convolutional model's batch norms were not found") }

            inference.reserve(maxBatch: batch)
            XCTAssertFalse(inference.reservedForInference)
            try forwardAndBackward(inference, labels: [2, 0, 1, 2])
            XCTAssertTrue(inference.gradients.buffer.contains { $0 != 0 })
        }
    }

    /// Asked for after the buffers are made, the model makes them again at the next reserve.
    func testKeepingActivationGradientsAfterReserveTakesEffect() throws {
        let model = try step(keepingActivationGradients: false)
        model.keepsActivationGradients = true
        model.reserve(maxBatch: 4)
        XCTAssertGreaterThanOrEqual(Set((1..<model.layers.count).map { model.activationGradient($0) }).count, 6)
    }
}
