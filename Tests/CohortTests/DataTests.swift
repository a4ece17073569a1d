import Foundation
import XCTest
@testable import Cohort

final class DataTests: XCTestCase {
    func testReadsGzipAndPlainIDXAlike() throws {
        let directory = try temporaryDirectory(self)
        let plain = directory.appendingPathComponent("x.idx")
        let values: [UInt8] = (0..<24).map { UInt8($0 * 3) }
        try writeIDX(values, dimensions: [2, 3, 4], to: plain)
        let gz = Process()
        gz.executableURL = URL(fileURLWithPath: "/bin/sh")
        gz.arguments = ["-c", "gzip -c '\(plain.path)' > '\(plain.path).gz'"]
        try gz.run(); gz.waitUntilExit()
        for path in [plain.path, plain.path + ".gz"] {
            let file = try IDXFile(path: path)
            XCTAssertEqual(file.dimensions, [2, 3, 4])
            XCTAssertEqual(file.bytes, values)
        }
    }

    func testBundledMNISTSubsetLoads() throws {
        let root = fixtureDirectory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let pair = IDXPair(images: root.appendingPathComponent("data/mnist-5k/t10k-images-idx3-ubyte.gz").path,
                           labels: root.appendingPathComponent("data/mnist-5k/t10k-labels-idx1-ubyte.gz").path)
        let data = try Dataset(pair, scale: 1 / 255, inputShape: [1, 28, 28], classes: 10, role: "data.test")
        XCTAssertEqual(data.count, 1000)
        XCTAssertEqual(data.sampleSize, 784)
        XCTAssertEqual(Set(data.labels).count, 10)
    }

