import CBLAS
import Foundation
import XCTest
@testable import Cohort

/// The thread team of a lone process: its splits cover every index once, its kernels give the
/// one-thread results (bitwise where the work per element does not change, within rounding where
/// OpenBLAS computes a product's parts), and training on it matches training without it.
final class ThreadTeamTests: XCTestCase {
    /// Teams of 2 and 3 threads live for the whole process (a helper never ends), so they are made once.
    static let teams = [ThreadTeam(size: 2), ThreadTeam(size: 3)]

    /// Runs `body` with `team` as the kernels' team, then none again.
    private func with<R>(_ team: ThreadTeam?, _ body: () throws -> R) rethrows -> R {
        let previous = ThreadTeam.current
        ThreadTeam.current = team
        defer { ThreadTeam.current = previous }
        return try body()
    }

    /// One forward and backward pass of a fresh model of `config` on random inputs and output
    /// gradients, on `team`: the outputs, the gradient of activation `activation` (`count` values)
    /// and the parameter gradients.
    private func pass(_ config: ModelConfig, batch: Int, team: ThreadTeam?, activation: Int? = nil, count: Int = 0) throws -> [[Float]] {
        try with(team) {
            let model = try Model<Float>(config)
            model.initialize(seed: 8)
            model.reserve(maxBatch: batch)
            let random = CounterRandom(12)
            for i in 0..<(batch * model.inputSize) { model.input[i] = Float(random.normal(UInt64(i))) }
            let context = StepContext(isTraining: true, seed: 1, step: 0, firstSampleIndex: 0, globalBatch: batch,
                                      communicator: SoloCommunicator())
            try model.forward(batch: batch, context: context)
            for i in 0..<(batch * model.classes) { model.outputGradient[i] = Float(random.normal(UInt64(1 << 32 + i))) }
            try model.backward(batch: batch, context: context)
            let inner = activation.map { Array(UnsafeBufferPointer(start: model.activationGradient($0), count: count)) } ?? []
            return [Array(UnsafeBufferPointer(start: model.output, count: batch * model.classes)), inner, Array(model.gradients.buffer)]
        }
    }

