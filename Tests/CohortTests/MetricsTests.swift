import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import Cohort

/// The curves a run leaves under `checkpoint.dir`: metrics.jsonl, the TensorBoard event file and
/// curves.svg, read back by decoders of the test's own.
final class MetricsTests: XCTestCase {
    /// 50 training samples in batches of 10 (5 steps per epoch), 20 test samples, a point every 2
    /// steps and at each epoch's end, a checkpoint every 3 steps.
    func config(in directory: URL, maxSteps: Int) throws -> TrainingConfig {
        let train = try writeSyntheticData(in: directory, name: "train", count: 50, rows: 4, columns: 4, classes: 4, seed: 5)
        let test = try writeSyntheticData(in: directory, name: "test", count: 20, rows: 4, columns: 4, classes: 4, seed: 6)
        var config = try ConfigLoader.parse("""
            seed: 3
            data: {train: {images: \(train.images), labels: \(train.labels)}, test: {images: \(test.images), labels: \(test.labels)}}
            model: {input: [1, 4, 4], layers: [flatten, {dense: {out_features: 12}}, relu, {dropout: {p: 0.2}}, {dense: {out_features: 4}}]}
            optimizer: {name: sgd, lr: 0.1, momentum: 0.9, schedule: {name: cosine}}
            train: {batch_size: 10, max_steps: \(maxSteps), log_every_steps: 2}
            checkpoint: {dir: \(directory.appendingPathComponent("run").path), every_steps: 3}
            """, file: "metrics.yaml")
        config.checkpoint.keep = 10
        return config
    }

    @discardableResult
    func train(_ config: TrainingConfig, resume: ResumeMode = .fresh, stopAfter: Int? = nil) throws -> TrainingSummary {
        let trainer = Trainer(config: config, communicator: SoloCommunicator(), log: { _ in })
        trainer.stopAfterStep = stopAfter
        return try trainer.run(resume: resume)
    }