    func expectError(_ body: () throws -> Void, containing text: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
            XCTFail("no error, expected one containing '\(text)'", file: file, line: line)
        } catch {
            let message = (error as? CohortError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains(text), "'\(message)' does not contain '\(text)'", file: file, line: line)
        }
    }

    func testBadFilesAreNamedInTheError() throws {
        let directory = try temporaryDirectory(self)
        let bad = directory.appendingPathComponent("bad.idx")
        try Data([1, 2, 3, 4, 5, 6, 7, 8]).write(to: bad)
        expectError({ _ = try IDXFile(path: bad.path) }, containing: "bad.idx: not an IDX file")
        let truncated = directory.appendingPathComponent("short.idx")
        var data = Data([0, 0, 8, 1, 0, 0, 0, 10])
        data.append(contentsOf: [1, 2, 3])
        try data.write(to: truncated)
        expectError({ _ = try IDXFile(path: truncated.path) }, containing: "short.idx: truncated")
        expectError({ _ = try IDXFile(path: directory.appendingPathComponent("none.idx").path) }, containing: "none.idx: no such file")
        let corrupt = directory.appendingPathComponent("corrupt.gz")
        try Data([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0x00, 0x12]).write(to: corrupt)
        expectError({ _ = try IDXFile(path: corrupt.path) }, containing: "corrupt.gz")
    }

    func testCountMismatchAndLabelRangeAreChecked() throws {
        let directory = try temporaryDirectory(self)
        let pair = try writeSyntheticData(in: directory, name: "d", count: 6, rows: 2, columns: 2, classes: 10, seed: 1)
        try writeIDX([1, 2, 3], dimensions: [3], to: URL(fileURLWithPath: pair.labels))
        expectError({ _ = try Dataset(pair, scale: 1, inputShape: [1, 2, 2], classes: 10, role: "data.train") }, containing: "has 6 images but")
        try writeIDX([1, 2, 3, 4, 5, 12], dimensions: [6], to: URL(fileURLWithPath: pair.labels))
        expectError({ _ = try Dataset(pair, scale: 1, inputShape: [1, 2, 2], classes: 10, role: "data.train") }, containing: "label 12 of sample 5 is out of range")
        try writeIDX([1, 2, 3, 4, 5, 6], dimensions: [6], to: URL(fileURLWithPath: pair.labels))
        expectError({ _ = try Dataset(pair, scale: 1, inputShape: [1, 3, 3], classes: 10, role: "data.train") }, containing: "model.input [1, 3, 3]")
    }

    func testUnshuffledBatchesFollowFileOrderAndDropTheLastPartialBatch() {
        var plan = BatchPlan(sampleCount: 10, batchSize: 3, shuffle: false, seed: 1)
        XCTAssertEqual(plan.stepsPerEpoch, 3)
        XCTAssertEqual(Array(plan.samples(step: 1, rank: 0, worldSize: 1).indices), [3, 4, 5])
        XCTAssertEqual(Array(plan.samples(step: 3, rank: 0, worldSize: 1).indices), [0, 1, 2])
    }

    func testShuffleIsAPermutationPerEpochThatDependsOnlyOnSeedAndEpoch() {
        let a = BatchPlan.permutation(count: 100, seed: 5, epoch: 0)
        XCTAssertEqual(a.sorted(), Array(0..<100))
        XCTAssertEqual(a, BatchPlan.permutation(count: 100, seed: 5, epoch: 0))
        XCTAssertNotEqual(a, BatchPlan.permutation(count: 100, seed: 5, epoch: 1))
        XCTAssertNotEqual(a, BatchPlan.permutation(count: 100, seed: 6, epoch: 0))
    }

    func testWorkersTakeContiguousSlicesDifferingByAtMostOne() {
        let slices = (0..<3).map { BatchPlan.slice(batch: 50, rank: $0, worldSize: 3) }
        XCTAssertEqual(slices, [0..<17, 17..<34, 34..<50])
        var plan = BatchPlan(sampleCount: 200, batchSize: 50, shuffle: true, seed: 9)
        var whole = Array(plan.samples(step: 2, rank: 0, worldSize: 1).indices)
        var joined: [Int] = []
        for rank in 0..<3 { joined += plan.samples(step: 2, rank: rank, worldSize: 3).indices }
        XCTAssertEqual(joined, whole)
        whole = Array(plan.samples(step: 2, rank: 1, worldSize: 3).indices)
        XCTAssertEqual(plan.samples(step: 2, rank: 1, worldSize: 3).firstGlobalIndex, 2 * 50 + 17)
    }

    /// p = 1, as PyTorch allows it: every value dropped in training (no infinite scale reaches the
    /// output or the gradient), the identity at inference.
    func testDropoutOfOneDropsEverythingInTrainingOnly() {
        let dropout = Dropout<Float>(input: [5], probability: 1)
        dropout.reserve(maxBatch: 3)
        let x = (0..<15).map { Float($0) - 7 }
        var y = [Float](repeating: 9, count: 15), dx = y
        for training in [true, false] {
            let context = StepContext(isTraining: training, seed: 3, step: 2, firstSampleIndex: 0, globalBatch: 3,
                                      communicator: SoloCommunicator())
            dropout.forward(x, &y, batch: 3, context: context)
            XCTAssertEqual(y, training ? [Float](repeating: 0, count: 15) : x)
        }
        let training = StepContext(isTraining: true, seed: 3, step: 2, firstSampleIndex: 0, globalBatch: 3, communicator: SoloCommunicator())
        dropout.forward(x, &y, batch: 3, context: training)
        dropout.backward(x, y, x, &dx, batch: 3, context: training)
        XCTAssertEqual(dx, [Float](repeating: 0, count: 15))
    }

    func testDropoutMaskDependsOnlyOnSeedStepLayerAndSampleIndex() {
        let size = 40
        var whole = [Float](repeating: 0, count: 4 * size)
        dropoutMask(&whole, batch: 4, size: size, probability: 0.5, seed: 1, step: 7, layer: 3, firstSampleIndex: 10)
        var tail = [Float](repeating: 0, count: 2 * size)
        dropoutMask(&tail, batch: 2, size: size, probability: 0.5, seed: 1, step: 7, layer: 3, firstSampleIndex: 12)
        XCTAssertEqual(Array(whole[(2 * size)...]), tail)
        XCTAssertTrue(whole.allSatisfy { $0 == 0 || $0 == 2 })
        let kept = whole.filter { $0 != 0 }.count
        XCTAssertGreaterThan(kept, 50)
        XCTAssertLessThan(kept, 110)
        var other = [Float](repeating: 0, count: 4 * size)
        dropoutMask(&other, batch: 4, size: size, probability: 0.5, seed: 1, step: 8, layer: 3, firstSampleIndex: 10)
        XCTAssertNotEqual(whole, other)
    }
}

