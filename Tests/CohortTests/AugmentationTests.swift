import Foundation
import XCTest
@testable import Cohort

/// `data.normalize` and `data.augment`: torchvision's RandomCrop(size, padding), RandomHorizontalFlip(p),
/// ToTensor, Normalize(mean, std), built into the batch gather.
final class AugmentationTests: XCTestCase {
    let mean = [0.4914, 0.4822, 0.4465], std = [0.2470, 0.2435, 0.2616]

    func transform(padding: Int = 0, flip: Double = 0, normalize: Bool = true, scale: Double = 1 / 255,
                   inputShape: [Int], seed: UInt64 = 5) throws -> InputTransform {
        var data = DataConfig()
        data.scale = scale
        if normalize { data.normalize = NormalizeConfig(mean: Array(mean.prefix(inputShape[0])), std: Array(std.prefix(inputShape[0]))) }
        data.augment = AugmentConfig(cropPadding: padding, flipProbability: flip)
        return try InputTransform(data, inputShape: inputShape, seed: seed, file: "t.yaml")
    }

    func doubles(_ name: String) throws -> [Double] {
        let array = try StoredArray.open(path: fixtureDirectory.appendingPathComponent(name).path)
        let count = array.shape.reduce(1, *)
        return Array(UnsafeBufferPointer(start: (array.bytes.base + array.offset).assumingMemoryBound(to: Double.self), count: count))
    }

    func fixtureImages(_ transform: InputTransform) throws -> Dataset {
        try Dataset(.arrays(IDXPair(images: fixtureDirectory.appendingPathComponent("normalize-images.npy").path,
                                    labels: fixtureDirectory.appendingPathComponent("normalize-labels.npy").path)),
                    transform: transform, classes: 10, role: "data.train")
    }

    /// PyTorch in float64 (`Fixtures/make_normalize_fixture.py`) against our Float gather.
    func testNormalizationMatchesPyTorchWithin1e4() throws {
        let data = try fixtureImages(transform(inputShape: [3, 5, 7]))
        let input = Buffer<Float>(count: 4 * 105), labels = Buffer<Int32>(count: 4)
        try data.gather([0, 1, 2, 3], into: input.pointer, labels: labels.pointer)
        let expected = try doubles("normalize-expected.npy")
        XCTAssertEqual(expected.count, 4 * 105)
        let worst = zip(input.buffer, expected).map { abs(Double($0) - $1) }.max()!
        XCTAssertLessThan(worst, 1e-4)
    }

    /// The padding is pixel value 0 before ToTensor and Normalize, so it becomes (0 - mean) / std:
    /// each augmented sample is a window of PyTorch's normalised padded image, mirrored when drawn so.
    func testPaddedPixelsAreNormalisedAsPyTorchNormalisesZero() throws {
        let transform = try transform(padding: 2, flip: 0.5, inputShape: [3, 5, 7])
        let data = try fixtureImages(transform)
        let padded = try doubles("normalize-padded.npy")
        let input = Buffer<Float>(count: 4 * 105), labels = Buffer<Int32>(count: 4)
        var flips = 0
        for epoch in 0..<4 {
            try data.gather([0, 1, 2, 3], into: input.pointer, labels: labels.pointer, epoch: epoch)
            for n in 0..<4 {
                let (top, left, flip) = transform.augmentation!.draw(epoch: epoch, index: n)
                flips += flip ? 1 : 0
                for c in 0..<3 { for y in 0..<5 { for x in 0..<7 {
                    let column = left + (flip ? 6 - x : x)
                    let reference = padded[((n * 3 + c) * 9 + y + top) * 11 + column]
                    XCTAssertEqual(Double(input.pointer[((n * 3 + c) * 5 + y) * 7 + x]), reference, accuracy: 1e-4)
                } } }
            }
        }
        XCTAssertTrue((1...15).contains(flips), "16 draws of p = 0.5 gave \(flips) flips")
    }

    /// The spec's definition, literally: pad with 0, cut at (top, left), mirror, scale, normalise.
    func reference(_ image: [Float], channels: Int, height: Int, width: Int, padding: Int,
                   draw: (top: Int, left: Int, flip: Bool), scale: Float, mean: [Float], std: [Float]) -> [Float] {
        let paddedHeight = height + 2 * padding, paddedWidth = width + 2 * padding
        var padded = [Float](repeating: 0, count: channels * paddedHeight * paddedWidth)
        for c in 0..<channels { for y in 0..<height { for x in 0..<width {
            padded[(c * paddedHeight + y + padding) * paddedWidth + x + padding] = image[(c * height + y) * width + x]
        } } }
        var out = [Float](repeating: 0, count: channels * height * width)
        for c in 0..<channels { for y in 0..<height { for x in 0..<width {
            let column = draw.flip ? width - 1 - x : x
            let value = padded[(c * paddedHeight + y + draw.top) * paddedWidth + column + draw.left] * scale
            out[(c * height + y) * width + x] = (value - mean[c]) / std[c]
        } } }
        return out
    }

