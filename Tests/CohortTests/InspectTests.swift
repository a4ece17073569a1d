import CZlib
import Foundation
import XCTest
@testable import Cohort

/// `cohort inspect`'s pictures and page, read back by a PNG decoder of the test's own.
final class InspectTests: XCTestCase {
    /// A model on 4 x 4 images: conv2d 2 filters of 2 x 2 (no bias), ReLU, flatten, dense 4; 12 test samples.
    func tinyConvolution(in directory: URL) throws -> (Model<Float>, Dataset) {
        let test = try writeSyntheticData(in: directory, name: "test", count: 12, rows: 4, columns: 4, classes: 4, seed: 7)
        let config = try ConfigLoader.parse("""
            data: {train: {images: \(test.images), labels: \(test.labels)}, test: {images: \(test.images), labels: \(test.labels)}}
            model: {input: [1, 4, 4], layers: [{conv2d: {out_channels: 2, kernel_size: 2, bias: false}}, relu, flatten, {dense: {out_features: 4}}]}
            train: {batch_size: 4, max_steps: 1}
            """, file: "tiny.yaml")
        let model = try Model<Float>(config.model)
        model.initialize(seed: 1)
        let dataset = try Dataset(config.data.test!, scale: config.data.scale, inputShape: model.inputShape,
                                  classes: model.classes, role: "data.test")
        return (model, dataset)
    }

    func testPNGDecodesToTheEncodedPixels() throws {
        let grey: [UInt8] = [0, 10, 20, 30, 40, 250]
        let decodedGrey = try decodePNG(PNGWriter.encode(width: 3, height: 2, colour: .greyscale, pixels: grey))
        XCTAssertEqual(decodedGrey.width, 3)
        XCTAssertEqual(decodedGrey.height, 2)
        XCTAssertEqual(decodedGrey.bitDepth, 8)
        XCTAssertEqual(decodedGrey.colourType, 0)
        XCTAssertEqual(decodedGrey.pixels, grey)
        let rgb: [UInt8] = (0..<(2 * 3 * 3)).map { UInt8($0 * 14) }
        let decodedRGB = try decodePNG(PNGWriter.encode(width: 2, height: 3, colour: .rgb, pixels: rgb))
        XCTAssertEqual(decodedRGB.colourType, 2)
        XCTAssertEqual([decodedRGB.width, decodedRGB.height], [2, 3])
        XCTAssertEqual(decodedRGB.pixels, rgb)
    }

