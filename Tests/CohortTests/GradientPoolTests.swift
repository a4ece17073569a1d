import XCTest
@testable import Cohort

/// The gradients of the layers' outputs share two buffers per depth of nesting (`GradientPool`):
/// backward must give what buffers of their own give, and `keepsActivationGradients` must keep
/// every layer's for the debug probes.
final class GradientPoolTests: XCTestCase {
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

    /// Asked for after the buffers are made, the model makes them again at the next reserve.
    func testKeepingActivationGradientsAfterReserveTakesEffect() throws {
        let model = try step(keepingActivationGradients: false)
        model.keepsActivationGradients = true
        model.reserve(maxBatch: 4)
        XCTAssertGreaterThanOrEqual(Set((1..<model.layers.count).map { model.activationGradient($0) }).count, 6)
    }
}
