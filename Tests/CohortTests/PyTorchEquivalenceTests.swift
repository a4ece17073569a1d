import Foundation
import XCTest
@testable import Cohort

/// Cohort's trainer against PyTorch in float64 on the same initial weights, data and batches
/// (fixtures from `Fixtures/make_fixtures.py`): after 12 steps of each optimizer, schedule, clipping
/// and batch flavour, every weight and running statistic agrees within 1e-4 of the tensor's
/// largest magnitude.
final class PyTorchEquivalenceTests: XCTestCase {
    func trainFixture(_ name: String) throws { try checkAgainstPyTorch(fixture: name, in: self) }

    func testConvNetWithMomentumAndWeightDecayMatchesPyTorch() throws { try trainFixture("cnn_momentum") }
    func testConvNetWithNesterovMatchesPyTorch() throws { try trainFixture("cnn_nesterov") }
    func testMLPWithNesterovAndWeightDecayMatchesPyTorch() throws { try trainFixture("mlp_nesterov") }
    func testMLPWithDampeningAndWarmupCosineMatchesPyTorch() throws { try trainFixture("mlp_dampening_cosine") }
    func testMLPWithPlainSGDAndStepScheduleMatchesPyTorch() throws { try trainFixture("mlp_plain_step") }

    func testConvNetWithAdamAndDefaultBetasMatchesPyTorch() throws { try trainFixture("cnn_adam") }
    func testMLPWithAdamAMSGradAndL2WeightDecayMatchesPyTorch() throws { try trainFixture("mlp_adam_amsgrad_decay") }
    func testMLPWithAdamWAndDefaultDecoupledDecayMatchesPyTorch() throws { try trainFixture("mlp_adamw") }
    func testMLPWithRMSpropDefaultsMatchesPyTorch() throws { try trainFixture("mlp_rmsprop") }
    func testConvNetWithCenteredRMSpropAndMomentumMatchesPyTorch() throws { try trainFixture("cnn_rmsprop_centered_momentum") }
    func testMLPWithAdagradLRDecayAndInitialAccumulatorMatchesPyTorch() throws { try trainFixture("mlp_adagrad") }
    /// max_norm 1.2: PyTorch clips 7 of the 12 steps, so both sides of min(1, max_norm / norm) are run.
    func testConvNetWithSGDAndGradientClippingMatchesPyTorch() throws { try trainFixture("cnn_sgd_clip") }
    func testMLPWithAdamAndWarmupStepScheduleMatchesPyTorch() throws { try trainFixture("mlp_adam_step") }
    /// Batch gradient descent: every step sees all 48 samples.
    func testFullBatchGradientDescentMatchesPyTorch() throws { try trainFixture("mlp_full_batch") }
    /// Stochastic gradient descent: one sample per step (batch norm over the 8x8 maps of that sample).
    func testStochasticGradientDescentWithBatchOfOneMatchesPyTorch() throws { try trainFixture("cnn_stochastic") }

    func testLSTMWithMomentumAndWeightDecayMatchesPyTorch() throws { try trainFixture("lstm_momentum") }
    func testGRUWithNesterovMatchesPyTorch() throws { try trainFixture("gru_nesterov") }
    func testRNNWithDampeningAndWarmupCosineMatchesPyTorch() throws { try trainFixture("rnn_dampening_cosine") }
    func testStackedLSTMSequencesIntoReLURNNMatchesPyTorch() throws { try trainFixture("lstm_rnn_relu_stacked") }
    func testLSTMWithAdamMatchesPyTorch() throws { try trainFixture("lstm_adam") }
    func testGRUWithRMSpropAndMomentumMatchesPyTorch() throws { try trainFixture("gru_rmsprop") }
    /// max_norm 0.5: PyTorch clips 3 of the 12 steps.
    func testRNNWithAdamWAndGradientClippingMatchesPyTorch() throws { try trainFixture("rnn_adamw_clip") }

    /// Identity and projection shortcuts, stride 2, batch norm in body and shortcut, global average pooling.
    func testResidualNetWithNesterovMatchesPyTorch() throws { try trainFixture("resnet_nesterov") }
    func testResidualNetWithAdamMatchesPyTorch() throws { try trainFixture("resnet_adam") }
    /// A block inside a body, a shortcut of one biased 1x1 convolution, adaptive pooling to 3 x 2 of a 5 x 5 map.
    func testNestedResidualNetWithCosineScheduleMatchesPyTorch() throws { try trainFixture("resnet_nested_cosine") }
}

/// Trains fixture `name` (12 steps) and checks every tensor against PyTorch's within 1e-4 of its scale.
func checkAgainstPyTorch(fixture name: String, in test: XCTestCase) throws {
    let directory = try temporaryDirectory(test)
    var config = try ConfigLoader.load(path: fixtureDirectory.appendingPathComponent("\(name).yaml").path)
    config.checkpoint.dir = directory.path
    let summary = try Trainer(config: config, communicator: SoloCommunicator(), log: { _ in }).run(resume: .fresh)
    XCTAssertEqual(summary.steps, 12)
    let written = try SafeTensors.read(path: directory.appendingPathComponent("checkpoints/12/model.safetensors").path).tensors
    let expected = try SafeTensors.read(path: fixtureDirectory.appendingPathComponent("\(name)-expected.safetensors").path).tensors
    XCTAssertEqual(Set(written.keys), Set(expected.keys), "\(name): state-dict names differ from PyTorch's")
    for (key, reference) in expected {
        let ours = try XCTUnwrap(written[key], "\(name): \(key) missing")
        XCTAssertEqual(ours.shape, reference.shape, "\(name): \(key) shape")
        if key.hasSuffix("num_batches_tracked") {
            XCTAssertEqual(ours.int64s(), reference.int64s(), "\(name): \(key)")
            continue
        }
        let error = relativeError(ours.doubles(), reference.doubles())
        XCTAssertLessThan(error, 1e-4, "\(name): \(key) differs from PyTorch by \(error) relative")
    }
}