    func testFiltersOfAHandSetModelAreScaledEachToItsOwnRange() throws {
        let directory = try temporaryDirectory(self)
        let (model, test) = try tinyConvolution(in: directory)
        let weight = try XCTUnwrap(model.parameterPointer(layer: 0, name: "weight"))
        let filters: [Float] = [0, 1, 2, 3, /* filter 1: */ -1, -1, -1, 0.5]
        for (i, value) in filters.enumerated() { weight[i] = value }
        let output = directory.appendingPathComponent("out")
        try Inspector.run(model: model, test: test, output: output, title: "t", summary: "s")
        let png = try decodePNG(Data(contentsOf: output.appendingPathComponent("filters.png")))
        // Two 2 x 2 filters enlarged 20 times (40 px), side by side, 3 px of blue apart, in grey as RGB.
        XCTAssertEqual(png.colourType, 2)
        XCTAssertEqual([png.width, png.height], [83, 40])
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(png.pixels[((y * png.width + x) * 3)..<((y * png.width + x) * 3 + 3)]) }
        XCTAssertEqual([pixel(0, 0), pixel(39, 0), pixel(0, 39), pixel(39, 39)], [[0, 0, 0], [85, 85, 85], [170, 170, 170], [255, 255, 255]])
        XCTAssertEqual([pixel(43, 0), pixel(63, 0), pixel(43, 20), pixel(63, 20)], [[0, 0, 0], [0, 0, 0], [0, 0, 0], [255, 255, 255]])
        XCTAssertEqual(pixel(41, 10), [70, 110, 170])
    }

    func testAReceptiveFieldFollowsConvolutionsAndPooling() throws {
        let config = try ConfigLoader.parse("""
            data: {train: {images: a, labels: b}}
            model: {input: [1, 28, 28], layers: [{conv2d: {out_channels: 2, kernel_size: 3, padding: 1}}, relu, {maxpool2d: {kernel_size: 2}},
                    {conv2d: {out_channels: 2, kernel_size: 3, padding: 1}}, flatten, {dense: {out_features: 2}}]}
            train: {batch_size: 1, max_steps: 1}
            """, file: "rf.yaml")
        let model = try Model<Float>(config.model)
        // 3 + (2 - 1) x 1 + (3 - 1) x 2 = 8 pixels, 2 apart: position 0 sees [-3, 4], position 5 sees [7, 14].
        XCTAssertEqual(ReceptiveField(model, through: 3).map { [$0.size, $0.jump] }, [8, 2])
        XCTAssertEqual(ReceptiveField(model, through: 3)?.span(0, extent: 28), 0...4)
        XCTAssertEqual(ReceptiveField(model, through: 3)?.span(5, extent: 28), 7...14)
        XCTAssertEqual(ReceptiveField(model, through: 0)?.span(0, extent: 28), 0...1)
        XCTAssertNil(ReceptiveField(model, through: 5), "a dense layer has no receptive field")
    }

    /// The field through residual blocks, against the pixels that actually move an output: a linear
    /// model (no activation, so no input's effect is cut off), one pixel changed at a time.
    func testAReceptiveFieldThroughResidualBlocksIsWhatMovesTheOutput() throws {
        let config = try ConfigLoader.parse("""
            data: {train: {images: a, labels: b}}
            model:
              input: [1, 16, 16]
              layers:
                - conv2d: {out_channels: 2, kernel_size: 3, padding: 1}
                - residual: {body: [{conv2d: {out_channels: 2, kernel_size: 3, padding: 1}}, {conv2d: {out_channels: 2, kernel_size: 3, padding: 1}}]}
                - residual:
                    body: [{conv2d: {out_channels: 3, kernel_size: 3, stride: 2, padding: 1}}, {conv2d: {out_channels: 3, kernel_size: 3, padding: 1}}]
                    shortcut: [{conv2d: {out_channels: 3, kernel_size: 1, stride: 2}}]
                - flatten
                - dense: {out_features: 2}
            train: {batch_size: 1, max_steps: 1}
            """, file: "rf.yaml")
        let model = try Model<Float>(config.model)
        model.initialize(seed: 3)
        model.reserve(maxBatch: 1)
        let random = CounterRandom(5)
        let image = (0..<256).map { Float(random.normal(UInt64($0))) }
        let context = StepContext(isTraining: false, seed: 0, step: 0, firstSampleIndex: 0, globalBatch: 1, communicator: SoloCommunicator())
        /// Block 2's output (3 x 8 x 8) at every channel of position (row, column), for `input`.
        func outputs(_ input: [Float], row: Int, column: Int) throws -> [Float] {
            model.input.update(from: input, count: input.count)
            try model.forward(batch: 1, context: context)
            return (0..<3).map { model.activation(3)[$0 * 64 + row * 8 + column] }
        }
        // 3, then 2 + 2 in the first block's body, then 2 + 4 in the second's (its stride doubles the jump).
        let field = try XCTUnwrap(ReceptiveField(model, through: 2))
        XCTAssertEqual([field.size, field.jump], [13, 2])
        for (row, column) in [(3, 3), (0, 7)] {
            let before = try outputs(image, row: row, column: column)
            var rows = Set<Int>(), columns = Set<Int>()
            for pixel in 0..<256 {
                var moved = image
                moved[pixel] += 1
                if try outputs(moved, row: row, column: column) != before { rows.insert(pixel / 16); columns.insert(pixel % 16) }
            }
            XCTAssertEqual(rows.min()!...rows.max()!, field.span(row, extent: 16), "rows seen by position (\(row), \(column))")
            XCTAssertEqual(columns.min()!...columns.max()!, field.span(column, extent: 16), "columns seen by position (\(row), \(column))")
        }
    }

    func testThePageShowsEveryPictureItWroteAndEachDecodes() throws {
        let directory = try temporaryDirectory(self)
        let (model, test) = try tinyConvolution(in: directory)
        let output = directory.appendingPathComponent("out")
        let page = try Inspector.run(model: model, test: test, output: output, title: "t <&>", summary: "s")
        let html = try String(contentsOf: output.appendingPathComponent("index.html"), encoding: .utf8)
        let written = try FileManager.default.contentsOfDirectory(atPath: output.path).filter { $0.hasSuffix(".png") }
        let sources = html.components(separatedBy: "<img src=\"").dropFirst().map { String($0.prefix { $0 != "\"" }) }
        XCTAssertEqual(Set(sources), Set(written))
        XCTAssertEqual(sources, page.files)
        XCTAssertTrue(written.contains("filters.png") && written.contains("maps-0-layer0.png") && written.contains("favourites-layer0.png"))
        for name in written { XCTAssertNoThrow(try decodePNG(Data(contentsOf: output.appendingPathComponent(name))), name) }
        XCTAssertTrue(html.contains("<title>t &lt;&amp;&gt;</title>"))
        XCTAssertTrue(html.contains("no recurrent layer"), "the recurrent section says why it is empty")
    }

    /// `--output` is the user's directory: an inspection replaces the pictures an earlier one wrote
    /// (a stale `wrong-999.png` goes) and leaves the user's own files, `maps-holiday.png` too.
    func testAnInspectionReplacesOnlyItsOwnPictures() throws {
        let directory = try temporaryDirectory(self)
        let (model, test) = try tinyConvolution(in: directory)
        let output = directory.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let mine = ["maps-holiday.png", "wrong-answers.png", "filters-old.png", "hidden-1.png", "notes.txt"]
        for name in mine + ["wrong-999.png"] { try Data(name.utf8).write(to: output.appendingPathComponent(name)) }
        let page = try Inspector.run(model: model, test: test, output: output, title: "t", summary: "s")
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: output.path))
        XCTAssertTrue(Set(mine).isSubset(of: left), "\(left)")
        XCTAssertFalse(left.contains("wrong-999.png"))
        for name in page.files { XCTAssertNotNil(name.wholeMatch(of: Inspector.pictureName), "\(name): not a name an inspection removes") }
    }

    /// A picture that cannot be written (a directory in its place, as a full disk would) leaves the
    /// earlier inspection's page and pictures as they were, and no staging directory behind.
    func testAFailedInspectionLeavesTheEarlierOneWhole() throws {
        let directory = try temporaryDirectory(self)
        let (model, test) = try tinyConvolution(in: directory)
        let output = directory.appendingPathComponent("out")
        try Inspector.run(model: model, test: test, output: output, title: "first", summary: "s")
        func contents() throws -> [String: Data] {
            let names = try FileManager.default.contentsOfDirectory(atPath: output.path)
            return try Dictionary(uniqueKeysWithValues: names.map { ($0, try Data(contentsOf: output.appendingPathComponent($0))) })
        }
        let earlier = try contents()
        let staging = output.appendingPathComponent(".cohort-inspect-\(getpid())")
        try FileManager.default.createDirectory(at: staging.appendingPathComponent("maps-0-layer0.png/in-the-way"),
                                                withIntermediateDirectories: true)
        XCTAssertThrowsError(try Inspector.run(model: model, test: test, output: output, title: "second", summary: "s")) {
            XCTAssertTrue("\($0)".contains("maps-0-layer0.png: cannot write the image"), "\($0)")
        }
        XCTAssertEqual(try contents(), earlier)
    }

    /// An output directory that cannot be made names the path at fault and why, in the system's
    /// words (it had said "NSCocoaErrorDomain error 512"); missing directories above it are made.
    func testAnOutputDirectoryThatCannotBeMadeNamesThePathAtFault() throws {
        let directory = try temporaryDirectory(self)
        let (model, test) = try tinyConvolution(in: directory)
        let file = directory.appendingPathComponent("afile")
        try Data().write(to: file)
        XCTAssertThrowsError(try Inspector.run(model: model, test: test, output: file.appendingPathComponent("sub"), title: "t", summary: "s")) {
            XCTAssertEqual("\($0)", "\(file.path): cannot make the output directory \(file.path)/sub there (a file, not a directory)")
        }
        XCTAssertThrowsError(try Inspector.run(model: model, test: test, output: URL(fileURLWithPath: "/proc/cohort-test"), title: "t", summary: "s")) {
            XCTAssertEqual("\($0)", "/proc/cohort-test: cannot make the output directory /proc/cohort-test (No such file or directory)")
        }
        let nested = directory.appendingPathComponent("a/b/c")
        try Inspector.run(model: model, test: test, output: nested, title: "t", summary: "s")
        XCTAssertTrue(FileManager.default.fileExists(atPath: nested.appendingPathComponent("index.html").path))
    }

    /// A model whose outputs are not finite has no pictures to give: inspect said "(p -nan)" under
    /// a hundred misclassified samples and exited 0, where eval and predict refuse.
    func testAModelOfNaNOutputsIsAnError() throws {
        let directory = try temporaryDirectory(self)
        let (model, test) = try tinyConvolution(in: directory)
        model.parameters.pointer.update(repeating: 3e38, count: model.parameters.count)
        XCTAssertThrowsError(try Inspector.run(model: model, test: test, output: directory.appendingPathComponent("out"), title: "t", summary: "s")) {
            XCTAssertEqual(($0 as? Predictor.NonFiniteOutputs)?.sample, 0, "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("out/index.html").path))
    }

    func testEscapingCoversMarkupAndQuotes() {
        XCTAssertEqual(InspectPage.escape(#"<a href="x">Tom & 'Jerry'</a>"#),
                       "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;")
    }

    func testFavouriteSamplesAreThoseOfLargestActivation() throws {
        let directory = try temporaryDirectory(self)
        let (model, test) = try tinyConvolution(in: directory)
        let context = InspectionContext(model: model, test: test, output: directory, chunk: 256)
        let stage = try XCTUnwrap(context.mapStages.last)
        XCTAssertEqual(stage.layer, 0)
        XCTAssertEqual(stage.through, 1, "the maps are read after the ReLU")
        let scores = try Inspector.scanTestSet(context, stage: stage).scores
        _ = try context.load(0..<test.count)
        try context.forward(batch: test.count)
        let maps = model.activation(2)
        for n in 0..<test.count {
            for c in 0..<2 {
                let expected = (0..<9).map { maps[(n * 2 + c) * 9 + $0] }.max()!
                XCTAssertEqual(scores[n * 2 + c], expected)
            }
        }
    }

    /// A normalised colour image is drawn as the image, not as its normalised values (CIFAR's
    /// per-channel means and deviations shifted one channel against the others).
    func testInputPicturesUndoTheNormalisation() throws {
        let directory = try temporaryDirectory(self)
        let random = CounterRandom(4)
        let pixels = (0..<(2 * 3 * 4 * 4)).map { UInt8(random.below(256, UInt64($0))) }
        try npyFile(Data(pixels), descr: "|u1", shape: [2, 3, 4, 4]).write(to: directory.appendingPathComponent("x.npy"))
        try npyFile(rawBytes([Int64(0), 1]), descr: "<i8", shape: [2]).write(to: directory.appendingPathComponent("y.npy"))
        func picture(normalize: String) throws -> [UInt8] {
            let config = try ConfigLoader.parse("""
                data: {train: {images: x.npy, labels: y.npy}, test: {images: x.npy, labels: y.npy}\(normalize)}
                model: {input: [3, 4, 4], layers: [flatten, {dense: {out_features: 2}}]}
                train: {batch_size: 2, max_steps: 1}
                """, file: directory.appendingPathComponent("c.yaml").path)
            let model = try Model<Float>(config.model)
            let transform = try InputTransform(config.data, inputShape: model.inputShape, seed: 0, file: "c.yaml")
            let test = try Dataset(config.data.test!, transform: transform, classes: 2, role: "data.test")
            let context = InspectionContext(model: model, test: test, output: directory, chunk: 256)
            _ = try context.load(0..<2)
            return context.inputPicture(context.input(row: 1)).pixels
        }
        let plain = try picture(normalize: "")
        let normalised = try picture(normalize: ", normalize: {mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26]}")
        XCTAssertEqual(plain.count, 48)
        XCTAssertTrue(zip(plain, normalised).allSatisfy { abs(Int($0) - Int($1)) <= 1 }, "\(plain) against \(normalised)")
    }

    func testHiddenStateProbeEndsInTheModelsLastState() throws {
        let directory = try temporaryDirectory(self)
        let test = try writeSyntheticData(in: directory, name: "test", count: 3, rows: 5, columns: 4, classes: 3, seed: 8)
        for layer in ["lstm", "gru", "rnn"] {
            let config = try ConfigLoader.parse("""
                data: {train: {images: \(test.images), labels: \(test.labels)}, test: {images: \(test.images), labels: \(test.labels)}}
                model: {input: [5, 4], layers: [{\(layer): {hidden_size: 6}}, {dense: {out_features: 3}}]}
                train: {batch_size: 3, max_steps: 1}
                """, file: "rnn.yaml")
            let model = try Model<Float>(config.model)
            model.initialize(seed: 2)
            let data = try Dataset(config.data.test!, scale: config.data.scale, inputShape: model.inputShape, classes: 3, role: "data.test")
            let context = InspectionContext(model: model, test: data, output: directory, chunk: 256)
            _ = try context.load(0..<3)
            try context.forward(batch: 3)
            let (probe, gradients) = try XCTUnwrap(HiddenStateView.sequenceProbe(model, layer: 0))
            XCTAssertEqual(probe.outputShape, [5, 6])
            let states = Buffer<Float>(count: 3 * 5 * 6)
            probe.reserve(maxBatch: 3)
            try probe.forward(model.activation(0), states.pointer, batch: 3,
                              context: StepContext(isTraining: false, seed: 0, step: 0, firstSampleIndex: 0, globalBatch: 3, communicator: SoloCommunicator()))
            withExtendedLifetime(gradients) {}
            for n in 0..<3 {
                for j in 0..<6 { XCTAssertEqual(states.pointer[n * 30 + 4 * 6 + j], model.activation(1)[n * 6 + j], layer) }
            }
        }
    }

    func testInspectCommandWritesThePageAndRefusesWithoutACheckpoint() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let missing = try runCohort(["inspect", "c.yaml"], in: directory)
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.err.split(separator: "\n").count, 1)
        XCTAssertTrue(missing.err.hasPrefix("error: ") && missing.err.contains("no checkpoint to inspect"), missing.err)
        XCTAssertEqual(try runCohort(["train", "c.yaml"], in: directory).status, 0)
        let result = try runCohort(["inspect", "c.yaml"], in: directory)
        XCTAssertEqual(result.status, 0, result.err)
        let html = try String(contentsOf: directory.appendingPathComponent("run/inspect/index.html"), encoding: .utf8)
        XCTAssertTrue(html.contains("no conv2d layer"), "an MLP's page says why it has no filters")
        XCTAssertTrue(html.contains("Misclassified test samples"))
    }
}