final class BLASKernelTests: XCTestCase {
    let avx512: Set = ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]

    /// The processor of workloads.md's machine B (AVX-512, detected as Prescott) gets SkylakeX kernels;
    /// kernels that already fit are kept; a CPU without AVX2 keeps what OpenBLAS chose.
    func testSlowKernelsAreReplacedOnlyWhereTheCPUCanDoBetter() {
        let xeon = BLASKernels.CPU(flags: avx512, vendor: "GenuineIntel", family: 6)
        XCTAssertEqual(BLASKernels.betterCore(current: "Prescott", cpu: xeon), "SkylakeX")
        XCTAssertEqual(BLASKernels.betterCore(current: "Haswell", cpu: xeon), "SkylakeX")
        XCTAssertNil(BLASKernels.betterCore(current: "Cooperlake", cpu: xeon))
        let avx2 = BLASKernels.CPU(flags: ["avx", "avx2", "fma"], vendor: "AuthenticAMD", family: 23)
        XCTAssertEqual(BLASKernels.betterCore(current: "Prescott", cpu: avx2), "Haswell")
        XCTAssertNil(BLASKernels.betterCore(current: "Zen", cpu: avx2))
        XCTAssertNil(BLASKernels.betterCore(current: "Prescott", cpu: BLASKernels.CPU(flags: ["sse4_2", "avx"])))
    }

    /// Zen 4 (family 25 with AVX-512) runs AVX-512 at half width: the AVX2 Haswell kernels are faster
    /// there. Zen 5 (family 26, machine A of workloads.md) keeps AVX-512 kernels.
    func testZen4GetsTheAVX2KernelsAndZen5TheAVX512Ones() {
        let zen4 = BLASKernels.CPU(flags: avx512, vendor: "AuthenticAMD", family: 25)
        XCTAssertEqual(BLASKernels.betterCore(current: "Cooperlake", cpu: zen4), "Haswell")
        XCTAssertEqual(BLASKernels.betterCore(current: "Zen", cpu: zen4), "Haswell")
        XCTAssertNil(BLASKernels.betterCore(current: "Haswell", cpu: zen4))
        let zen3 = BLASKernels.CPU(flags: ["avx", "avx2", "fma"], vendor: "AuthenticAMD", family: 25)
        XCTAssertNil(BLASKernels.betterCore(current: "Zen", cpu: zen3))
        let zen5 = BLASKernels.CPU(flags: avx512, vendor: "AuthenticAMD", family: 26)
        XCTAssertEqual(BLASKernels.betterCore(current: "Haswell", cpu: zen5), "SkylakeX")
    }

    /// This machine's CPU is read from /proc/cpuinfo: a vendor and a family, and flags (the x86
    /// layout of the file; elsewhere nothing is chosen and OpenBLAS keeps its own choice).
    func testThisCPUIsReadFromProcCpuinfo() throws {
        #if arch(x86_64) && os(Linux)
        let cpu = BLASKernels.thisCPU()
        XCTAssertTrue(["GenuineIntel", "AuthenticAMD"].contains(cpu.vendor), cpu.vendor)
        XCTAssertGreaterThan(cpu.family, 0)
        XCTAssertTrue(cpu.flags.contains("fpu"))
        XCTAssertTrue(cpu.flags.contains("sse2"))
        #else
        throw XCTSkip("/proc/cpuinfo has the x86 layout only on x86-64 Linux")
        #endif
    }
}