    func metricsLines(_ directory: URL) throws -> [[String: Any]] {
        let text = try String(contentsOf: directory.appendingPathComponent("run/metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], "not a JSON object: \($0)")
        }
    }

    func eventFiles(_ directory: URL) throws -> [URL] {
        let tensorboard = directory.appendingPathComponent("run/tensorboard")
        return try FileManager.default.contentsOfDirectory(atPath: tensorboard.path)
            .filter { $0.hasPrefix("events.out.tfevents.") }.map { tensorboard.appendingPathComponent($0) }
    }

    /// RFC 3720's CRC-32C test vectors, and the usual check value of "123456789".
    func testCRC32CMatchesPublishedVectors() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }), 0x113F_DB5C)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
        XCTAssertEqual(CRC32C.masked(Array("123456789".utf8)), bitwiseMaskedCRC32C(Array("123456789".utf8)))
    }

    /// A point per logged window (every 2 steps, each epoch's end, the last step) and per
    /// evaluation (each epoch's end, the end of the run), with the schedule's learning rate.
    func testMetricsLogHasAPointPerLoggedWindowAndEvaluation() throws {
        let directory = try temporaryDirectory(self)
        let config = try config(in: directory, maxSteps: 13)
        let summary = try train(config)
        let lines = try metricsLines(directory)
        let train = lines.filter { $0["train_loss"] != nil }
        let test = lines.filter { $0["test_loss"] != nil }
        XCTAssertEqual(train.compactMap { $0["step"] as? Int }, [2, 4, 5, 6, 8, 10, 12, 13])
        XCTAssertEqual(train.compactMap { $0["epoch"] as? Int }, [1, 1, 1, 2, 2, 2, 3, 3])
        XCTAssertEqual(test.compactMap { $0["step"] as? Int }, [5, 10, 13])
        XCTAssertEqual(test.compactMap { $0["test_samples"] as? Int }, [20, 20, 20])
        let schedule = LearningRateSchedule(base: 0.1, config: config.optimizer.schedule, totalSteps: 13)
        for line in train {
            let step = try XCTUnwrap(line["step"] as? Int)
            XCTAssertEqual(try XCTUnwrap(line["lr"] as? Double), schedule.rate(at: step - 1), accuracy: 1e-12, "step \(step)")
            XCTAssertGreaterThan(try XCTUnwrap(line["images_per_second"] as? Double), 0)
            XCTAssertTrue((0...1).contains(try XCTUnwrap(line["train_accuracy"] as? Double)))
            XCTAssertGreaterThan(try XCTUnwrap(line["train_loss"] as? Double), 0)
        }
        let final = try XCTUnwrap(test.last)
        XCTAssertEqual(try XCTUnwrap(final["test_accuracy"] as? Double), try XCTUnwrap(summary.test?.accuracy))
        let best = try XCTUnwrap(test.map { $0["test_accuracy"] as! Double }.max())
        XCTAssertEqual(summary.bestTest?.accuracy, best)
        XCTAssertGreaterThan(summary.imagesPerSecond, 0)
    }

    /// The event file, decoded here (framing, both CRCs, Event and Summary fields), holds the
    /// file version first and then exactly the points of metrics.jsonl, tag by tag.
    func testTensorBoardEventsMatchTheMetricsLog() throws {
        let directory = try temporaryDirectory(self)
        try train(config(in: directory, maxSteps: 13))
        let files = try eventFiles(directory)
        XCTAssertEqual(files.count, 1)
        let file = try XCTUnwrap(files.first)
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        XCTAssertTrue(file.lastPathComponent.hasSuffix("." + String(cString: host)), file.lastPathComponent)
        let events = try readRecords(Data(contentsOf: file)).map(decodeEvent)
        XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
        XCTAssertEqual(events.first?.values.count, 0)
        let lines = try metricsLines(directory)
        XCTAssertEqual(events.count - 1, lines.count)
        for (event, line) in zip(events.dropFirst(), lines) {
            XCTAssertEqual(event.step, Int64(try XCTUnwrap(line["step"] as? Int)))
            XCTAssertEqual(try XCTUnwrap(event.wallTime), try XCTUnwrap(line["time"] as? Double), accuracy: 0.001)
            let expected: [(String, String)] = line["train_loss"] != nil
                ? [("train/loss", "train_loss"), ("train/accuracy", "train_accuracy"), ("lr", "lr")]
                : [("test/loss", "test_loss"), ("test/accuracy", "test_accuracy")]
            XCTAssertEqual(event.values.map(\.tag), expected.map(\.0), "step \(event.step)")
            for ((tag, value), (_, key)) in zip(event.values, expected) {
                XCTAssertEqual(value, Float(try XCTUnwrap(line[key] as? Double)), "\(tag) at step \(event.step)")
            }
        }
    }

    /// A damaged byte anywhere in a record is caught by the decoder's CRC checks: the test's
    /// decoder does check them.
    func testTheTestDecoderCatchesADamagedRecord() throws {
        let directory = try temporaryDirectory(self)
        try train(config(in: directory, maxSteps: 4))
        var data = try Data(contentsOf: XCTUnwrap(eventFiles(directory).first))
        XCTAssertNoThrow(try readRecords(data))
        data[data.count - 10] ^= 0x01
        XCTAssertThrowsError(try readRecords(data))
    }

    /// curves.svg parses as XML, draws one vertex per logged point in each curve, and labels its axes.
    func testCurvesSVGIsWellFormedWithAVertexPerPoint() throws {
        let directory = try temporaryDirectory(self)
        try train(config(in: directory, maxSteps: 13))
        let svg = try SVGContents(Data(contentsOf: directory.appendingPathComponent("run/curves.svg")))
        XCTAssertEqual(svg.root, "svg")
        XCTAssertEqual(svg.polylines["train-loss"]?.count, 8)
        XCTAssertEqual(svg.polylines["train-accuracy"]?.count, 8)
        XCTAssertEqual(svg.polylines["test-loss"]?.count, 3)
        XCTAssertEqual(svg.polylines["test-accuracy"]?.count, 3)
        for label in ["step", "loss", "accuracy", "train", "test", "0"] {
            XCTAssertTrue(svg.texts.contains(label), "no text \"\(label)\" in \(svg.texts)")
        }
        // Later steps lie further right, and every vertex inside the 960 x 420 picture.
        for (id, vertices) in svg.polylines where id.hasPrefix("train-") || id.hasPrefix("test-") {
            XCTAssertEqual(vertices.map(\.x), vertices.map(\.x).sorted(), id)
            XCTAssertTrue(vertices.allSatisfy { (0...960).contains($0.x) && (0...420).contains($0.y) }, id)
        }
        // The lowest loss is drawn highest up: y grows downwards.
        let losses = try metricsLines(directory).compactMap { $0["train_loss"] as? Double }
        let lowest = try XCTUnwrap(losses.indices.min { losses[$0] < losses[$1] })
        let ys = try XCTUnwrap(svg.polylines["train-loss"]).map(\.y)
        XCTAssertEqual(ys.indices.max { ys[$0] < ys[$1] }, lowest)
    }

    /// 13 steps straight against 8 steps, then a resume from the checkpoint of step 6: the points
    /// of steps 7 and 8 written before are dropped and the resumed run appends the same points as
    /// the straight one; the event file holds them once.
    func testAResumedRunContinuesTheMetricsLog() throws {
        let straight = try temporaryDirectory(self)
        try train(config(in: straight, maxSteps: 13))
        let resumed = try temporaryDirectory(self)
        try train(config(in: resumed, maxSteps: 13), stopAfter: 8)
        XCTAssertEqual(try metricsLines(resumed).compactMap { $0["step"] as? Int }.max(), 8)
        let summary = try train(config(in: resumed, maxSteps: 13),
                                resume: .directory(resumed.appendingPathComponent("run/checkpoints/6").path))
        func comparable(_ lines: [[String: Any]]) -> [String] {
            lines.map { line in
                ["step", "epoch", "train_loss", "train_accuracy", "lr", "test_loss", "test_accuracy", "test_samples"]
                    .compactMap { key in line[key].map { "\(key)=\($0)" } }.joined(separator: " ")
            }
        }
        XCTAssertEqual(comparable(try metricsLines(resumed)), comparable(try metricsLines(straight)))
        let files = try eventFiles(resumed)
        XCTAssertEqual(files.count, 1, "one event file after a resume")
        let steps = try readRecords(Data(contentsOf: XCTUnwrap(files.first))).map(decodeEvent).dropFirst().map(\.step)
        XCTAssertEqual(steps, try metricsLines(resumed).map { Int64($0["step"] as! Int) })
        XCTAssertEqual(summary.startStep, 6)
        XCTAssertNotNil(summary.bestTest, "the best evaluation counts those before the resume")
    }

    /// A run stopped at step 7 (between the points of steps 6 and 8) logs a point of step 7 and
    /// ends its curves there; resumed, its log is the straight run's: step 8's point counts step 7
    /// again, as it does after a resume from the checkpoint of step 3 (written between points).
    func testARunStoppedBetweenLoggedStepsResumesTheSameCurves() throws {
        let straight = try temporaryDirectory(self)
        try train(config(in: straight, maxSteps: 13))
        func comparable(_ lines: [[String: Any]]) -> [String] {
            lines.map { line in
                ["step", "epoch", "train_loss", "train_accuracy", "lr", "test_loss", "test_accuracy", "test_samples"]
                    .compactMap { key in line[key].map { "\(key)=\($0)" } }.joined(separator: " ")
            }
        }
        let expected = comparable(try metricsLines(straight))
        let stopped = try temporaryDirectory(self)
        try train(config(in: stopped, maxSteps: 13), stopAfter: 7)
        XCTAssertEqual(try metricsLines(stopped).filter { $0["train_loss"] != nil }.compactMap { $0["step"] as? Int }, [2, 4, 5, 6, 7])
        try train(config(in: stopped, maxSteps: 13), resume: .auto)
        XCTAssertEqual(comparable(try metricsLines(stopped)), expected)
        let steps = try readRecords(Data(contentsOf: XCTUnwrap(try eventFiles(stopped).first))).map(decodeEvent).dropFirst().map(\.step)
        XCTAssertEqual(steps, try metricsLines(stopped).map { Int64($0["step"] as! Int) }, "the event file rebuilt without step 7")

        // A run of 7 steps extended to 13 (a constant learning rate: the cosine spans the run): its
        // final evaluation at step 7 stays, its train point goes.
        func constant(_ directory: URL, _ steps: Int) throws -> TrainingConfig {
            var config = try config(in: directory, maxSteps: steps)
            config.optimizer.schedule = ScheduleConfig()
            return config
        }
        let constantStraight = try temporaryDirectory(self), extended = try temporaryDirectory(self)
        try train(constant(constantStraight, 13))
        try train(constant(extended, 7))
        try train(constant(extended, 13), resume: .auto)
        var expectedExtended = comparable(try metricsLines(constantStraight))
        expectedExtended.insert("step=7 epoch=2 test_loss=", at: try XCTUnwrap(expectedExtended.firstIndex { $0.hasPrefix("step=8 ") }))
        XCTAssertEqual(comparable(try metricsLines(extended)).map { $0.hasPrefix("step=7 epoch=2 test_loss=") ? "step=7 epoch=2 test_loss=" : $0 },
                       expectedExtended)

        let fromThree = try temporaryDirectory(self)
        try train(config(in: fromThree, maxSteps: 13), stopAfter: 8)
        try train(config(in: fromThree, maxSteps: 13), resume: .directory(fromThree.appendingPathComponent("run/checkpoints/3").path))
        XCTAssertEqual(comparable(try metricsLines(fromThree)), expected)
    }

    /// A fresh run that fails before its first checkpoint (the loss diverges at once) leaves the
    /// earlier run's curves as they were, as it leaves its checkpoints: that run can still resume.
    func testAFreshRunThatFailsEarlyLeavesTheEarlierCurves() throws {
        let directory = try temporaryDirectory(self)
        try train(config(in: directory, maxSteps: 13))
        let files = try ["run/metrics.jsonl", "run/curves.svg"].map { directory.appendingPathComponent($0) } + eventFiles(directory)
        let before = try files.map { try Data(contentsOf: $0) }
        var diverging = try config(in: directory, maxSteps: 13)
        diverging.optimizer.lr = 1e30
        XCTAssertThrowsError(try train(diverging)) { XCTAssertTrue("\($0)".contains("became"), "\($0)") }
        XCTAssertEqual(try files.map { try Data(contentsOf: $0) }, before, "the earlier run's curves changed")
        XCTAssertEqual(try eventFiles(directory), Array(files.suffix(1)))
    }

    /// A fresh run in the directory of an earlier one starts the log and the event file anew.
    func testAFreshRunStartsTheCurvesAnew() throws {
        let directory = try temporaryDirectory(self)
        try train(config(in: directory, maxSteps: 6))
        try train(config(in: directory, maxSteps: 4))
        XCTAssertEqual(try metricsLines(directory).compactMap { $0["step"] as? Int }, [2, 4, 4])
        XCTAssertEqual(try eventFiles(directory).count, 1)
    }
}

