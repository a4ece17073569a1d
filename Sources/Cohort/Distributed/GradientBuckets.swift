/// The flat gradient buffer cut into buckets for the allreduce, from its end to its start: layers
/// own consecutive ranges in layer order, and backward finishes the last layers first.
///
/// A bucket is made of whole layers and holds at least `targetCount` values (but the last one
/// sent, which holds what is left). The cut depends only on the layers' sizes, so every worker cuts
/// the same buckets and sends them in the same order, every step (so results are reproducible).
public struct GradientBuckets: Equatable, Sendable {
    /// About 1 MiB of float32: large enough that a bucket's latency is small beside its transfer
    /// on a 1 Gbit/s link, small enough that the first is sent well before backward ends.
    public static let defaultTargetCount = 1 << 18

    /// In sending order, from the end of the buffer: each range's `upperBound` is the one before's `lowerBound`.
    public let ranges: [Range<Int>]

    /// `layerSizes[i]`: the number of parameters of layer i.
    public init(layerSizes: [Int], targetCount: Int = defaultTargetCount) {
        var ranges: [Range<Int>] = []
        var end = layerSizes.reduce(0, +), start = end
        for size in layerSizes.reversed() {
            start -= size
            if end - start >= targetCount {
                ranges.append(start..<end)
                end = start
            }
        }
        if end > 0 { ranges.append(0..<end) }
        self.ranges = ranges
    }

    public init(model: Model<Float>, targetCount: Int = defaultTargetCount) {
        self.init(layerSizes: model.layers.map { $0.parameterShapes.reduce(0) { $0 + $1.count } }, targetCount: targetCount)
    }
}
