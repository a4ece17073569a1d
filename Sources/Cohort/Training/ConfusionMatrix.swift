/// Counts of (true label, predicted label) over a data set: row t, column p holds the samples of
/// class t that the model gave class p (the largest logit; the first of equal ones). Its diagonal
/// over each row's total is that class's accuracy (its recall).
public struct ConfusionMatrix: Sendable, Equatable {
    public let classes: Int
    /// Row-major `[classes, classes]`: `counts[t * classes + p]`.
    public var counts: [Int]

    public init(classes: Int) {
        self.classes = classes
        counts = Array(repeating: 0, count: classes * classes)
    }

    public subscript(truth: Int, predicted: Int) -> Int { counts[truth * classes + predicted] }

    /// Counts the predictions of `logits` (`[N, classes]`) against `labels` (`[N]`).
    public mutating func add<T: Scalar>(logits: UnsafePointer<T>, labels: UnsafePointer<Int32>, batch: Int) {
        for n in 0..<batch {
            let predicted = argmax(logits + n * classes, count: classes)
            counts[Int(labels[n]) * classes + predicted] += 1
        }
    }

    /// Samples whose true class is `truth`.
    public func total(of truth: Int) -> Int { counts[(truth * classes)..<((truth + 1) * classes)].reduce(0, +) }

    /// The share of class `truth` predicted right; nil when the data has none of it.
    public func accuracy(of truth: Int) -> Double? {
        let total = total(of: truth)
        return total == 0 ? nil : Double(self[truth, truth]) / Double(total)
    }
}

/// The index of the largest of `count` values (the first of equal ones), as `softmaxCrossEntropy` counts it.
func argmax<T: Scalar>(_ values: UnsafePointer<T>, count: Int) -> Int {
    var best = 0
    for j in 1..<count where values[j] > values[best] { best = j }
    return best
}
