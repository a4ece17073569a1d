import XCTest
@testable import Cohort

/// The recurrent layers: backpropagation through time against central differences, shapes,
/// initialization and config. Their forward is checked against PyTorch in `PyTorchEquivalenceTests`.
extension GradientCheckTests {
    func testLSTMGradientsOverSeveralSteps() throws {
        for (sequences, bias) in [(false, true), (true, true), (false, false), (true, false)] {
            try checkGradients(LSTM<Double>(input: [4, 3], hiddenSize: 5, returnSequences: sequences, bias: bias,
                                            initializer: LayerInit(), index: 0), batch: 3)
        }
    }

    /// 18 hidden units: the cell steps' 16-wide vectors and their scalar tail in one row.
    func testLSTMGradientsWithVectorsAndATailOfHiddenUnits() throws {
        try checkGradients(LSTM<Double>(input: [3, 2], hiddenSize: 18, returnSequences: true, bias: true,
                                        initializer: LayerInit(), index: 0), batch: 2)
    }

    func testGRUGradientsOverSeveralSteps() throws {
        for (sequences, bias) in [(false, true), (true, true), (false, false), (true, false)] {
            try checkGradients(GRU<Double>(input: [4, 3], hiddenSize: 5, returnSequences: sequences, bias: bias,
                                           initializer: LayerInit(), index: 0), batch: 3)
        }
    }

    /// 18 hidden units: the cell steps' 16-wide vectors and their partial last vector in one row.
    func testGRUGradientsWithVectorsAndATailOfHiddenUnits() throws {
        try checkGradients(GRU<Double>(input: [3, 2], hiddenSize: 18, returnSequences: true, bias: true,
                                       initializer: LayerInit(), index: 0), batch: 2)
    }

    func testRNNGradientsOverSeveralSteps() throws {
        for nonlinearity in RNN<Double>.Nonlinearity.allCases {
            for (sequences, bias) in [(false, true), (true, true), (false, false), (true, false)] {
                try checkGradients(RNN<Double>(input: [5, 3], hiddenSize: 4, nonlinearity: nonlinearity, returnSequences: sequences,
                                               bias: bias, initializer: LayerInit(), index: 0), batch: 3)
            }
        }
    }

    /// lstm (every step) -> lstm (last step) -> dense, through the loss: stacking passes dL/dh of every step down.
    func testStackedLSTMModelGradientsThroughTheLoss() throws {
        try checkModelGradients(input: [5, 3], layers: """
                - lstm: {hidden_size: 4, return_sequences: true}
                - lstm: {hidden_size: 3, bias: false}
                - dense: {out_features: 3}
            """, labels: [0, 2, 1, 2])
    }

    func testStackedGRUAndRNNModelGradientsThroughTheLoss() throws {
        try checkModelGradients(input: [4, 2], layers: """
                - gru: {hidden_size: 4, return_sequences: true}
                - rnn: {hidden_size: 3, nonlinearity: relu, return_sequences: true}
                - flatten: {}
                - dense: {out_features: 3}
            """, labels: [1, 0, 2])
    }
}

final class RecurrentTests: XCTestCase {
    /// An LSTM, a GRU and an RNN reading [6, 3].
    func layers(_ returnSequences: Bool, hiddenSize: Int = 4, bias: Bool = true, initializer: LayerInit = LayerInit()) throws -> [any Layer<Double>] {
        [try LSTM<Double>(input: [6, 3], hiddenSize: hiddenSize, returnSequences: returnSequences, bias: bias, initializer: initializer, index: 0),
         try GRU<Double>(input: [6, 3], hiddenSize: hiddenSize, returnSequences: returnSequences, bias: bias, initializer: initializer, index: 0),
         try RNN<Double>(input: [6, 3], hiddenSize: hiddenSize, nonlinearity: .tanh, returnSequences: returnSequences, bias: bias,
                         initializer: initializer, index: 0)]
    }

