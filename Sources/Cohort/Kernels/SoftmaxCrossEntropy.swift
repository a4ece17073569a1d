/// The sum over a batch of softmax cross-entropy losses, and its gradient scaled by `gradientScale`.
///
/// logits, dlogits: `[N, K]`; labels: `[N]` class indices in `0..<K`. Each row is shifted by its
/// maximum before `exp`, so large logits do not overflow. With `gradientScale = 1 / globalBatch`
/// the gradients of all workers add up to the gradient of the mean loss over the global batch.
/// Returns the summed loss (in Double) and the number of rows whose largest logit is the label.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func softmaxCrossEntropy<T: Scalar>(
    logits: UnsafePointer<T>, labels: UnsafePointer<Int32>, dlogits: UnsafeMutablePointer<T>?,
    batch: Int, classes: Int, gradientScale: T
) -> (lossSum: Double, correct: Int) {
    var lossSum = 0.0
    var correct = 0
    for n in 0..<batch {
        let row = logits + n * classes
        var maxValue = row[0]
        var argmax = 0
        for j in 1..<classes where row[j] > maxValue { maxValue = row[j]; argmax = j }
        var sum = 0.0
        for j in 0..<classes { sum += Double(T.exp(row[j] - maxValue)) }
        let label = Int(labels[n])
        if argmax == label { correct += 1 }
        let logSum = Double.log(sum)
        lossSum += logSum - Double(row[label] - maxValue)
        if let dlogits {
            let drow = dlogits + n * classes
            for j in 0..<classes {
                let p = Double.exp(Double(row[j] - maxValue) - logSum)
                drow[j] = T(p - (j == label ? 1 : 0)) * gradientScale
            }
        }
    }
    return (lossSum, correct)
}
