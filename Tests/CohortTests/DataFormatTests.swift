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

    /// A gzip file whose header announces more than memory holds is refused on its first bytes,
    /// before anything else is inflated (its content here is a mebibyte: inflated whole, it
    /// would be refused as truncated instead).
    func testAGzipFileTooLargeToInflateIsRefusedOnItsHeader() throws {
        let directory = try temporaryDirectory(self)
        var idx = Data([0, 0, 8, 2])
        for size: UInt32 in [4_000_000_000, 1_000_000] { idx.append(contentsOf: withUnsafeBytes(of: size.bigEndian, Array.init)) }
        let npy = npyFile(Data(), descr: "<f4", shape: [1_000_000_000, 1_000_000])
        for (name, header) in [("big.idx", idx), ("big.npy", npy)] {
            try (header + Data(count: 1 << 20)).write(to: directory.appendingPathComponent(name))
        }
        try shell("gzip big.idx big.npy", in: directory)
        for (name, gib) in [("big.idx.gz", "3725290.3"), ("big.npy.gz", "3725290.3")] {
            let path = directory.appendingPathComponent(name).path
            XCTAssertThrowsError(try StoredArray.open(path: path)) { error in
                let message = (error as? CohortError)?.message ?? "\(error)"
                XCTAssertTrue(message.hasPrefix("\(path): its header announces \(gib) GiB of data, more than 80 % of "), message)
                XCTAssertTrue(message.hasSuffix("to inflate in memory; decompress it (gunzip -k) so that it is memory-mapped"), message)
            }
        }
    }

    func testAnnouncedLengthsAreTheWholeFiles() throws {
        let mnist = Data([0, 0, 8, 3, 0, 0, 0xEA, 0x60, 0, 0, 0, 28, 0, 0, 0, 28])
        XCTAssertEqual(mnist.withUnsafeBytes { IDXFile.announcedLength($0) }, 16 + 60000 * 28 * 28)
        let npy = npyFile(Data(count: 12), descr: "<f4", shape: [3])
        XCTAssertEqual(npy.withUnsafeBytes { NumPyFile.announcedLength($0) }, npy.count)
        XCTAssertEqual(npy.prefix(20).withUnsafeBytes { NumPyFile.announcedLength($0) }, nil, "a header cut short")
        XCTAssertEqual(npy.withUnsafeBytes { IDXFile.announcedLength($0) }, nil)
        XCTAssertEqual(mnist.withUnsafeBytes { NumPyFile.announcedLength($0) }, nil)
        let wide = Data([0, 0, 8, 4] + [UInt8](repeating: 0xFF, count: 16))
        XCTAssertEqual(wide.withUnsafeBytes { IDXFile.announcedLength($0) }, Int.max, "past Int.max")
    }

    /// A gzip file that inflates past what its header announces is refused as soon as it does: 3 GB
    /// of zeros after a small array were inflated whole (8 s, 3.1 GB) before the error.
    func testAGzipFileIsNotInflatedPastWhatItsHeaderAnnounces() throws {
        let directory = try temporaryDirectory(self)
        let npy = directory.appendingPathComponent("x.npy")
        try npyFile(Data(repeating: 7, count: 2 * 16), descr: "|u1", shape: [2, 4, 4]).write(to: npy)
        // 64 MB of zeros after the array, in the same stream: inflated whole, the error came after them.
        try shell("{ cat x.npy; head -c 67108864 /dev/zero; } | gzip -1 > x.npy.gz", in: directory)
        let announced = try Data(contentsOf: npy).count
        XCTAssertThrowsError(try StoredArray.open(path: npy.path + ".gz")) { error in
            XCTAssertEqual("\(error)", "\(npy.path).gz: inflates to more than the \(announced) bytes its header announces (data after the values, or another file's header)")
        }
    }

    func testUncompressedFilesAreMemoryMappedAndGzipIsReadWhole() throws {
        let directory = try temporaryDirectory(self)
        let pair = try writeSyntheticData(in: directory, name: "d", count: 20, rows: 4, columns: 4, classes: 3, seed: 1)
        let npy = directory.appendingPathComponent("x.npy")
        try npyFile(Data(repeating: 7, count: 20 * 16), descr: "|u1", shape: [20, 4, 4]).write(to: npy)
        try shell("gzip -k '\(pair.images)' && gzip -c '\(npy.path)' > '\(npy.path).gz'", in: directory)
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
        try data.gather([3], into: input.pointer, labels: label.pointer)
        XCTAssertEqual(Array(input.buffer), pixels[..<3072].map(Float.init), "sample 3 is the first record of the second file")
    }

    /// The example of the public contract's "Your own data" (shared/spec/interface.md), word for
    /// word, with a model around it; and its CIFAR variant.
    func testTheSpecsOwnDataExampleIsAValidConfig() throws {
        let data = """
            data:
              train: {images: x_train.npy, labels: y_train.npy}   # IDX or NumPy .npy, told apart by content
              test:  {images: x_test.npy,  labels: y_test.npy}
              # or CIFAR's binary batches (CIFAR-10: a label byte, then 3,072 pixel bytes, per record):
              # train: {cifar10: [data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin]}
              # test:  {cifar10: [test_batch.bin]}                  # cifar100: two label bytes (coarse, fine); fine is used
              scale: 0.00392156862745098       # multiplies integer pixels (uint8); float arrays are used as stored
              normalize: {mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616]}   # per channel, after scale
              augment:                         # training batches only; never eval, predict or check
                random_crop: {padding: 4}      # zero-pad every side, crop the input size at a random offset
                horizontal_flip: 0.5           # probability of mirroring left-right

            """
        let rest = """
            model: {input: [3, 32, 32], layers: [flatten, {dense: {out_features: 10}}]}
            train: {batch_size: 64, epochs: 1}
            """
        let config = try ConfigLoader.parse(data + rest, file: "interface.md")
        XCTAssertEqual(config.data.train, .arrays(IDXPair(images: "x_train.npy", labels: "y_train.npy")))
        XCTAssertEqual(config.data.normalize?.std, [0.2470, 0.2435, 0.2616])
        XCTAssertEqual(config.data.augment, AugmentConfig(cropPadding: 4, flipProbability: 0.5))
        let transform = try InputTransform(config.data, inputShape: [3, 32, 32], seed: config.seed, file: "interface.md")
        XCTAssertEqual(transform.augmentation?.padding, 4)
        let cifar = data.replacingOccurrences(of: "  # train: {cifar10", with: "  train: {cifar10")
            .replacingOccurrences(of: "  # test:  {cifar10", with: "  test:  {cifar10")
            .replacingOccurrences(of: "  train: {images: x_train.npy, labels: y_train.npy}", with: "")
            .replacingOccurrences(of: "  test:  {images: x_test.npy,  labels: y_test.npy}\n", with: "")
        let variant = try ConfigLoader.parse(cifar + rest, file: "interface.md")
        XCTAssertEqual(variant.data.train?.paths.count, 5)
        XCTAssertEqual(variant.data.test, .cifar(.cifar10, ["test_batch.bin"]))
    }
}

/// Runs `command` with /bin/sh in `directory` and checks that it succeeded.
private func shell(_ command: String, in directory: URL, file: StaticString = #filePath, line: UInt = #line) throws {
    let result = try runProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", command], in: directory, file: file, line: line)
    XCTAssertEqual(result.status, 0, "\(command): \(result.err)", file: file, line: line)
}
