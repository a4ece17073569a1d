import Foundation

/// The training figures of the steps since the last logged point, whose means the next point
/// holds. A checkpoint carries it, so that a resumed run logs the points the run would have logged
/// had it never stopped.
public struct LogWindow: Codable, Equatable, Sendable {
    public var steps = 0
    public var lossSum = 0.0
    public var accuracySum = 0.0
    public var seconds = 0.0

    public init() {}

    public var isEmpty: Bool { steps == 0 }

    public mutating func add(loss: Double, accuracy: Double, seconds: Double) {
        steps += 1
        lossSum += loss
        accuracySum += accuracy
        self.seconds += seconds
    }

    /// What makes it no window of a run at `step` (nil: nothing): more steps than the run has made,
    /// sums that are negative, not finite, or (accuracies) past one a step, or sums of no steps.
    public func fault(atStep step: Int) -> String? {
        guard (0...step).contains(steps) else { return "holds \(steps) steps, but the run is at step \(step)" }
        for (key, value) in [("loss_sum", lossSum), ("accuracy_sum", accuracySum), ("seconds", seconds)] where !(value.isFinite && value >= 0) {
            return "has \(key) \(value), not a finite number >= 0"
        }
        if accuracySum > Double(steps) * (1 + 1e-9) { return "has accuracy_sum \(accuracySum) over \(steps) steps (at most 1 a step)" }
        if steps == 0 && (lossSum != 0 || accuracySum != 0) { return "has sums over 0 steps" }
        return nil
    }

    /// The point of the window ending after `step`.
    public func point(step: Int, epoch: Int, lr: Double, batchSize: Int) -> MetricPoint {
        .train(step: step, epoch: epoch, loss: lossSum / Double(steps), accuracy: accuracySum / Double(steps), lr: lr,
               imagesPerSecond: Double(steps * batchSize) / max(seconds, 1e-9))
    }

    enum CodingKeys: String, CodingKey {
        case steps, seconds
        case lossSum = "loss_sum", accuracySum = "accuracy_sum"
    }
}
