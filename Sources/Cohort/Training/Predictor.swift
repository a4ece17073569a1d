/// Class probabilities for unlabelled images, the model in inference mode (running statistics, no dropout).
public enum Predictor {
    /// Reads the IDX or `.npy` images at `path` and checks that each is one input of the model (`inputShape`).
    public static func readImages(path: String, inputShape: [Int]) throws -> SampleSource {
        try SampleSource(images: StoredArray.open(path: path), inputShape: inputShape)
    }

    /// Calls `each(index, label, probabilities)` for every image in file order, transformed as in
    /// evaluation (scaled and normalised, never augmented).
    public static func predict(model: Model<Float>, images: SampleSource, transform: InputTransform, chunk: Int = 256,
                               _ each: (Int, Int, [Double]) throws -> Void) throws {
        let count = images.count, classes = model.classes
        let chunk = try model.inferenceBatch(upTo: min(chunk, max(count, 1)))
        model.reserveForInference(maxBatch: chunk)
        let context = StepContext(isTraining: false, seed: 0, step: 0, firstSampleIndex: 0, globalBatch: count,
                                  communicator: SoloCommunicator())
        let indices = Array(0..<count)
        var start = 0
        while start < count {
            let batch = min(chunk, count - start)
            try transform.gather(images, indices[start..<(start + batch)], into: model.input, epoch: nil)
            try model.forward(batch: batch, context: context)
            for n in 0..<batch {
                let probabilities = softmax(model.output + n * classes, count: classes)
                guard probabilities.allSatisfy(\.isFinite) else { throw NonFiniteOutputs(sample: start + n) }
                try each(start + n, argmax(model.output + n * classes, count: classes), probabilities)
            }
            start += batch
        }
    }

    /// Why a model's outputs can be NaN or infinite at inference, for the messages of predict and eval.
    public static let nonFiniteCause = "its weights or batch norms' running statistics, values that overflow float32 say, do not make a model"

    /// The model's outputs are NaN or infinite, first on sample `sample` (counted from 0 in its
    /// file): there is nothing to report. Its callers know the checkpoint and the file, which the
    /// message names (`message(checkpoint:data:consequence:)`).
    public struct NonFiniteOutputs: Error {
        public let sample: Int

        /// "`checkpoint`: the model's outputs on `data` are NaN or infinite (first on sample N), so `consequence` (why)".
        public func message(checkpoint: String, data: String, consequence: String) -> String {
            "\(checkpoint): the model's outputs on \(data) are NaN or infinite (first on sample \(sample)), so \(consequence) (\(nonFiniteCause))"
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
