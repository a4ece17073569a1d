import CBLAS
import Foundation

/// Times training steps of a canonical workload on random data, as `cohort bench` reports them.
public enum Benchmark {
    public struct Result: Sendable {
        public var workload: String
        public var world: Int
        public var batch: Int
        public var imagesPerSecond: Double
        public var millisecondsPerStep: Double
    }

    /// `steps` timed steps after 5 warm-up steps, global batch `batch` split over the workers,
    /// SGD lr 0.01 momentum 0.9. `ready` is called once the model is built and its memory checked,
    /// before the first collective (so that a worker's error there is still one of set-up).
    public static func run(_ workload: Workload, steps: Int, batch: Int, compression: GradientCompression = .none,
                           overlap: Bool = true, communicator: Communicator, ready: () throws -> Void = {}) throws -> Result {
        let model = try Model<Float>(try workload.model)
        model.initialize(seed: 0)
        let optimizer = SGD(momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0, count: model.parameters.count)
        let mine = BatchPlan.slice(batch: batch, rank: communicator.rank, worldSize: communicator.worldSize)
        // As the trainer's check: twice the activations, and no more than 80 % of the memory.
        let activationBytes = 2 * model.activationBytes(maxBatch: mine.count)
        let budget = MemoryBudget.current()
        guard budget.holds(activationBytes) else {
            throw CohortError("--batch \(batch): \(mine.count) samples per worker need about \(memorySize(activationBytes)) of activations, more than \(budget.allowance)")
        }
        try ready()
        let stepper = TrainingStep(model: model, optimizer: optimizer, communicator: communicator, seed: 0, maxLocalBatch: mine.count)
        stepper.compression = compression
        try stepper.placeGradientsForSum()
        if overlap { try stepper.overlapCommunication() }
        let random = CounterRandom(7, UInt64(communicator.rank))
        for i in 0..<(mine.count * model.inputSize) { model.input[i] = Float(random.normal(UInt64(i))) }
        for i in 0..<mine.count { stepper.labels.pointer[i] = Int32(random.below(model.classes, UInt64(1 << 40 + i))) }
        for step in 0..<5 {
            try stepper.run(step: step, localBatch: mine.count, globalBatch: batch, firstSampleIndex: mine.lowerBound, lr: 0.01,
                            keepGradients: false)
        }
        try communicator.barrier()
        let start = DispatchTime.now().uptimeNanoseconds
        for step in 5..<(5 + steps) {
            try stepper.run(step: step, localBatch: mine.count, globalBatch: batch, firstSampleIndex: mine.lowerBound, lr: 0.01,
                            keepGradients: false)
        }
        try communicator.barrier()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let perStep = seconds / Double(steps)
        return Result(workload: workload.rawValue, world: communicator.worldSize, batch: batch,
                      imagesPerSecond: Double(batch) / perStep, millisecondsPerStep: perStep * 1000)
    }

    /// Single-precision GEMM throughput: the best of `repeats` products of two `size x size`
    /// matrices, in GFLOP/s (2 * size^3 operations each), on OpenBLAS's own threads, as many as
    /// the process has (its `ThreadTeam`'s, else as OpenBLAS is set).
    public static func gemmGigaflops(size: Int, repeats: Int) -> Double {
        let threads = openblas_get_num_threads()
        if let team = ThreadTeam.current { openblas_set_num_threads(Int32(team.size)) }
        defer { openblas_set_num_threads(threads) }
        let a = Buffer<Float>(count: size * size), b = Buffer<Float>(count: size * size), c = Buffer<Float>(count: size * size)
        let random = CounterRandom(3)
        for i in 0..<(size * size) { a.pointer[i] = Float(random.normal(UInt64(i))); b.pointer[i] = Float(random.normal(UInt64(i + size * size))) }
        var best = Double.infinity
        for _ in 0..<(repeats + 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            Float.blasGemm(transA: false, transB: false, m: size, n: size, k: size, alpha: 1, a: a.pointer, lda: size,
                       b: b.pointer, ldb: size, beta: 0, c: c.pointer, ldc: size)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return 2 * Double(size * size * size) / best / 1e9
    }
}