// MARK: - An event-file decoder of the test's own

/// CRC-32C bit by bit (no table), masked as TFRecord does.
func bitwiseMaskedCRC32C(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc >> 1) ^ (0x82F6_3B78 & (0 &- (crc & 1))) }
    }
    crc ^= 0xFFFF_FFFF
    return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
}

struct DecodingError: Error, CustomStringConvertible { var description: String }

/// The data of each TFRecord, after checking the CRCs of its length and of its data.
func readRecords(_ data: Data) throws -> [Data] {
    let bytes = [UInt8](data)
    func uint(_ at: Int, _ count: Int) -> UInt64 { (0..<count).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * $1) } }
    var records: [Data] = []
    var offset = 0
    while offset < bytes.count {
        guard offset + 12 <= bytes.count else { throw DecodingError(description: "truncated header at \(offset)") }
        let length = Int(uint(offset, 8))
        guard UInt32(uint(offset + 8, 4)) == bitwiseMaskedCRC32C(Array(bytes[offset..<offset + 8])) else {
            throw DecodingError(description: "bad length CRC at \(offset)")
        }
        let start = offset + 12, end = start + length
        guard end + 4 <= bytes.count else { throw DecodingError(description: "truncated record at \(offset)") }
        guard UInt32(uint(end, 4)) == bitwiseMaskedCRC32C(Array(bytes[start..<end])) else {
            throw DecodingError(description: "bad data CRC at \(offset)")
        }
        records.append(Data(bytes[start..<end]))
        offset = end + 4
    }
    return records
}

