import Foundation
import XCTest
@testable import Cohort

/// `train.histograms_every_steps`: TensorBoard histogram records and per-layer statistics in
/// metrics.jsonl, read back by the test's own protobuf reader (MetricsTests).
final class HistogramTests: XCTestCase {
    /// `HistogramProto`'s fields, by number: min 1, max 2, num 3, sum 4, sum_squares 5,
    /// bucket_limit 6 and bucket 7 (packed doubles).
    struct DecodedHistogram {
        var numbers: [Int: Double] = [:]
        var limits: [Double] = []
        var buckets: [Double] = []
    }

    func decodeHistograms(_ event: Data) throws -> [String: DecodedHistogram] {
        func double(_ bytes: ArraySlice<UInt8>) -> Double {
            Double(bitPattern: bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) })
        }
        func doubles(_ bytes: [UInt8]) -> [Double] { stride(from: 0, to: bytes.count, by: 8).map { double(bytes[$0..<($0 + 8)]) } }
        var result: [String: DecodedHistogram] = [:]
        for field in try protobufFields(event) where field.field == 5 {
            for value in try protobufFields(Data(field.bytes)) where value.field == 1 {
                var tag = "", histogram: DecodedHistogram?
                for part in try protobufFields(Data(value.bytes)) {
                    if part.field == 1 { tag = String(decoding: part.bytes, as: UTF8.self) }
                    guard part.field == 5 else { continue }
                    var decoded = DecodedHistogram()
                    for entry in try protobufFields(Data(part.bytes)) {
                        switch entry.field {
                        case 6: decoded.limits = doubles(entry.bytes)
                        case 7: decoded.buckets = doubles(entry.bytes)
                        default: decoded.numbers[entry.field] = double(entry.bytes[...])
                        }
                    }
                    histogram = decoded
                }
                if let histogram { result[tag] = histogram }
            }
        }
        return result
    }

    func testBucketsCountEachValueOnceUpToTheirLimit() {
        let values: [Float] = [0, 1, 2, 3, 4, .nan]
        let histogram = TensorHistogram(tag: "t", values: values, count: values.count, bucketCount: 4)
        XCTAssertEqual(histogram.count, 5, "NaN is left out")
        XCTAssertEqual(histogram.bucketLimits, [1, 2, 3, 4])
        XCTAssertEqual(histogram.buckets, [2, 1, 1, 1])
        XCTAssertEqual([histogram.min, histogram.max, histogram.sum, histogram.sumOfSquares], [0, 4, 10, 30])
        XCTAssertEqual(histogram.standardDeviation, 2.0.squareRoot(), accuracy: 1e-12)
        let constant = TensorHistogram(tag: "c", values: [Float](repeating: 0.5, count: 3), count: 3)
        XCTAssertEqual(constant.bucketLimits, [0.5])
        XCTAssertEqual(constant.buckets, [3])
    }

    func testTrainingWritesHistogramsOfEveryLayerThatReadBack() throws {
        let directory = try temporaryDirectory(self)
        let train = try writeSyntheticData(in: directory, name: "train", count: 40, rows: 4, columns: 4, classes: 4, seed: 5)
        let config = try ConfigLoader.parse("""
            seed: 3
            data: {train: {images: \(train.images), labels: \(train.labels)}}
            model: {input: [1, 4, 4], layers: [{conv2d: {out_channels: 2, kernel_size: 3, padding: 1}}, relu, flatten, {dense: {out_features: 4}}]}
            optimizer: {name: sgd, lr: 0.1}
            train: {batch_size: 10, max_steps: 6, histograms_every_steps: 4}
            checkpoint: {dir: \(directory.appendingPathComponent("run").path)}
            """, file: "histograms.yaml")
        _ = try Trainer(config: config, communicator: SoloCommunicator(), log: { _ in }).run(resume: .fresh)

        let tensorboard = directory.appendingPathComponent("run/tensorboard")
        let file = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: tensorboard.path).first)
        let records = try readRecords(Data(contentsOf: tensorboard.appendingPathComponent(file)))
        let events = try records.map { (try decodeEvent($0).step, try decodeHistograms($0)) }.filter { !$0.1.isEmpty }
        XCTAssertEqual(events.map(\.0), [1, 4], "at the first step and every 4")
        let tags = ["weights/0.weight", "gradients/0.weight", "weights/0.bias", "gradients/0.bias", "activations/0.conv2d",
                    "activations/1.relu", "activations/2.flatten", "weights/3.weight", "gradients/3.weight",
                    "weights/3.bias", "gradients/3.bias", "activations/3.dense"]
        XCTAssertEqual(Set(events[0].1.keys), Set(tags))
        for (tag, histogram) in events[1].1 {
            XCTAssertEqual(histogram.buckets.reduce(0, +), histogram.numbers[3], tag)
            XCTAssertEqual(histogram.limits.count, histogram.buckets.count, tag)
            XCTAssertEqual(histogram.limits.last, histogram.numbers[2], tag)
        }
        XCTAssertEqual(events[1].1["weights/0.weight"]?.numbers[3], 18)
        XCTAssertEqual(events[1].1["activations/0.conv2d"]?.numbers[3], 10 * 2 * 16, "a batch of 10 maps [2, 4, 4]")
        XCTAssertEqual(events[1].1["activations/1.relu"]?.numbers[1], 0, "the ReLU's smallest output")
        for step in 0..<2 {
            XCTAssertGreaterThan(events[step].1["gradients/3.weight"]?.numbers[5] ?? 0, 0,
                                 "step \(events[step].0): the step's gradients, not zeroed by the optimizer's update")
        }

        let lines = try String(contentsOf: directory.appendingPathComponent("run/metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let statistics = lines.filter { $0["layer_statistics"] != nil }
        XCTAssertEqual(statistics.map { $0["step"] as? Int }, [1, 4])
        let last = try XCTUnwrap(statistics.last?["layer_statistics"] as? [String: [String: Double]])
        XCTAssertEqual(Set(last.keys), Set(tags))
        let histogram = try XCTUnwrap(events[1].1["weights/3.weight"])
        let count = histogram.numbers[3]!, mean = histogram.numbers[4]! / count
        XCTAssertEqual(last["weights/3.weight"]?["mean"] ?? .nan, mean, accuracy: 1e-12)
        XCTAssertEqual(last["weights/3.weight"]?["std"] ?? .nan, (histogram.numbers[5]! / count - mean * mean).squareRoot(), accuracy: 1e-9)
        XCTAssertEqual(try MetricsLog.read(directory.appendingPathComponent("run/metrics.jsonl")).count, lines.count - 2,
                       "the statistics lines are not taken for curve points")
    }

    func testTheKeyIsCheckedLikeEveryOther() {
        XCTAssertThrowsError(try ConfigLoader.parse("""
            data: {train: {images: a, labels: b}}
            model: {input: [4], layers: [{dense: {out_features: 2}}]}
            train: {batch_size: 1, max_steps: 1, histograms_every_steps: 0}
            """, file: "h.yaml")) { error in
            XCTAssertTrue((error as? CohortError)?.message.contains("train.histograms_every_steps") ?? false, "\(error)")
        }
    }
}