/// A PNG's header fields and its pixels, after checking the signature, every chunk's CRC-32 and
/// that every row uses filter type 0 (the only one `PNGWriter` writes).
struct DecodedPNG {
    var width: Int
    var height: Int
    var bitDepth: Int
    var colourType: Int
    var pixels: [UInt8]
}

func decodePNG(_ data: Data) throws -> DecodedPNG {
    struct Malformed: Error, CustomStringConvertible { var description: String }
    let bytes = [UInt8](data)
    guard bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else { throw Malformed(description: "no PNG signature") }
    func big(_ at: Int) -> Int { (0..<4).reduce(0) { $0 << 8 | Int(bytes[at + $1]) } }
    var offset = 8
    var header: [UInt8] = [], compressed: [UInt8] = [], types: [String] = []
    while offset + 12 <= bytes.count {
        let length = big(offset)
        guard offset + 12 + length <= bytes.count else { throw Malformed(description: "chunk runs past the end") }
        let body = Array(bytes[(offset + 4)..<(offset + 8 + length)])
        let crc = body.withUnsafeBufferPointer { Int(crc32(0, $0.baseAddress, uInt($0.count))) }
        guard crc == big(offset + 8 + length) else { throw Malformed(description: "bad CRC") }
        let type = String(decoding: body[0..<4], as: UTF8.self)
        types.append(type)
        if type == "IHDR" { header = Array(body[4...]) }
        if type == "IDAT" { compressed += body[4...] }
        offset += 12 + length
    }
    guard types.first == "IHDR", types.last == "IEND", offset == bytes.count, header.count == 13 else {
        throw Malformed(description: "chunks \(types)")
    }
    let width = (0..<4).reduce(0) { $0 << 8 | Int(header[$1]) }, height = (4..<8).reduce(0) { $0 << 8 | Int(header[$1]) }
    let channels = header[9] == 2 ? 3 : 1
    var size = uLong(height * (1 + width * channels))
    var raw = [UInt8](repeating: 0, count: Int(size) + 1)
    guard uncompress(&raw, &size, compressed, uLong(compressed.count)) == Z_OK, Int(size) == height * (1 + width * channels) else {
        throw Malformed(description: "image data does not inflate to \(height) rows")
    }
    var pixels: [UInt8] = []
    for y in 0..<height {
        let row = y * (1 + width * channels)
        guard raw[row] == 0 else { throw Malformed(description: "row \(y) has filter \(raw[row])") }
        pixels += raw[(row + 1)..<(row + 1 + width * channels)]
    }
    return DecodedPNG(width: width, height: height, bitDepth: Int(header[8]), colourType: Int(header[9]), pixels: pixels)
}
