import Foundation

/// What every view of `cohort inspect` shares: the model in inference mode, the test set (if
/// any), and the output directory its PNGs go to.
///
/// The views see only the model's top-level layers, through `Model`'s public API: they recognise
/// convolutions (and layers of kind `residual`) by kind and recurrent layers by type, and pass
/// over every other layer.
final class InspectionContext {
    let model: Model<Float>
    let test: Dataset?
    let output: URL
    /// The largest batch of a forward pass here.
    let chunk: Int
    private(set) var written: [String] = []

    /// `chunk`: the largest batch that fits (`Model.inferenceBatch`); the views read every layer's
    /// activations, so the model keeps them as training does.
    init(model: Model<Float>, test: Dataset?, output: URL, chunk: Int) {
        self.model = model
        self.test = test
        self.output = output
        self.chunk = chunk
        model.reserve(maxBatch: chunk)
    }

    /// Inference mode: running batch-norm statistics, no dropout.
    func forward(batch: Int) throws {
        let context = StepContext(isTraining: false, seed: 0, step: 0, firstSampleIndex: 0, globalBatch: batch,
                                  communicator: SoloCommunicator())
        try model.forward(batch: batch, context: context)
    }

    /// Puts test samples `indices` (at most `chunk`) into the model's input; returns their labels.
    func load<Indices: Collection<Int>>(_ indices: Indices) throws -> [Int] {
        guard let test else { return [] }
        precondition(indices.count <= chunk)
        var labels = [Int32](repeating: 0, count: indices.count)
        try labels.withUnsafeMutableBufferPointer { try test.gather(Array(indices)[...], into: model.input, labels: $0.baseAddress!) }
        return labels.map(Int.init)
    }

    /// Writes `picture` as `name` (a file name of letters, digits, `-` and `.`) and returns its figure.
    func figure(_ picture: Picture, name: String, caption: String) throws -> InspectPage.Figure {
        try PNGWriter.write(output.appendingPathComponent(name), width: picture.width, height: picture.height,
                            colour: picture.colour, pixels: picture.pixels)
        written.append(name)
        return InspectPage.Figure(file: name, caption: caption)
    }

    /// The picture of one model input, `values` `[inputShape]`, with `data.normalize` undone and
    /// scaled to its own range: an image `[C, H, W]` in grey (C = 1, or the mean of the channels
    /// when C is not 3) or colour (C = 3), a sequence `[T, F]` as T rows of F values.
    func inputPicture(_ normalised: [Float]) -> Picture {
        let values = unnormalised(normalised)
        let shape = model.inputShape
        switch shape.count {
        case 3 where shape[0] == 3:
            return Picture.colour(values, width: shape[2], height: shape[1])
        case 3:
            let plane = shape[1] * shape[2]
            let mean = (0..<plane).map { i in (0..<shape[0]).reduce(Float(0)) { $0 + values[$1 * plane + i] } / Float(shape[0]) }
            return Picture.greyscale(mean, width: shape[2], height: shape[1])
        case 2:
            return Picture.greyscale(values, width: shape[1], height: shape[0])
        default:
            return Picture.greyscale(values, width: values.count, height: 1)
        }
    }

    /// `values` as the data gave them before `data.normalize`: `x * std[c] + mean[c]` in channel c,
    /// so that a picture of a normalised colour image keeps the image's balance of colours.
    private func unnormalised(_ values: [Float]) -> [Float] {
        guard let transform = test?.transform, let mean = transform.mean, let std = transform.std else { return values }
        let plane = values.count / transform.channels
        return values.indices.map { values[$0] * std[$0 / plane] + mean[$0 / plane] }
    }

    /// The model's input of sample `row` of the last batch loaded.
    func input(row: Int) -> [Float] {
        let size = model.inputSize
        return Array(UnsafeBufferPointer(start: model.input + row * size, count: size))
    }

    /// A whole number by which to enlarge a picture `size` pixels across so that it is about `target`.
    static func factor(for size: Int, target: Int) -> Int { max(1, target / max(size, 1)) }

    /// Layers that act on each value alone (or normalise it) and keep the shape: a convolution's
    /// maps are shown after them, as the next layer sees them.
    static let elementwiseKinds: Set<String> = ["batchnorm", "relu", "sigmoid", "tanh", "dropout"]

    /// A convolution-like layer with image maps: `conv2d`, and `residual` blocks once they exist.
    static let mapKinds: Set<String> = ["conv2d", "residual"]

    /// Why the views of maps are empty when `mapStages` is.
    static let noMapsNote = "Skipped: no top-level conv2d or residual layer of the model gives maps [C, H, W]."

    /// Every layer whose output is image maps `[C, H, W]` of a convolution or residual block, with
    /// the index of the last element-wise layer right after it (its maps are read there).
    var mapStages: [(layer: Int, through: Int)] {
        let layers = model.layers
        var stages: [(Int, Int)] = []
        for (index, layer) in layers.enumerated() where InspectionContext.mapKinds.contains(layer.kind) && layer.outputShape.count == 3 {
            var end = index
            while end + 1 < layers.count, InspectionContext.elementwiseKinds.contains(layers[end + 1].kind),
                  layers[end + 1].outputShape == layer.outputShape { end += 1 }
            stages.append((index, end))
        }
        return stages
    }

    /// `model.layers[0] conv2d`, or `model.layers[0] conv2d to [2] relu` for a stage.
    func describeStage(_ stage: (layer: Int, through: Int)) -> String {
        let first = "model.layers[\(stage.layer)] \(model.layers[stage.layer].kind)"
        guard stage.through > stage.layer else { return first }
        return first + " to [\(stage.through)] \(model.layers[stage.through].kind)"
    }
}
