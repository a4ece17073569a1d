import Foundation
import XCTest
@testable import Cohort

/// The committed fixtures (see `Fixtures/make_fixtures.py`).
let fixtureDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

/// A fresh temporary directory, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("cohort-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Writes an uncompressed IDX file of bytes.
func writeIDX(_ values: [UInt8], dimensions: [Int], to url: URL) throws {
    var data = Data([0, 0, 0x08, UInt8(dimensions.count)])
    for d in dimensions { data.append(contentsOf: [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)]) }
    data.append(contentsOf: values)
    try data.write(to: url)
}

/// The largest |a - b| over the largest |b|: the error of a tensor relative to its scale.
func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    var diff = 0.0, scale = 0.0
    for i in a.indices { diff = max(diff, abs(a[i] - b[i])); scale = max(scale, abs(b[i])) }
    return diff / max(scale, 1e-12)
}

/// A small synthetic data set written as IDX files: `count` images `[rows, columns]` and labels below `classes`.
func writeSyntheticData(in directory: URL, name: String, count: Int, rows: Int, columns: Int, classes: Int, seed: UInt64) throws -> IDXPair {
    let random = CounterRandom(seed, 99)
    var labels: [UInt8] = []
    var pixels: [UInt8] = []
    for n in 0..<count {
        let label = random.below(classes, UInt64(n))
        labels.append(UInt8(label))
        for i in 0..<(rows * columns) {
            // A faint class-dependent pattern under noise, so that a model can learn it.
            let signal = (i % classes == label) ? 120 : 0
            pixels.append(UInt8(min(255, signal + random.below(100, UInt64(1_000_000 + n * rows * columns + i)))))
        }
    }
    let images = directory.appendingPathComponent("\(name)-images.idx")
    let labelFile = directory.appendingPathComponent("\(name)-labels.idx")
    try writeIDX(pixels, dimensions: [count, rows, columns], to: images)
    try writeIDX(labels, dimensions: [count], to: labelFile)
    return IDXPair(images: images.path, labels: labelFile.path)
}

/// The `cohort` executable that `swift build` put beside the test bundle.
func cohortBinary() throws -> URL {
    let candidates = [Bundle.main.bundleURL, URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        .map { $0.appendingPathComponent("cohort") }
    return try XCTUnwrap(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }, "cohort binary not built")
}

/// One training forward and backward of `model` on one worker: its input already filled for
/// `labels.count` samples, the loss's gradient scaled by 1 / batch.
func forwardAndBackward(_ model: Model<Double>, labels: [Int32], seed: UInt64 = 5) throws {
    let context = StepContext(isTraining: true, seed: seed, step: 0, firstSampleIndex: 0, globalBatch: labels.count,
                              communicator: SoloCommunicator())
    try model.forward(batch: labels.count, context: context)
    _ = labels.withUnsafeBufferPointer { l in
        softmaxCrossEntropy(logits: model.output, labels: l.baseAddress!, dlogits: model.outputGradient,
                            batch: labels.count, classes: model.classes, gradientScale: 1 / Double(labels.count))
    }
    try model.backward(batch: labels.count, context: context)
}

/// The Double model of `input` and `layers` (a YAML list, indented as under `model:`), from a
/// config named `file`.
func inlineModel(input: [Int], layers: String, file: String = "inline.yaml") throws -> Model<Double> {
    let config = try ConfigLoader.parse("""
        data: {train: {images: a, labels: b}}
        model:
          input: \(input)
          layers:
        \(layers)
        train: {batch_size: 4, max_steps: 1}
        """, file: file)
    return try Model<Double>(config.model)
}

/// `inlineModel(input:layers:)`, initialised with `seed`, reserved for `batch` samples and its
/// input filled with normal draws of `inputSeed`.
func modelOnRandomInput(input: [Int], layers: String, batch: Int, seed: UInt64, inputSeed: UInt64,
                        keepsActivationGradients: Bool = false) throws -> Model<Double> {
    let model = try inlineModel(input: input, layers: layers)
    model.initialize(seed: seed)
    model.keepsActivationGradients = keepsActivationGradients
    model.reserve(maxBatch: batch)
    let random = CounterRandom(inputSeed)
    for i in 0..<(batch * model.inputSize) { model.input[i] = random.normal(UInt64(i)) }
    return model
}

/// A world of two on one host, in one process: its collectives do nothing, and its shared memory
/// (`sharedSumBuffer`) is this process's own. It counts the communicators asked of it (`duplicate`).
final class OneHostCommunicator: Communicator {
    var rank: Int { 0 }
    var worldSize: Int { 2 }
    var step = 0
    let sumsInSharedMemory: Bool
    var duplicates = 0
    private(set) var storage: UnsafeMutablePointer<Float>?
    init(sumsInSharedMemory: Bool = true) { self.sumsInSharedMemory = sumsInSharedMemory }
    deinit { storage?.deallocate() }
    func sharedSumBuffer(count: Int) -> UnsafeMutablePointer<Float>? {
        precondition(storage == nil, "shared memory asked for twice")
        storage = .allocate(capacity: count)
        return storage
    }
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {}
    func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) {}
    func allreduceSumBFloat16(_ buffer: UnsafeMutablePointer<Float>, count: Int) {}
    func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) {}
    func allgather(_ values: [UInt64]) -> [[UInt64]] { [values, values] }
    func barrier() {}
    func duplicate() -> Communicator? { duplicates += 1; return nil }
    func agreeOnSetup(failed: Bool) -> [Int] { [] }
}
