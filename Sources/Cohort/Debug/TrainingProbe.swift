/// The first steps of a run through the trainer's own path (Float, `TrainingStep`), watched layer
/// by layer: `LayerStatistics` after every step, and `NonFiniteScan` to stop at the first NaN or
/// infinity and say where it appeared.
public enum TrainingProbe {
    public struct Result: Sendable {
        /// One entry per step that ran.
        public var statistics: [LayerStatistics]
        /// The first non-finite value, if any (the probe stops at its step).
        public var nonFinite: NonFiniteScan.Finding?
    }

    /// Runs steps `0..<steps` of `plan` on `data`, with the learning rates of `schedule`.
    public static func run(_ stepper: TrainingStep, data: Dataset, plan: BatchPlan, schedule: LearningRateSchedule,
                           steps: Int) throws -> Result {
        var plan = plan
        var result = Result(statistics: [], nonFinite: nil)
        let model = stepper.model
        // The statistics and the scan read every layer's output gradient after backward.
        model.keepsActivationGradients = true
        model.reserve(maxBatch: plan.batchSize)
        for step in 0..<steps {
            let (indices, first) = plan.samples(step: step, rank: 0, worldSize: 1)
            try data.gather(indices, into: model.input, labels: stepper.labels.pointer)
            var loss: Double
            var updated = true
            do {
                loss = try stepper.run(step: step, localBatch: indices.count, globalBatch: plan.batchSize,
                                       firstSampleIndex: first, lr: schedule.rate(at: step)).loss
            } catch {
                // TrainingStep refuses a loss that is not finite before the update; find out why.
                loss = softmaxCrossEntropy(logits: model.output, labels: stepper.labels.pointer, dlogits: nil,
                                           batch: indices.count, classes: model.classes, gradientScale: 0).lossSum / Double(indices.count)
                if loss.isFinite { throw error }
                updated = false
            }
            result.statistics.append(LayerStatistics(model: model, batch: indices.count, step: step, loss: loss))
            if let finding = NonFiniteScan.scan(model: model, batch: indices.count, step: step, loss: loss, updated: updated) {
                result.nonFinite = finding
                break
            }
        }
        return result
    }
}
