/// The distribution of one tensor's values, as TensorBoard's `HistogramProto` holds it: count,
/// min, max, sum, sum of squares, and counts in buckets of equal width between min and max.
///
/// `buckets[i]` counts the values in (`bucketLimits[i-1]`, `bucketLimits[i]`] (the first bucket
/// from min itself); the last limit is max. Non-finite values are left out of every figure.
public struct TensorHistogram: Equatable, Sendable {
    public var tag: String
    public var count: Int
    public var min: Double
    public var max: Double
    public var sum: Double
    public var sumOfSquares: Double
    public var bucketLimits: [Double]
    public var buckets: [Double]

    public var mean: Double { count > 0 ? sum / Double(count) : 0 }
    /// The population standard deviation.
    public var standardDeviation: Double {
        guard count > 0 else { return 0 }
        return Swift.max(0, sumOfSquares / Double(count) - mean * mean).squareRoot()
    }

    /// values: `count` floats, in `bucketCount` buckets (one when they are all equal).
    public init(tag: String, values: UnsafePointer<Float>, count: Int, bucketCount: Int = 30) {
        self.tag = tag
        var low = Double.infinity, high = -Double.infinity, sum = 0.0, squares = 0.0, finite = 0
        for i in 0..<count where values[i].isFinite {
            let v = Double(values[i])
            low = Swift.min(low, v)
            high = Swift.max(high, v)
            sum += v
            squares += v * v
            finite += 1
        }
        self.count = finite
        self.sum = sum
        sumOfSquares = squares
        guard finite > 0 else {
            (min, max, bucketLimits, buckets) = (0, 0, [], [])
            return
        }
        (min, max) = (low, high)
        let buckets = high > low ? bucketCount : 1
        let width = (high - low) / Double(buckets)
        bucketLimits = (1...buckets).map { $0 == buckets ? high : low + Double($0) * width }
        var counts = [Double](repeating: 0, count: buckets)
        for i in 0..<count where values[i].isFinite {
            let position = width > 0 ? (Double(values[i]) - low) / width : 0
            // (limit[i-1], limit[i]]: a value on a limit belongs to the bucket below it.
            let bucket = Swift.max(0, Swift.min(buckets - 1, Int(position.rounded(.up)) - 1))
            counts[bucket] += 1
        }
        self.buckets = counts
    }
}

/// What `train.histograms_every_steps` records of a training step: a histogram of each layer's
/// parameters (`weights/<i>.<name>`), of their gradients after the allreduce (`gradients/<i>.<name>`)
/// and of each layer's output on this worker's slice of the batch (`activations/<i>.<kind>`).
///
/// The parameters are those after the step's update. A ReLU that a batch norm applies in its own
/// pass (`BatchNorm.appliesReLU`) shares its output, so both layers show the ReLU's output.
public enum ModelHistograms {
    public static func measure(_ model: Model<Float>, batch: Int) -> [TensorHistogram] {
        var result: [TensorHistogram] = []
        var offset = 0
        for (index, layer) in model.layers.enumerated() {
            for shape in layer.parameterShapes {
                result.append(TensorHistogram(tag: "weights/\(index).\(shape.name)", values: model.parameters.pointer + offset, count: shape.count))
                result.append(TensorHistogram(tag: "gradients/\(index).\(shape.name)", values: model.gradients.pointer + offset, count: shape.count))
                offset += shape.count
            }
            result.append(TensorHistogram(tag: "activations/\(index).\(layer.kind)", values: model.activation(index + 1),
                                          count: batch * layer.outputSize))
        }
        return result
    }

    /// The line of `metrics.jsonl`: each histogram's mean and standard deviation, by tag.
    ///
    ///     {"step":250,"epoch":5,"layer_statistics":{"weights/0.weight":{"mean":-0.0012,"std":0.21},...},"time":1764...}
    public static func line(_ histograms: [TensorHistogram], step: Int, epoch: Int, time: Double) -> String {
        func number(_ value: Double) -> String { value.isFinite ? "\(value)" : "null" }
        let fields = histograms.map { "\"\($0.tag)\":{\"mean\":\(number($0.mean)),\"std\":\(number($0.standardDeviation))}" }
        return "{\"step\":\(step),\"epoch\":\(epoch),\"layer_statistics\":{\(fields.joined(separator: ","))},\"time\":\(number((time * 1000).rounded() / 1000))}"
    }
}
