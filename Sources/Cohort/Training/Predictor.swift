/// Class probabilities for unlabelled images, the model in inference mode (running statistics, no dropout).
public enum Predictor {
    /// Reads the IDX images at `path` and checks that each is one input of the model (`inputShape`).
    public static func readImages(path: String, inputShape: [Int]) throws -> IDXFile {
        let images = try IDXFile(path: path)
        guard images.dimensions.count >= 2 else {
            throw CohortError("\(path): expected images [count, rows, columns], got \(describe(images.dimensions)) (is this a labels file?)")
        }
        guard images.dimensions[0] > 0 else { throw CohortError("\(path): holds no images") }
        let shape = Array(images.dimensions.dropFirst())
        let size = shape.reduce(1, *), expected = inputShape.reduce(1, *)
        guard size == expected else {
            throw CohortError("\(path): images are \(describe(shape)) (\(size) values) but model.input \(describe(inputShape)) needs \(expected)")
        }
        return images
    }

    /// Calls `each(index, label, probabilities)` for every image in file order; pixels are multiplied by `scale`.
    public static func predict(model: Model<Float>, images: IDXFile, scale: Double, chunk: Int = 256,
                               _ each: (Int, Int, [Double]) throws -> Void) throws {
        let count = images.dimensions[0], size = model.inputSize, classes = model.classes
        model.reserve(maxBatch: chunk)
        let context = StepContext(isTraining: false, seed: 0, step: 0, firstSampleIndex: 0, globalBatch: count,
                                  communicator: SoloCommunicator())
        var start = 0
        while start < count {
            let batch = min(chunk, count - start)
            // As `Dataset.gather` scales, so that a test image gets the same input as in `cohort eval`.
            let factor = Float(scale)
            images.bytes.withUnsafeBufferPointer { pixels in
                for i in 0..<(batch * size) { model.input[i] = Float(pixels[start * size + i]) * factor }
            }
            try model.forward(batch: batch, context: context)
            for n in 0..<batch {
                let probabilities = softmax(model.output + n * classes, count: classes)
                try each(start + n, argmax(model.output + n * classes, count: classes), probabilities)
            }
            start += batch
        }
    }

    /// exp(x - max) / sum, in Double.
    static func softmax(_ logits: UnsafePointer<Float>, count: Int) -> [Double] {
        var largest = Double(logits[0])
        for j in 1..<count { largest = max(largest, Double(logits[j])) }
        let exponentials = (0..<count).map { Double.exp(Double(logits[$0]) - largest) }
        let sum = exponentials.reduce(0, +)
        return exponentials.map { $0 / sum }
    }
}
