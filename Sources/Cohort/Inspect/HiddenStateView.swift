/// The hidden state of each recurrent layer (LSTM, GRU, RNN) over the time steps of a few test
/// samples: which units switch on at which step of the sequence.
///
/// A layer that returns only its last state is run again beside the model with
/// `return_sequences` on, over the same input and bound to the same weights, so that every step's
/// h_t `[T, H]` is kept. Picture: time steps top to bottom (for a digit read row by row, row t of
/// the input is step t), units left to right, blue for -limit, white for 0, red for +limit, where
/// limit is the largest |h| of the picture.
enum HiddenStateView {
    static func section(_ context: InspectionContext, samples: Int) throws -> InspectPage.Section {
        var section = InspectPage.Section(
            title: "Hidden state over time",
            text: "For each recurrent layer and each of the first test samples: its input beside the hidden state h_t of every time step (rows: steps, top to bottom; columns: units; blue negative, white 0, red positive).")
        let model = context.model
        let recurrent = model.layers.indices.filter { ["lstm", "gru", "rnn"].contains(model.layers[$0].kind) }
        guard let test = context.test else {
            section.notes.append("Skipped: the config has no data.test.")
            return section
        }
        guard !recurrent.isEmpty else {
            section.notes.append("Skipped: the model has no recurrent layer (lstm, gru, rnn) at the top level.")
            return section
        }
        let count = min(samples, test.count, context.chunk)
        let labels = try context.load(0..<count)
        try context.forward(batch: count)
        for index in recurrent {
            guard let (probe, probeGradients) = try sequenceProbe(model, layer: index) else {
                section.notes.append("model.layers[\(index)] \(model.layers[index].kind): not shown (an unknown recurrent layer type).")
                continue
            }
            let steps = probe.outputShape[0], hidden = probe.outputShape[1]
            let states = Buffer<Float>(count: count * steps * hidden)
            probe.reserve(maxBatch: count)
            let stepContext = StepContext(isTraining: false, seed: 0, step: 0, firstSampleIndex: 0, globalBatch: count,
                                          communicator: SoloCommunicator())
            try probe.forward(model.activation(index), states.pointer, batch: count, context: stepContext)
            withExtendedLifetime(probeGradients) {}
            let inputShape = model.layers[index].inputShape
            let inputSize = inputShape.reduce(1, *)
            let factor = max(2, InspectionContext.factor(for: steps, target: 112))
            for n in 0..<count {
                let input = Array(UnsafeBufferPointer(start: model.activation(index) + n * inputSize, count: inputSize))
                let h = Array(UnsafeBufferPointer(start: states.pointer + n * steps * hidden, count: steps * hidden))
                let limit = h.reduce(Float(0)) { max($0, abs($1)) }
                let inputPicture = Picture.greyscale(input, width: inputShape[1], height: inputShape[0]).rgb.upscaled(by: factor)
                let statePicture = Picture.diverging(h, width: hidden, height: steps, limit: limit).upscaled(by: factor)
                var both = Picture(width: inputPicture.width + 8 + statePicture.width, height: max(inputPicture.height, statePicture.height),
                                   colour: .rgb, fill: 255)
                both.paste(inputPicture, x: 0, y: 0)
                both.paste(statePicture, x: inputPicture.width + 8, y: 0)
                let caption = String(format: "test sample %d, label %d: model.layers[%d] %@, input %@ (left) and h_t of %d steps x %d units (right), |h| up to %.3g",
                                     n, labels[n], index, model.layers[index].kind, describe(inputShape), steps, hidden, limit)
                section.figures.append(try context.figure(both, name: "hidden-\(n)-layer\(index).png", caption: caption))
            }
        }
        return section
    }

    /// A copy of recurrent layer `index` that returns every step's state, on the model's own weights,
    /// with gradient buffers of its own (forward never writes them, but nothing may touch the model's).
    static func sequenceProbe(_ model: Model<Float>, layer index: Int) throws -> (any Layer<Float>, Buffer<Float>)? {
        let layer = model.layers[index]
        let shapes = layer.parameterShapes
        guard let recurrent = shapes.first(where: { $0.name == "weight_hh_l0" }), recurrent.shape.count == 2,
              let weights = model.parameterPointer(layer: index, name: shapes[0].name) else { return nil }
        let hidden = recurrent.shape[1], bias = shapes.count == 4
        let probe: any Layer<Float>
        switch layer {
        case is LSTM<Float>:
            probe = try LSTM<Float>(input: layer.inputShape, hiddenSize: hidden, returnSequences: true, bias: bias, initializer: LayerInit(), index: LayerPlace(integerLiteral: index))
        case is GRU<Float>:
            probe = try GRU<Float>(input: layer.inputShape, hiddenSize: hidden, returnSequences: true, bias: bias, initializer: LayerInit(), index: LayerPlace(integerLiteral: index))
        case let rnn as RNN<Float>:
            probe = try RNN<Float>(input: layer.inputShape, hiddenSize: hidden, nonlinearity: rnn.nonlinearity, returnSequences: true,
                                   bias: bias, initializer: LayerInit(), index: LayerPlace(integerLiteral: index))
        default:
            return nil
        }
        let gradients = Buffer<Float>(count: shapes.reduce(0) { $0 + $1.count })
        probe.bind(parameters: weights, gradients: gradients.pointer)
        return (probe, gradients)
    }
}