    /// Binds `layer` to fresh buffers and initializes it; returns the parameters.
    func bound(_ layer: any Layer<Double>, seed: UInt64 = 1) -> Buffer<Double> {
        let count = layer.parameterShapes.reduce(0) { $0 + $1.count }
        let parameters = Buffer<Double>(count: count), gradients = Buffer<Double>(count: count)
        layer.bind(parameters: parameters.pointer, gradients: gradients.pointer)
        layer.initialize(seed: seed, layerIndex: 2)
        return parameters
    }

    func testTensorsHavePyTorchsNamesAndShapes() throws {
        let expected = [("lstm", 4), ("gru", 3), ("rnn", 1)]
        for (layer, (kind, gates)) in zip(try layers(false), expected) {
            XCTAssertEqual(layer.kind, kind)
            XCTAssertEqual(layer.parameterShapes, [ParameterShape("weight_ih_l0", [gates * 4, 3]), ParameterShape("weight_hh_l0", [gates * 4, 4]),
                                                   ParameterShape("bias_ih_l0", [gates * 4]), ParameterShape("bias_hh_l0", [gates * 4])])
            XCTAssertEqual(layer.outputShape, [4])
        }
        for layer in try layers(true, bias: false) {
            XCTAssertEqual(layer.parameterShapes.map(\.name), ["weight_ih_l0", "weight_hh_l0"])
            XCTAssertEqual(layer.outputShape, [6, 4])
        }
    }

    /// With return_sequences the last row of each sample is the last hidden state; samples of a
    /// batch do not see each other (the batch-first strides are right).
    func testSequencesEndInTheLastStateAndSamplesAreIndependent() throws {
        let context = StepContext(isTraining: true, seed: 1, step: 0, firstSampleIndex: 0, globalBatch: 3, communicator: SoloCommunicator())
        for (last, all) in zip(try layers(false), try layers(true)) {
            let a = bound(last), b = bound(all)
            XCTAssertEqual(Array(a.buffer), Array(b.buffer))
            last.reserve(maxBatch: 3); all.reserve(maxBatch: 3)
            let random = CounterRandom(5)
            let x = (0..<(3 * 18)).map { random.normal(UInt64($0)) }
            var y = [Double](repeating: 0, count: 3 * 4), sequence = [Double](repeating: 0, count: 3 * 24)
            try last.forward(x, &y, batch: 3, context: context)
            try all.forward(x, &sequence, batch: 3, context: context)
            for n in 0..<3 {
                XCTAssertEqual(Array(y[(n * 4)..<(n * 4 + 4)]), Array(sequence[(n * 24 + 20)..<(n * 24 + 24)]), last.kind)
                var alone = [Double](repeating: 0, count: 4)
                try last.forward(Array(x[(n * 18)..<(n * 18 + 18)]), &alone, batch: 1, context: context)
                XCTAssertLessThan(relativeError(alone, Array(y[(n * 4)..<(n * 4 + 4)])), 1e-12, last.kind)
            }
            XCTAssertGreaterThan(Set(y).count, 6, "\(last.kind): outputs are degenerate")
        }
    }

    /// PyTorch's default: all four tensors U(-1/sqrt(H), 1/sqrt(H)), whatever the input size.
    func testDefaultInitializationIsPyTorchs() throws {
        for layer in try layers(false, hiddenSize: 25) {
            let parameters = bound(layer)
            var offset = 0
            for shape in layer.parameterShapes {
                let values = Array(parameters.buffer[offset..<(offset + shape.count)])
                XCTAssertLessThanOrEqual(values.map(abs).max()!, 0.2, "\(layer.kind).\(shape.name)")
                XCTAssertGreaterThan(values.map(abs).max()!, 0.15, "\(layer.kind).\(shape.name)")
                XCTAssertLessThan(values.filter { $0 < 0 }.count, shape.count * 3 / 4, "\(layer.kind).\(shape.name)")
                offset += shape.count
            }
        }
    }