    func testTheGatherEqualsAPlainReferenceLoopBitForBit() throws {
        let directory = try temporaryDirectory(self)
        let random = CounterRandom(42)
        for (shape, padding, flip, normalize) in [([3, 5, 7], 2, 0.5, true), ([1, 6, 4], 1, 1.0, false), ([2, 3, 3], 5, 0.3, true), ([3, 4, 6], 0, 0.5, true)] {
            let size = shape.reduce(1, *), count = 9
            let bytes = (0..<(count * size)).map { UInt8(random.below(256, UInt64($0))) }
            let floats = bytes.map { Float($0) * 0.01 }
            for (name, payload, descr, scale) in [("u8", rawBytes(bytes), "|u1", Float(1.0 / 255)), ("f4", rawBytes(floats), "<f4", 1)] {
                let url = directory.appendingPathComponent("\(name).npy")
                try npyFile(payload, descr: descr, shape: [count] + shape).write(to: url)
                let t = try transform(padding: padding, flip: flip, normalize: normalize, inputShape: shape)
                let source = try SampleSource(images: StoredArray.open(path: url.path), inputShape: shape)
                let indices = [7, 0, 3, 8, 1]
                let input = Buffer<Float>(count: indices.count * size)
                try t.gather(source, indices[...], into: input.pointer, epoch: 3)
                let stored = name == "u8" ? bytes.map(Float.init) : floats
                for (row, index) in indices.enumerated() {
                    let expected = reference(Array(stored[(index * size)..<((index + 1) * size)]), channels: shape[0], height: shape[1], width: shape[2],
                                             padding: padding, draw: t.augmentation?.draw(epoch: 3, index: index) ?? (0, 0, false),
                                             scale: scale, mean: t.mean ?? [Float](repeating: 0, count: shape[0]), std: t.std ?? [Float](repeating: 1, count: shape[0]))
                    XCTAssertEqual(Array(input.buffer[(row * size)..<((row + 1) * size)]), expected, "\(shape) padding \(padding) \(name) sample \(index)")
                }
            }
        }
    }

    func testEachSamplesDrawDependsOnlyOnSeedEpochAndItsIndex() throws {
        let augmentation = Augmentation(padding: 4, flipProbability: 0.25, seed: 9)
        var offsets = Set<Int>(), flips = 0
        for index in 0..<4000 {
            let draw = augmentation.draw(epoch: 2, index: index)
            offsets.insert(draw.top * 9 + draw.left)
            flips += draw.flip ? 1 : 0
            XCTAssertTrue((0...8).contains(draw.top) && (0...8).contains(draw.left))
        }
        XCTAssertEqual(offsets.count, 81, "every offset in [0, 2 * padding] squared is drawn")
        XCTAssertEqual(Double(flips) / 4000, 0.25, accuracy: 0.03)
        XCTAssertTrue(augmentation.draw(epoch: 2, index: 17) == augmentation.draw(epoch: 2, index: 17))
        let epochs = (0..<50).map { augmentation.draw(epoch: $0, index: 17) }
        XCTAssertGreaterThan(Set(epochs.map { $0.top * 9 + $0.left }).count, 10, "a sample is cut elsewhere each epoch")
        XCTAssertFalse(Augmentation(padding: 4, flipProbability: 0, seed: 9).draw(epoch: 0, index: 3).flip)
        XCTAssertTrue(Augmentation(padding: 4, flipProbability: 1, seed: 9).draw(epoch: 0, index: 3).flip)

        // A sample gathered alone or in any batch position is the same.
        let data = try fixtureImages(transform(padding: 2, flip: 0.5, inputShape: [3, 5, 7]))
        let batch = Buffer<Float>(count: 3 * 105), alone = Buffer<Float>(count: 105), labels = Buffer<Int32>(count: 3)
        try data.gather([2, 0, 3], into: batch.pointer, labels: labels.pointer, epoch: 1)
        try data.gather([3], into: alone.pointer, labels: labels.pointer, epoch: 1)
        XCTAssertEqual(Array(batch.buffer[210...]), Array(alone.buffer))
    }

    /// Evaluation, prediction and the debug mode gather without an epoch: no crop, no flip.
    func testBatchesWithoutAnEpochAreNotAugmented() throws {
        let augmented = try fixtureImages(transform(padding: 2, flip: 1, inputShape: [3, 5, 7]))
        let plain = try fixtureImages(transform(inputShape: [3, 5, 7]))
        let a = Buffer<Float>(count: 4 * 105), b = Buffer<Float>(count: 4 * 105), labels = Buffer<Int32>(count: 4)
        try augmented.gather([0, 1, 2, 3], into: a.pointer, labels: labels.pointer)
        try plain.gather([0, 1, 2, 3], into: b.pointer, labels: labels.pointer)
        XCTAssertEqual(Array(a.buffer), Array(b.buffer))
        try augmented.gather([0, 1, 2, 3], into: a.pointer, labels: labels.pointer, epoch: 0)
        XCTAssertNotEqual(Array(a.buffer), Array(b.buffer))
    }

    func testNormalizeAndAugmentAreCheckedAgainstTheModelInput() throws {
        var data = DataConfig()
        data.normalize = NormalizeConfig(mean: [0.1, 0.2], std: [0.3, 0.4])
        XCTAssertThrowsError(try InputTransform(data, inputShape: [3, 8, 8], seed: 0, file: "c.yaml")) {
            XCTAssertEqual(($0 as? CohortError)?.message, "c.yaml: data.normalize.mean: 2 values for the 3 channels of model.input [3, 8, 8] (give one per channel, or one for all)")
        }
        data.normalize = NormalizeConfig(mean: [0.5], std: [0.25])
        let broadcast = try InputTransform(data, inputShape: [3, 8, 8], seed: 0, file: "c.yaml")
        XCTAssertEqual(broadcast.mean, [0.5, 0.5, 0.5])
        data.augment.cropPadding = 2
        XCTAssertThrowsError(try InputTransform(data, inputShape: [28, 28], seed: 0, file: "c.yaml")) {
            XCTAssertTrue(($0 as? CohortError)?.message.hasPrefix("c.yaml: data.augment: ") ?? false, "\($0)")
        }
    }
}
