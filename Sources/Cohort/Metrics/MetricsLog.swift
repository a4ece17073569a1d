import Foundation

/// One point of a training curve: the training figures of a logged window of steps, or one
/// evaluation on the test set.
public struct MetricPoint: Equatable, Sendable {
    public enum Split: String, Sendable { case train, test }

    public var split: Split
    /// Steps done when it was measured (1-based: the point after the first step has step 1).
    public var step: Int
    /// The epoch the step belongs to, 1-based as in the progress lines.
    public var epoch: Int
    /// Train: the mean batch loss and accuracy over the window (dropout on); test: inference mode.
    public var loss: Double
    public var accuracy: Double
    /// Train only: the learning rate of the last step of the window, and the window's throughput.
    public var lr: Double?
    public var imagesPerSecond: Double?
    /// Test only: the number of test samples.
    public var samples: Int?
    /// Seconds since 1970 when it was measured.
    public var time: Double

    public static func train(step: Int, epoch: Int, loss: Double, accuracy: Double, lr: Double, imagesPerSecond: Double,
                             time: Double = Date().timeIntervalSince1970) -> MetricPoint {
        MetricPoint(split: .train, step: step, epoch: epoch, loss: loss, accuracy: accuracy, lr: lr,
                    imagesPerSecond: imagesPerSecond, samples: nil, time: time)
    }

    public static func test(step: Int, epoch: Int, loss: Double, accuracy: Double, samples: Int,
                            time: Double = Date().timeIntervalSince1970) -> MetricPoint {
        MetricPoint(split: .test, step: step, epoch: epoch, loss: loss, accuracy: accuracy, lr: nil,
                    imagesPerSecond: nil, samples: samples, time: time)
    }
}

/// `metrics.jsonl`: one JSON object per line, per logged point of a run, in the order measured.
///
///     {"step":50,"epoch":1,"train_loss":1.5443,"train_accuracy":0.4703,"lr":0.049658,"images_per_second":1703,"time":1764...}
///     {"step":62,"epoch":1,"test_loss":0.2104,"test_accuracy":0.9410,"test_samples":1000,"time":1764...}
///
/// A fresh run starts the file anew. A resumed run keeps the lines up to the step it resumes from
/// and appends after them, so that the file reads as if the run had never stopped; lines of steps
/// after that point (written before a crash, or by a run resumed from an older checkpoint) are
/// dropped, as are lines that do not parse (a line cut short by a crash). Lines of per-layer
/// statistics (`train.histograms_every_steps`) are kept or dropped by their step alike. A run stopped
/// (or ending) between logged steps logs a point of the steps since the last one; its checkpoint
/// keeps them (`LogWindow`), so the resumed (or extended) run drops that point and counts them in
/// its next. The evaluation at the end of a run that is extended stays: it was made.
public final class MetricsLog {
    public let url: URL
    /// Every point of the file, the kept ones of earlier runs first.
    public private(set) var points: [MetricPoint]
    private let handle: FileHandle

    /// Opens `url` for a run that starts fresh (`resumedStep` nil) or resumes after `resumedStep`,
    /// whose checkpoint carries an open window (`windowOpen`) or not.
    public init(url: URL, resumedStep: Int?, windowOpen: Bool = false) throws {
        self.url = url
        var kept: [String] = []
        points = []
        if let resumedStep, FileManager.default.fileExists(atPath: url.path) {
            for line in try MetricsLog.lines(of: url) {
                guard let step = MetricsLog.step(of: line), step <= resumedStep else { continue }
                let point = MetricsLog.parse(line)
                if windowOpen, step == resumedStep, point?.split == .train { continue }
                kept.append(line)
                if let point { points.append(point) }
            }
        }
        let text = kept.map { $0 + "\n" }.joined()
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url, options: .atomic)
            handle = try FileHandle(forWritingTo: url)
            try handle.seekToEnd()
        } catch {
            throw CohortError("\(url.path): cannot write the metrics log (\(reason(error)))")
        }
    }

    deinit { try? handle.close() }

    /// Appends `point` as one line.
    public func append(_ point: MetricPoint) throws {
        do {
            try handle.write(contentsOf: Data((MetricsLog.line(point) + "\n").utf8))
        } catch {
            throw CohortError("\(url.path): cannot append to the metrics log (\(reason(error)))")
        }
        points.append(point)
    }

    /// Appends a line of another kind (`ModelHistograms.line`): a JSON object with `step`, which a
    /// resumed run keeps as it keeps the points.
    public func append(line: String) throws {
        do {
            try handle.write(contentsOf: Data((line + "\n").utf8))
        } catch {
            throw CohortError("\(url.path): cannot append to the metrics log (\(reason(error)))")
        }
    }

    /// The step of a line that is a JSON object with one, else nil (a line cut short by a crash).
    private static func step(of line: String) -> Int? {
        (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["step"] as? Int
    }

    /// The points of a metrics file, skipping lines that do not parse.
    public static func read(_ url: URL) throws -> [MetricPoint] {
        try lines(of: url).compactMap(parse)
    }

    private static func lines(of url: URL) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CohortError("\(url.path): cannot read the metrics log")
        }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// The JSON object of `point`, keys in a fixed order.
    public static func line(_ point: MetricPoint) -> String {
        var fields = ["\"step\":\(point.step)", "\"epoch\":\(point.epoch)"]
        let prefix = point.split.rawValue
        fields.append("\"\(prefix)_loss\":\(number(point.loss))")
        fields.append("\"\(prefix)_accuracy\":\(number(point.accuracy))")
        if let lr = point.lr { fields.append("\"lr\":\(number(lr))") }
        if let rate = point.imagesPerSecond { fields.append("\"images_per_second\":\(number((rate * 10).rounded() / 10))") }
        if let samples = point.samples { fields.append("\"test_samples\":\(samples)") }
        fields.append("\"time\":\(number((point.time * 1000).rounded() / 1000))")
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// The point of one line, or nil when it is not one.
    public static func parse(_ line: String) -> MetricPoint? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let step = object["step"] as? Int, let epoch = object["epoch"] as? Int else { return nil }
        let time = object["time"] as? Double ?? 0
        if let loss = object["train_loss"] as? Double, let accuracy = object["train_accuracy"] as? Double {
            return .train(step: step, epoch: epoch, loss: loss, accuracy: accuracy, lr: object["lr"] as? Double ?? 0,
                          imagesPerSecond: object["images_per_second"] as? Double ?? 0, time: time)
        }
        if let loss = object["test_loss"] as? Double, let accuracy = object["test_accuracy"] as? Double {
            return .test(step: step, epoch: epoch, loss: loss, accuracy: accuracy,
                         samples: object["test_samples"] as? Int ?? 0, time: time)
        }
        return nil
    }

    /// JSON has no NaN or infinity: those become null.
    private static func number(_ value: Double) -> String {
        value.isFinite ? "\(value)" : "null"
    }
}