    /// `pass` on no team (OpenBLAS too on one thread, so that every product is computed alike) and
    /// on each team: the first value of each result that differs in any bit, by name. With
    /// tolerances (for the outputs, the activation gradient and the parameter gradients), a
    /// nonzero one lets that result differ by up to tolerance * (1 + |value|).
    private func assertBitwiseTheSameOnTeams(_ name: String, tolerances: [Float] = [0, 0, 0],
                                             _ run: (ThreadTeam?) throws -> [[Float]]) throws {
        let threads = openblas_get_num_threads()
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(threads) }
        let alone = try run(nil)
        for team in Self.teams {
            for attempt in 0..<3 {
                let shared = try run(team)
                for ((part, tolerance), (a, b)) in zip(zip(["output", "activation gradient", "parameter gradients"], tolerances),
                                                       zip(shared, alone)) {
                    let differing = a.indices.first { i in
                        tolerance == 0 ? a[i].bitPattern != b[i].bitPattern : !(abs(a[i] - b[i]) <= tolerance * (1 + abs(b[i])))
                    }
                    XCTAssertNil(differing, "\(name) \(part), team \(team.size), attempt \(attempt): first difference at \(differing ?? -1)")
                }
            }
        }
    }

    func testSharesCoverEachIndexOnceOnGranuleBoundaries() {
        for team in Self.teams {
            for granule in [1, 4, 16] {
                for count in [0, 1, 5, 16, 17, 100, 1000, 4099] {
                    var covered = [Int](repeating: 0, count: count)
                    var next = 0
                    for member in 0..<team.size {
                        let range = team.share(of: count, member: member, granule: granule)
                        XCTAssertEqual(range.lowerBound, next, "team \(team.size), granule \(granule), count \(count)")
                        XCTAssertTrue(range.isEmpty || range.lowerBound % granule == 0)
                        for i in range { covered[i] += 1 }
                        next = range.upperBound
                    }
                    XCTAssertEqual(next, count)
                    XCTAssertTrue(covered.allSatisfy { $0 == 1 })
                }
            }
        }
    }

    /// Every member runs once per `run`, each on its own thread, many times over (the helpers
    /// sleep and wake in between); a `run` inside a task runs its members on the calling thread.
    func testRunGivesEveryMemberItsOwnThreadAndNestsSerially() {
        for team in Self.teams {
            for round in 0..<200 {
                var threads = [pthread_t?](repeating: nil, count: team.size)
                var nested = [Int](repeating: 0, count: team.size)
                threads.withUnsafeMutableBufferPointer { threads in
                    nested.withUnsafeMutableBufferPointer { nested in
                        team.run { member in
                            threads[member] = pthread_self()
                            team.run { _ in nested[member] += 1 }
                        }
                    }
                }
                let distinct = Set(threads.map { UInt(bitPattern: $0.map { Int(bitPattern: UInt($0)) } ?? -1) })
                XCTAssertEqual(distinct.count, team.size, "round \(round)")
                XCTAssertEqual(nested, [Int](repeating: team.size, count: team.size))
                if round == 100 { usleep(20_000) }  // long enough for the helpers to fall asleep
            }
        }
    }

    /// Products split by columns or by rows, every transposition, against one OpenBLAS call.
    func testSplitProductsMatchOneCall() {
        let random = CounterRandom(11)
        for (m, n, k) in [(64, 512, 784), (512, 70, 64), (300, 33, 40), (17, 1000, 30)] {
            for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = Buffer<Float>(count: m * k), b = Buffer<Float>(count: k * n)
                for i in 0..<(m * k) { a.pointer[i] = Float(random.normal(UInt64(i))) }
                for i in 0..<(k * n) { b.pointer[i] = Float(random.normal(UInt64(1 << 30 + i))) }
                let expected = Buffer<Float>(count: m * n), c = Buffer<Float>(count: m * n)
                let (lda, ldb) = (transA ? m : k, transB ? k : n)
                for i in 0..<(m * n) { expected.pointer[i] = Float(i % 7); c.pointer[i] = Float(i % 7) }
                Float.blasGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: lda,
                               b: b.pointer, ldb: ldb, beta: 0.25, c: expected.pointer, ldc: n)
                for team in Self.teams {
                    for i in 0..<(m * n) { c.pointer[i] = Float(i % 7) }
                    with(team) {
                        Float.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: lda,
                                   b: b.pointer, ldb: ldb, beta: 0.25, c: c.pointer, ldc: n)
                    }
                    for i in 0..<(m * n) {
                        XCTAssertEqual(c.pointer[i], expected.pointer[i], accuracy: 1e-4 * (1 + abs(expected.pointer[i])),
                                       "\(m)x\(n)x\(k) \(transA) \(transB), team \(team.size), element \(i)")
                    }
                }
            }
        }
    }

    /// Double products (the gradient checks') split alike, against one call.
    func testSplitDoubleProductsMatchOneCall() {
        let (m, n, k) = (300, 400, 50)
        let random = CounterRandom(13)
        let a = Buffer<Double>(count: m * k), b = Buffer<Double>(count: k * n)
        for i in 0..<(m * k) { a.pointer[i] = random.normal(UInt64(i)) }
        for i in 0..<(k * n) { b.pointer[i] = random.normal(UInt64(1 << 30 + i)) }
        let expected = Buffer<Double>(count: m * n), c = Buffer<Double>(count: m * n)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(m), blasint(n), blasint(k), 1, a.pointer, blasint(k),
                    b.pointer, blasint(k), 0, expected.pointer, blasint(n))
        for team in Self.teams {
            with(team) {
                Double.gemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a.pointer, lda: k,
                            b: b.pointer, ldb: k, beta: 0, c: c.pointer, ldc: n)
            }
            let worst = (0..<(m * n)).map { abs(c.pointer[$0] - expected.pointer[$0]) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-12, "team \(team.size)")
        }
    }

    /// Every optimizer, with its options away from the defaults, for `count` parameters.
    static func optimizers(count: Int) -> [(String, () -> Optimizer)] {
        [
            ("sgd", { SGD(momentum: 0.9, dampening: 0.1, nesterov: true, weightDecay: 1e-4, count: count) }),
            ("adam", { Adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 1e-4, amsgrad: true, count: count) }),
            ("adamw", { AdamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 1e-2, amsgrad: false, count: count) }),
            ("rmsprop", { RMSprop(alpha: 0.99, epsilon: 1e-8, weightDecay: 1e-4, momentum: 0.9, centered: true, count: count) }),
            ("adagrad", { Adagrad(lrDecay: 0.01, weightDecay: 1e-4, initialAccumulatorValue: 0.1, epsilon: 1e-10, count: count) }),
        ]
    }

    /// `stepZeroingGradients` (SGD zeroes each chunk after its update, the others after the whole
    /// update): bitwise the parameters of `step`, and the gradients left zero, alone and on teams.
    /// 100,003 values: the last chunk of each share is partial.
    func testStepsThatZeroTheGradientsUpdateAsStep() {
        let count = 100_003
        let random = CounterRandom(6)
        let gradients = (0..<count).map { Float(random.normal(UInt64($0))) }
        let start = (0..<count).map { Float(random.normal(UInt64(count + $0))) }
        for (name, make) in Self.optimizers(count: count) {
            for team in [nil] + Self.teams {
                let stepped = Buffer<Float>(count: count), zeroing = Buffer<Float>(count: count), g = Buffer<Float>(count: count)
                stepped.pointer.update(from: start, count: count)
                zeroing.pointer.update(from: start, count: count)
                let (plain, fused) = (make(), make())
                with(team) {
                    for _ in 0..<3 {
                        g.pointer.update(from: gradients, count: count)
                        plain.step(parameters: stepped.pointer, gradients: g.pointer, count: count, lr: 0.05)
                        fused.stepZeroingGradients(parameters: zeroing.pointer, gradients: g.pointer, count: count, lr: 0.05)
                        XCTAssertTrue(g.buffer.allSatisfy { $0 == 0 }, "\(name), team \(team?.size ?? 1): gradients left")
                    }
                }
                XCTAssertTrue(zeroing.buffer.elementsEqual(stepped.buffer), "\(name), team \(team?.size ?? 1)")
            }
        }
    }

    /// The optimizers' updates, the finiteness check and the zeroing give bitwise the one-thread results.
    func testElementwisePassesAreBitwiseTheSame() {
        let count = 100_003
        let random = CounterRandom(5)
        let gradients = Buffer<Float>(count: count), start = Buffer<Float>(count: count)
        for i in 0..<count { gradients.pointer[i] = Float(random.normal(UInt64(i))); start.pointer[i] = Float(random.normal(UInt64(count + i))) }
        let optimizers = Self.optimizers(count: count)
        func trained(_ team: ThreadTeam?, _ make: () -> Optimizer) -> [Float] {
            let p = Buffer<Float>(count: count)
            p.pointer.update(from: start.pointer, count: count)
            let optimizer = make()
            with(team) { for _ in 0..<3 { optimizer.step(parameters: p.pointer, gradients: gradients.pointer, count: count, lr: 0.05) } }
            return Array(p.buffer)
        }
        for (name, make) in optimizers {
            let alone = trained(nil, make)
            for team in Self.teams { XCTAssertTrue(trained(team, make) == alone, "\(name), team \(team.size)") }
        }
        for team in Self.teams {
            with(team) {
                XCTAssertTrue(allFinite(gradients.pointer, count: count))
                for bad in [3, count / 2 + 1, count - 1] {
                    let saved = gradients.pointer[bad]
                    gradients.pointer[bad] = .nan
                    XCTAssertFalse(allFinite(gradients.pointer, count: count), "NaN at \(bad), team \(team.size)")
                    gradients.pointer[bad] = .infinity
                    XCTAssertFalse(allFinite(gradients.pointer, count: count), "inf at \(bad), team \(team.size)")
                    gradients.pointer[bad] = saved
                }
                let zeroed = Buffer<Float>(count: count, zero: 1)
                fillZero(zeroed.pointer, count: count)
                XCTAssertTrue(zeroed.buffer.allSatisfy { $0 == 0 })
            }
        }
    }

    /// A fresh model of `workload` with SGD (momentum 0.9) and a batch of `batch` random samples
    /// loaded, made on the current team.
    private func trainingStep(_ workload: Workload, batch: Int) throws -> (Model<Float>, TrainingStep) {
        let model = try Model<Float>(try workload.model)
        model.initialize(seed: 3)
        let sgd = SGD(momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0, count: model.parameters.count)
        let step = TrainingStep(model: model, optimizer: sgd, communicator: SoloCommunicator(), seed: 9, maxLocalBatch: batch)
        let random = CounterRandom(4)
        for i in 0..<(batch * model.inputSize) { model.input[i] = Float(random.normal(UInt64(i))) }
        for i in 0..<batch { step.labels.pointer[i] = Int32(random.below(10, UInt64(1 << 40 + i))) }
        return (model, step)
    }

    /// Steps that let the optimizer zero the gradients (`keepGradients: false`, as `cohort bench`
    /// and training between histograms run) train bitwise the weights of steps that keep them: the
    /// next backward skips its own zeroing exactly when the gradients are zero, also when a step
    /// that keeps them follows one that zeroed them (a histogram step). mlp and lstm, alone and on
    /// teams.
    func testStepsThatLetTheOptimizerZeroTheGradientsTrainTheSameWeights() throws {
        for workload in [Workload.mlp, .lstm] {
            func trained(keepGradients: [Bool], _ team: ThreadTeam?) throws -> [Float] {
                try with(team) {
                    let (model, step) = try trainingStep(workload, batch: 16)
                    for (s, keep) in keepGradients.enumerated() {
                        try step.run(step: s, localBatch: 16, globalBatch: 16, firstSampleIndex: 0, lr: 0.05, keepGradients: keep)
                        XCTAssertEqual(model.gradientsAreZero, !keep)
                        XCTAssertEqual(model.gradients.buffer.allSatisfy { $0 == 0 }, !keep, "\(workload) step \(s)")
                    }
                    return Array(model.parameters.buffer)
                }
            }
            for team in [nil] + Self.teams {
                let kept = try trained(keepGradients: [true, true, true, true, true], team)
                XCTAssertTrue(try trained(keepGradients: [false, false, false, false, false], team) == kept, "\(workload), team \(team?.size ?? 1)")
                XCTAssertTrue(try trained(keepGradients: [false, true, true, false, true], team) == kept,
                              "\(workload) mixed, team \(team?.size ?? 1)")
            }
        }
    }

    /// A few steps of the mlp and cnn workloads (batch norm, dropout, products, the update) on a
    /// team against one thread: batch norm and dropout split without changing a value, so only the
    /// products' rounding may differ.
    func testTrainingOnATeamMatchesOneThread() throws {
        for workload in [Workload.mlp, .cnn] {
            func trained(_ team: ThreadTeam?) throws -> [Float] {
                try with(team) {
                    let (model, step) = try trainingStep(workload, batch: 32)
                    for s in 0..<4 { try step.run(step: s, localBatch: 32, globalBatch: 32, firstSampleIndex: 0, lr: 0.05) }
                    return Array(model.parameters.buffer)
                }
            }
            let alone = try trained(nil)
            for team in Self.teams {
                let shared = try trained(team)
                let worst = zip(shared, alone).map { abs($0 - $1) / (1 + abs($1)) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-4, "\(workload), team \(team.size)")
            }
        }
    }

    /// Convolutions (Winograd on maps whose rows of tiles end mid-vector: 14 x 14, 7 x 7 and 4 x 4
    /// maps, 7, 4 and 2 tiles wide, the last reaching past the next row; im2col for the stride-2
    /// ones), batch norm, ReLU and a residual block, on teams of 2 and 3: bitwise the outputs and
    /// input gradients of one thread, since every split gives each value the same operations, and
    /// the parameter gradients within rounding (a convolution whose threads take whole images sums
    /// each thread's weight gradient, then those). Batches of 6 and 12: the 14 x 14 layers' chunks
    /// of 5 images go whole to the threads of one team and are shared kernel by kernel on the
    /// other's. A transform that stored past its row of tiles into the next channel, another
    /// thread's, failed this.
    func testConvolutionsAndResidualsAreBitwiseTheSameOnATeam() throws {
        func conv(_ out: Int, stride: Int = 1) -> LayerSpec {
            .conv2d(outChannels: out, kernel: 3, stride: stride, padding: 1, bias: false, initializer: LayerInit())
        }
        let norm = LayerSpec.batchnorm(momentum: 0.1, epsilon: 1e-5, synchronized: true)
        var config = ModelConfig()
        config.input = [16, 14, 14]
        config.layers = [conv(16), norm, .activation(.relu),
                         .residual(body: [conv(16), norm, .activation(.relu), conv(16), norm], shortcut: []), .activation(.relu),
                         conv(32, stride: 2), norm, .activation(.relu), conv(32), .activation(.relu),
                         conv(32, stride: 2), conv(32), .activation(.relu),
                         .flatten, .dense(outFeatures: 10, bias: true, initializer: LayerInit())]
        for batch in [6, 12] {
            try assertBitwiseTheSameOnTeams("convolutions, batch \(batch)", tolerances: [0, 0, 1e-5]) { team in
                try pass(config, batch: batch, team: team, activation: 1, count: batch * 16 * 14 * 14)
            }
        }
    }

    /// Max and average pooling (overlapping windows with padding too), their images shared among
    /// the team's threads (the first two pools' passes are long enough to split), behind a
    /// convolution so that backward reaches them: bitwise the outputs and the gradient through them
    /// (the convolution's weight gradient within rounding, as above).
    func testPoolingIsBitwiseTheSameOnATeam() throws {
        var config = ModelConfig()
        config.input = [4, 16, 16]
        config.layers = [.conv2d(outChannels: 16, kernel: 3, stride: 1, padding: 1, bias: true, initializer: LayerInit()),
                         .pool(.max, kernel: 2, stride: 2, padding: 0), .activation(.relu),
                         .pool(.average, kernel: 3, stride: 2, padding: 1), .pool(.max, kernel: 3, stride: 1, padding: 1),
                         .flatten, .dense(outFeatures: 10, bias: true, initializer: LayerInit())]
        try assertBitwiseTheSameOnTeams("pooling", tolerances: [0, 0, 1e-5]) { team in
            try pass(config, batch: 9, team: team, activation: 1, count: 9 * 16 * 16 * 16)
        }
    }

    /// LSTM, GRU and RNN (both nonlinearities) forward and backward on teams of 2 and 3, a batch
    /// that does not divide into whole shares of 8 samples, each thread running its own samples
    /// through every step. Through `panelProduct` (the step products of AVX-512 builds): outputs
    /// bitwise those of one thread, since a row's products do not depend on the rows beside it.
    /// Through BLAS, within rounding only: OpenBLAS's kernels may round a row's products differently
    /// with the number of rows in the call (its Haswell and Cooperlake kernels on a Zen 4, family 25
    /// model 17, did; its generic Prescott kernels, which the Xeon of earlier sessions got, did not).
    /// The parameter gradients come out of a GEMM the team splits, within rounding either way
    /// (bitwise with Cooperlake kernels; not with Haswell's, which split rows round differently).
    func testRecurrentLayersOnATeamMatchOneThread() throws {
        let specs: [(String, LayerSpec)] = [
            ("lstm", .lstm(hiddenSize: 48, returnSequences: true, bias: true, initializer: LayerInit())),
            ("gru", .gru(hiddenSize: 48, returnSequences: false, bias: true, initializer: LayerInit())),
            ("rnn tanh", .rnn(hiddenSize: 48, nonlinearity: .tanh, returnSequences: true, bias: true, initializer: LayerInit())),
            ("rnn relu", .rnn(hiddenSize: 48, nonlinearity: .relu, returnSequences: false, bias: false, initializer: LayerInit())),
        ]
        for (name, spec) in specs {
            var config = ModelConfig()
            config.input = [9, 5]
            config.layers = [spec, .flatten, .dense(outFeatures: 10, bias: true, initializer: LayerInit())]
            try withEnvironment(RecurrentProductKernel.environmentVariable, "panels") {
                try assertBitwiseTheSameOnTeams("\(name) through panels", tolerances: [0, 0, 1e-5]) { team in
                    try pass(config, batch: 21, team: team)
                }
            }
            try withEnvironment(RecurrentProductKernel.environmentVariable, "blas") {
                try assertBitwiseTheSameOnTeams("\(name) through BLAS", tolerances: [1e-5, 1e-5, 1e-5]) { team in
                    try pass(config, batch: 21, team: team)
                }
            }
        }
    }
}