    /// `init: orthogonal` fills each weight with orthonormal columns ([G*H, H] with G*H >= H); biases start at zero.
    func testOrthogonalInitializationAndZeroBiases() throws {
        for layer in try layers(false, initializer: LayerInit(weight: .orthogonal(gain: 1))) {
            let parameters = bound(layer)
            let shapes = layer.parameterShapes
            let hh = shapes[1].shape, offset = shapes[0].count
            for i in 0..<hh[1] {
                for j in 0..<hh[1] {
                    var dot = 0.0
                    for r in 0..<hh[0] { dot += parameters.pointer[offset + r * hh[1] + i] * parameters.pointer[offset + r * hh[1] + j] }
                    XCTAssertEqual(dot, i == j ? 1 : 0, accuracy: 1e-9, "\(layer.kind).weight_hh_l0 columns \(i), \(j)")
                }
            }
            let biases = shapes[0].count + shapes[1].count
            XCTAssertEqual(Array(parameters.buffer[biases...]), [Double](repeating: 0, count: shapes[2].count * 2), layer.kind)
        }
    }

    func testInputThatIsNotASequenceNamesTheLayer() throws {
        let config = ModelConfig(input: [1, 28, 28], layers: [.lstm(hiddenSize: 8, returnSequences: false, bias: true, initializer: LayerInit()),
                                                                .dense(outFeatures: 10, bias: true, initializer: LayerInit())])
        XCTAssertThrowsError(try Model<Float>(config)) { error in
            let message = (error as? CohortError)?.message ?? ""
            XCTAssertTrue(message.hasPrefix("model.layers[0] (lstm): expects an input [T, F] (time steps, features), got [1, 28, 28]"), message)
            XCTAssertTrue(message.contains("[28, 28]"), message)
        }
        var flat = config
        flat.input = [28, 28]
        flat.layers.insert(.flatten, at: 0)
        XCTAssertThrowsError(try Model<Float>(flat)) { error in
            XCTAssertEqual((error as? CohortError)?.message, "model.layers[1] (lstm): expects an input [T, F] (time steps, features), got [784]")
        }
        var stacked = config
        stacked.input = [28, 28]
        stacked.layers.insert(.gru(hiddenSize: 8, returnSequences: false, bias: true, initializer: LayerInit()), at: 0)
        XCTAssertThrowsError(try Model<Float>(stacked)) { error in
            XCTAssertEqual((error as? CohortError)?.message,
                           "model.layers[1] (lstm): expects an input [T, F] (time steps, features), got [8]; give model.layers[0] return_sequences: true to pass it every step")
        }
    }

    /// The recurrent cells' tanh: close to the C library's in Float, and to rounding in Double
    /// (the gradient checks rely on 1 - y^2 being its derivative).
    func testFastTanhIsCloseToTanh() {
        var worstFloat = 0.0, worstDouble = 0.0
        for i in -200_000...200_000 {
            let v = Double(i) * 1e-4
            let exact = Double.tanh(v)
            worstFloat = max(worstFloat, abs(Double(fastTanh(Float(v))) - Double.tanh(Double(Float(v)))))
            worstDouble = max(worstDouble, abs(fastTanh(v) - exact) / max(abs(exact), 1e-300))
        }
        XCTAssertLessThan(worstFloat, 2e-7)
        XCTAssertLessThan(worstDouble, 1e-12)
        XCTAssertEqual(fastTanh(Float(100)), 1)
        XCTAssertEqual(fastTanh(-Float.infinity), -1)
        XCTAssertTrue(fastTanh(Float.nan).isNaN)
    }

