/// The model in inference mode (running statistics, no dropout) over a data set, each worker taking
/// a contiguous share of the samples, so that every sample counts exactly once.
public enum Evaluator {
    public struct Result: Sendable {
        public var loss: Double
        public var accuracy: Double
        public var samples: Int
        /// Counts of (true label, predicted label), summed over the workers.
        public var confusion = ConfusionMatrix(classes: 0)
    }

    public static func evaluate(model: Model<Float>, data: Dataset, communicator: Communicator, chunk: Int = 256) throws -> Result {
        let mine = BatchPlan.slice(batch: data.count, rank: communicator.rank, worldSize: communicator.worldSize)
        // A model reserved for training is evaluated in batches of that size with its buffers, so
        // that evaluation never grows them beyond what the memory check allowed.
        let size: Int
        if model.maxBatch > 0 {
            size = model.maxBatch
        } else {
            size = try model.inferenceBatch(upTo: min(chunk, max(mine.count, 1)))
            model.reserveForInference(maxBatch: size)
        }
        let labels = Buffer<Int32>(count: size)
        let indices = Array(mine)
        var lossSum = 0.0, correct = 0
        var confusion = ConfusionMatrix(classes: model.classes)
        var start = 0
        while start < indices.count {
            let end = min(start + size, indices.count)
            try data.gather(indices[start..<end], into: model.input, labels: labels.pointer)
            let context = StepContext(isTraining: false, seed: 0, step: 0, firstSampleIndex: 0,
                                      globalBatch: data.count, communicator: communicator)
            try model.forward(batch: end - start, context: context)
            let result = softmaxCrossEntropy(logits: model.output, labels: labels.pointer, dlogits: nil,
                                             batch: end - start, classes: model.classes, gradientScale: 0)
            lossSum += result.lossSum
            correct += result.correct
            confusion.add(logits: model.output, labels: labels.pointer, batch: end - start)
            start = end
        }
        let cells = confusion.counts.count
        let totals = Buffer<Double>(count: 2 + cells)
        totals.pointer[0] = lossSum
        totals.pointer[1] = Double(correct)
        for i in 0..<cells { totals.pointer[2 + i] = Double(confusion.counts[i]) }
        try communicator.allreduceSum(totals.pointer, count: 2 + cells)
        for i in 0..<cells { confusion.counts[i] = Int(totals.pointer[2 + i]) }
        return Result(loss: totals.pointer[0] / Double(data.count), accuracy: totals.pointer[1] / Double(data.count),
                      samples: data.count, confusion: confusion)
    }
}
