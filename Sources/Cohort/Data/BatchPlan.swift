/// Which samples each step takes, and which of them each worker takes.
///
/// An epoch is floor(n / B) steps (the last partial batch is dropped). Without shuffle, step s of
/// an epoch takes samples [s*B, (s+1)*B) in file order; with shuffle, the same positions of a
/// permutation drawn from (seed, epoch) alone. Worker r of N takes a contiguous slice of each global
/// batch; slices differ by at most one sample. Everything follows from the global step, so a run
/// resumes, on any number of workers, from the step alone.
public struct BatchPlan: Sendable {
    public let sampleCount: Int
    public let batchSize: Int
    public let shuffle: Bool
    public let seed: UInt64
    public var stepsPerEpoch: Int { sampleCount / batchSize }
    private var cachedEpoch = -1
    private var order: [Int] = []

    public init(sampleCount: Int, batchSize: Int, shuffle: Bool, seed: UInt64) {
        self.sampleCount = sampleCount; self.batchSize = batchSize; self.shuffle = shuffle; self.seed = seed
    }

    public func epoch(ofStep step: Int) -> Int { step / stepsPerEpoch }

    /// The order of the samples in `epoch`: a Fisher-Yates shuffle keyed by (seed, epoch), or file order.
    public static func permutation(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var order = Array(0..<count)
        let random = CounterRandom(seed, 0x5F, UInt64(epoch))
        for i in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(i, random.below(i + 1, UInt64(i)))
        }
        return order
    }

    /// The range of a global batch that worker `rank` of `worldSize` takes.
    public static func slice(batch: Int, rank: Int, worldSize: Int) -> Range<Int> {
        let base = batch / worldSize, extra = batch % worldSize
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// The range of a global batch that worker `rank` takes in micro-batch `microBatch` of
    /// `microBatches` (`train.accumulate`): the batch is cut into contiguous micro-batches first,
    /// then each micro-batch over the workers, so that a micro-batch's samples (its batch-norm
    /// statistics) do not depend on the number of workers.
    public static func slice(batch: Int, rank: Int, worldSize: Int, microBatch: Int, of microBatches: Int) -> Range<Int> {
        let micro = slice(batch: batch, rank: microBatch, worldSize: microBatches)
        let part = slice(batch: micro.count, rank: rank, worldSize: worldSize)
        return (micro.lowerBound + part.lowerBound)..<(micro.lowerBound + part.upperBound)
    }

    /// The sample indices of this worker at global step `step` (in micro-batch `microBatch` of
    /// `microBatches`), and the position of the first of them in the global sequence of samples
    /// (`step * B + offset`), which keys dropout.
    public mutating func samples(step: Int, rank: Int, worldSize: Int, microBatch: Int = 0,
                                 of microBatches: Int = 1) -> (indices: ArraySlice<Int>, firstGlobalIndex: Int) {
        let epoch = self.epoch(ofStep: step)
        if epoch != cachedEpoch {
            order = shuffle ? BatchPlan.permutation(count: sampleCount, seed: seed, epoch: epoch) : Array(0..<sampleCount)
            cachedEpoch = epoch
        }
        let start = (step % stepsPerEpoch) * batchSize
        let mine = BatchPlan.slice(batch: batchSize, rank: rank, worldSize: worldSize, microBatch: microBatch, of: microBatches)
        return (order[(start + mine.lowerBound)..<(start + mine.upperBound)], step * batchSize + mine.lowerBound)
    }
}