    /// The gates' exp (Cephes' polynomial, vectorisable): within 2 ulp of e^v over the range it
    /// keeps, clamped outside it; and the sigmoid built on it within 1.2e-7 of the exact one.
    func testVectorizableExpAndSigmoidAreCloseToExact() {
        var worstExp = 0.0, worstSigmoid = 0.0
        for i in -870_000...880_000 {
            let v = Float(Double(i) * 1e-4)
            let exact = Double.exp(Double(v))
            worstExp = max(worstExp, abs(Double(Float.vectorizableExp(v)) - exact) / exact)
            worstSigmoid = max(worstSigmoid, abs(Double(sigmoid(v)) - 1 / (1 + Double.exp(-Double(v)))))
        }
        XCTAssertLessThan(worstExp, 2.4e-7)
        XCTAssertLessThan(worstSigmoid, 1.2e-7)
        XCTAssertEqual(Float.vectorizableExp(0), 1)
        XCTAssertEqual(Float.vectorizableExp(-1000), Float.vectorizableExp(-87))
        XCTAssertTrue(Float.vectorizableExp(1000).isFinite)
        XCTAssertEqual(sigmoid(Float(-1000)), 0, accuracy: 1e-37)
        XCTAssertEqual(sigmoid(Float(1000)), 1)
    }

    /// The `lstm` benchmark workload: LSTM 28 -> 128 on [28, 28], last state, dense 128 -> 10.
    func testLSTMWorkloadBuilds() throws {
        let model = try Model<Float>(try Workload.lstm.model)
        XCTAssertEqual(model.inputShape, [28, 28])
        XCTAssertEqual(model.stateTensors().map(\.name), ["0.weight_ih_l0", "0.weight_hh_l0", "0.bias_ih_l0", "0.bias_hh_l0", "1.weight", "1.bias"])
        XCTAssertEqual(model.parameters.count, 4 * 128 * (28 + 128 + 2) + 128 * 10 + 10)
    }
}

extension ConfigTests {
    func recurrentConfig(_ layer: String) -> String {
        """
        data: {train: {images: a, labels: b}}
        model:
          input: [28, 28]
          layers:
            - \(layer)
            - dense: {out_features: 10}
        train: {batch_size: 64, max_steps: 100}
        """
    }

    func testRecurrentLayersAreRead() throws {
        func spec(_ layer: String) throws -> LayerSpec { try ConfigLoader.parse(recurrentConfig(layer), file: "c.yaml").model.layers[0] }
        XCTAssertEqual(try spec("lstm: {hidden_size: 128}"), .lstm(hiddenSize: 128, returnSequences: false, bias: true, initializer: LayerInit()))
        XCTAssertEqual(try spec("gru: {hidden_size: 3, return_sequences: true, bias: false, init: orthogonal}"),
                       .gru(hiddenSize: 3, returnSequences: true, bias: false, initializer: LayerInit(weight: .orthogonal(gain: 1))))
        XCTAssertEqual(try spec("rnn: {hidden_size: 7, nonlinearity: relu, init: he_normal, bias_init: 0.1}"),
                       .rnn(hiddenSize: 7, nonlinearity: .relu, returnSequences: false, bias: true,
                            initializer: LayerInit(weight: .heNormal, bias: .constant(0.1))))
        XCTAssertEqual(try spec("rnn: {hidden_size: 7}"),
                       .rnn(hiddenSize: 7, nonlinearity: .tanh, returnSequences: false, bias: true, initializer: LayerInit()))
    }

    func testRecurrentLayerMistakesAreNamed() {
        var m = message(recurrentConfig("lstm: {}"))
        XCTAssertTrue(m.contains("model.layers[0].lstm.hidden_size: missing"), m)
        m = message(recurrentConfig("gru: {hidden_size: 0}"))
        XCTAssertTrue(m.contains("model.layers[0].gru.hidden_size: must be"), m)
        m = message(recurrentConfig("rnn: {hidden_size: 4, nonlinearity: sigmoid}"))
        XCTAssertTrue(m.contains("model.layers[0].rnn.nonlinearity: unknown nonlinearity 'sigmoid' (expected tanh or relu)"), m)
        m = message(recurrentConfig("lstm: {hidden_size: 4, nonlinearity: relu}"))
        XCTAssertTrue(m.contains("model.layers[0].lstm.nonlinearity: unknown key"), m)
        m = message(recurrentConfig("lstm: {hidden_size: 4, return_sequence: true}"))
        XCTAssertTrue(m.contains("model.layers[0].lstm.return_sequence: unknown key"), m)
    }
}