struct DecodedEvent {
    var wallTime: Double?
    var step: Int64 = 0
    var fileVersion: String?
    var values: [(tag: String, value: Float)] = []
}

/// The protobuf fields of a message: (field number, varint value or bytes).
func protobufFields(_ data: Data) throws -> [(field: Int, varint: UInt64, bytes: [UInt8])] {
    let bytes = [UInt8](data)
    var offset = 0
    func varint() throws -> UInt64 {
        var value: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard offset < bytes.count, shift < 64 else { throw DecodingError(description: "bad varint") }
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
    }
    func take(_ count: Int) throws -> [UInt8] {
        guard offset + count <= bytes.count else { throw DecodingError(description: "field runs past the end") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }
    var fields: [(Int, UInt64, [UInt8])] = []
    while offset < bytes.count {
        let key = try varint()
        switch key & 7 {
        case 0: fields.append((Int(key >> 3), try varint(), []))
        case 1: fields.append((Int(key >> 3), 0, try take(8)))
        case 2: fields.append((Int(key >> 3), 0, try take(Int(try varint()))))
        case 5: fields.append((Int(key >> 3), 0, try take(4)))
        default: throw DecodingError(description: "wire type \(key & 7)")
        }
    }
    return fields
}

/// `tensorflow.Event`: wall_time (1, double), step (2, int64), file_version (3, string),
/// summary (5) of values (1) with tag (1, string) and simple_value (2, float).
func decodeEvent(_ data: Data) throws -> DecodedEvent {
    func little(_ bytes: [UInt8]) -> UInt64 { bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) } }
    var event = DecodedEvent()
    for field in try protobufFields(data) {
        switch field.field {
        case 1: event.wallTime = Double(bitPattern: little(field.bytes))
        case 2: event.step = Int64(bitPattern: field.varint)
        case 3: event.fileVersion = String(decoding: field.bytes, as: UTF8.self)
        case 5:
            for value in try protobufFields(Data(field.bytes)) where value.field == 1 {
                var tag = "", number = Float.nan
                for part in try protobufFields(Data(value.bytes)) {
                    if part.field == 1 { tag = String(decoding: part.bytes, as: UTF8.self) }
                    if part.field == 2 { number = Float(bitPattern: UInt32(little(part.bytes))) }
                }
                event.values.append((tag, number))
            }
        default: break
        }
    }
    return event
}

/// What the tests look at in an SVG, read with XMLParser (which fails on malformed XML).
struct SVGContents {
    var root = ""
    var polylines: [String: [(x: Double, y: Double)]] = [:]
    var texts: [String] = []

    init(_ data: Data) throws {
        let delegate = Delegate()
        let parser = XMLParser(data: data)
        parser.delegate = delegate
        guard parser.parse() else {
            throw DecodingError(description: "not well-formed: \(parser.parserError.map(String.init(describing:)) ?? "?")")
        }
        self = delegate.contents
    }

    private final class Delegate: NSObject, XMLParserDelegate {
        var contents = SVGContents(empty: ())
        var text: String?

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            if contents.root.isEmpty { contents.root = name }
            if name == "polyline", let id = attributes["id"], let points = attributes["points"] {
                contents.polylines[id] = points.split(separator: " ").map {
                    let xy = $0.split(separator: ",").map { Double($0) ?? .nan }
                    return (xy.first ?? .nan, xy.last ?? .nan)
                }
            }
            if name == "text" { text = "" }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text? += string }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "text", let text { contents.texts.append(text) }
            text = nil
        }
    }

    private init(empty: Void) {}
}
