import Foundation
import XCTest
@testable import Cohort

/// The same samples in every format Cohort reads train the same weights, bit for bit: IDX, NumPy
/// `.npy` (uint8, and float32 / float64 holding exactly what IDX and `scale` give), CIFAR-10 and
/// CIFAR-100 batches split over several files.
final class DataFormatTests: XCTestCase {
    let count = 60
    let scale = 1.0 / 255.0

    /// A tiny model on 3 x 32 x 32 images, with normalisation and augmentation, over 2 epochs.
    func config(train: String, run: URL) throws -> TrainingConfig {
        try ConfigLoader.parse("""
            seed: 3
            data:
              train: \(train)
              scale: \(scale)
              normalize: {mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3]}
              augment: {random_crop: {padding: 3}, horizontal_flip: 0.5}
            model:
              input: [3, 32, 32]
              layers:
                - avgpool2d: {kernel_size: 4}
                - conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
                - batchnorm: {}
                - relu: {}
                - flatten: {}
                - dense: {out_features: 5}
            optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
            train: {batch_size: 12, max_steps: 10}
            checkpoint: {dir: \(run.path)}
            """, file: "formats.yaml")
    }

    func trainedWeights(_ train: String, in directory: URL, name: String) throws -> Data {
        let run = directory.appendingPathComponent(name)
        let summary = try Trainer(config: config(train: train, run: run), communicator: SoloCommunicator(), log: { _ in }).run(resume: .fresh)
        XCTAssertEqual(summary.steps, 10)
        return try Data(contentsOf: run.appendingPathComponent("checkpoints/10/model.safetensors"))
    }

    func testTheSameSamplesInEveryFormatTrainBitwiseIdenticalWeights() throws {
        let directory = try temporaryDirectory(self)
        let (pixels, labels) = syntheticColorImages(count: count, classes: 5, seed: 1)
        func file(_ name: String, _ data: Data) throws -> String {
            let url = directory.appendingPathComponent(name)
            try data.write(to: url)
            return url.path
        }
        try writeIDX(pixels, dimensions: [count, 3, 32, 32], to: directory.appendingPathComponent("x.idx"))
        try writeIDX(labels, dimensions: [count], to: directory.appendingPathComponent("y.idx"))
        let shape = [count, 3, 32, 32]
        let floats = pixels.map { Float($0) * Float(scale) }
        let sources: [(String, String)] = [
            ("idx", "{images: \(directory.path)/x.idx, labels: \(directory.path)/y.idx}"),
            ("npy uint8", "{images: \(try file("u8.npy", npyFile(rawBytes(pixels), descr: "|u1", shape: shape))), labels: \(try file("y.npy", npyFile(rawBytes(labels.map(Int64.init)), descr: "<i8", shape: [count])))}"),
            ("npy float32", "{images: \(try file("f4.npy", npyFile(rawBytes(floats), descr: "<f4", shape: shape, major: 2))), labels: \(try file("y4.npy", npyFile(rawBytes(labels.map(Int32.init)), descr: "<i4", shape: [count])))}"),
            ("npy float64", "{images: \(try file("f8.npy", npyFile(rawBytes(floats.map(Double.init)), descr: "<f8", shape: shape, major: 3))), labels: \(directory.path)/y.idx}"),
            ("cifar10", "{cifar10: [\(try file("c10-1.bin", cifarRecords(pixels: Array(pixels[..<(40 * 3072)]), labels: Array(labels[..<40]), format: .cifar10))), \(try file("c10-2.bin", cifarRecords(pixels: Array(pixels[(40 * 3072)...]), labels: Array(labels[40...]), format: .cifar10)))]}"),
            ("cifar100", "{cifar100: [\(try file("c100.bin", cifarRecords(pixels: pixels, labels: labels, format: .cifar100)))]}"),
        ]
        for (pixel, float) in zip(pixels, floats) where Float(pixel) * Float(scale) != float {
            XCTFail("a stored float32 differs from what IDX and scale give"); break
        }
        let reference = try trainedWeights(sources[0].1, in: directory, name: sources[0].0)
        for (name, train) in sources.dropFirst() {
            XCTAssertEqual(try trainedWeights(train, in: directory, name: name), reference, "\(name) trains other weights than IDX")
        }
    }

    func testUncompressedFilesAreMemoryMappedAndGzipIsReadWhole() throws {
        let directory = try temporaryDirectory(self)
        let pair = try writeSyntheticData(in: directory, name: "d", count: 20, rows: 4, columns: 4, classes: 3, seed: 1)
        let npy = directory.appendingPathComponent("x.npy")
        try npyFile(Data(repeating: 7, count: 20 * 16), descr: "|u1", shape: [20, 4, 4]).write(to: npy)
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/sh")
        gzip.arguments = ["-c", "gzip -k '\(pair.images)' && gzip -c '\(npy.path)' > '\(npy.path).gz'"]
        try gzip.run()
        gzip.waitUntilExit()
        for path in [pair.images, npy.path] {
            let source = try SampleSource(images: StoredArray.open(path: path), inputShape: [1, 4, 4])
            XCTAssertTrue(source.bytes.isMapped, path)
        }
        for path in [pair.images + ".gz", npy.path + ".gz"] {
            let source = try SampleSource(images: StoredArray.open(path: path), inputShape: [1, 4, 4])
            XCTAssertFalse(source.bytes.isMapped, path)
            XCTAssertEqual(source.residentBytes, source.bytes.count, path)
        }
        let gzipped = try SampleSource(images: StoredArray.open(path: npy.path + ".gz"), inputShape: [1, 4, 4])
        XCTAssertEqual(gzipped.count, 20)
        XCTAssertEqual(gzipped.element, .uint8)
    }

    func testCIFARBatchesAreOneDataSetInTheOrderGiven() throws {
        let directory = try temporaryDirectory(self)
        let (pixels, labels) = syntheticColorImages(count: 5, classes: 5, seed: 2)
        let first = directory.appendingPathComponent("a.bin"), second = directory.appendingPathComponent("b.bin")
        try cifarRecords(pixels: Array(pixels[..<(2 * 3072)]), labels: Array(labels[..<2]), format: .cifar100).write(to: first)
        try cifarRecords(pixels: Array(pixels[(2 * 3072)...]), labels: Array(labels[2...]), format: .cifar100).write(to: second)
        let data = try Dataset(.cifar(.cifar100, [second.path, first.path]), scale: 1, inputShape: [3, 32, 32], classes: 100, role: "data.train")
        XCTAssertEqual(data.count, 5)
        XCTAssertEqual(data.labels, (labels[2...] + labels[..<2]).map(Int32.init), "the fine labels, in file order")
        let input = Buffer<Float>(count: 3072), label = Buffer<Int32>(count: 1)
        data.gather([3], into: input.pointer, labels: label.pointer)
        XCTAssertEqual(Array(input.buffer), pixels[..<3072].map(Float.init), "sample 3 is the first record of the second file")
    }
}
