import Foundation

/// A TensorBoard event file of scalars: `train/loss`, `train/accuracy` and `lr` per logged window,
/// `test/loss` and `test/accuracy` per evaluation, so that `tensorboard --logdir DIR` plots them.
///
/// The file is a TFRecord stream: each record is a little-endian `uint64` length, the masked CRC-32C
/// of those 8 bytes, the data, and the masked CRC-32C of the data. Each record's data is a
/// `tensorflow.Event` protobuf, of which only these fields are written, encoded by hand:
///
///     Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
///     Summary { repeated Value value = 1; }
///     Value   { string tag = 1; float simple_value = 2; HistogramProto histo = 5; }
///     HistogramProto { double min = 1; double max = 2; double num = 3; double sum = 4;
///                      double sum_squares = 5; repeated double bucket_limit = 6 [packed = true];
///                      repeated double bucket = 7 [packed = true]; }
///
/// (`train.histograms_every_steps` writes the histograms.) Five small messages are simpler to read
/// here than `swift-protobuf` with TensorBoard's `.proto` files, whose generated code for
/// `event.proto` and `summary.proto` (and the tensor messages they import) would be thousands of
/// lines to commit, or a protoc plugin to build with the package.
///
/// The first record carries only `file_version: "brain.Event:2"`, as TensorFlow's writer does.
///
/// The directory keeps one event file, replayed from the points it is given when opened: a resumed
/// run rewrites the curves up to its checkpoint and appends, so TensorBoard never shows the steps
/// of an abandoned attempt twice.
public final class TensorBoardWriter {
    public let url: URL
    private let handle: FileHandle

    /// Removes the event files in `directory` and starts a new one holding `points`.
    public init(directory: URL, points: [MetricPoint], time: Double = Date().timeIntervalSince1970) throws {
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: directory, withIntermediateDirectories: true)
            for name in try fm.contentsOfDirectory(atPath: directory.path) where name.hasPrefix("events.out.tfevents.") {
                try fm.removeItem(at: directory.appendingPathComponent(name))
            }
        } catch {
            throw CohortError("\(directory.path): cannot prepare the TensorBoard directory (\(reason(error)))")
        }
        url = directory.appendingPathComponent("events.out.tfevents.\(Int(time)).\(localHostName())")  // as TensorFlow names them
        var data = TensorBoardWriter.record(TensorBoardWriter.event(wallTime: time, step: 0, fileVersion: "brain.Event:2"))
        for point in points { data.append(TensorBoardWriter.record(TensorBoardWriter.event(point))) }
        do {
            try data.write(to: url)
            handle = try FileHandle(forWritingTo: url)
            try handle.seekToEnd()
        } catch {
            throw CohortError("\(url.path): cannot write the TensorBoard event file (\(reason(error)))")
        }
    }

    deinit { try? handle.close() }

    /// Appends the scalars of `point`, in one event at its step.
    public func write(_ point: MetricPoint) throws {
        do {
            try handle.write(contentsOf: TensorBoardWriter.record(TensorBoardWriter.event(point)))
        } catch {
            throw CohortError("\(url.path): cannot append to the TensorBoard event file (\(reason(error)))")
        }
    }

    /// Appends one event at `step` holding `histograms`.
    public func write(histograms: [TensorHistogram], step: Int, time: Double = Date().timeIntervalSince1970) throws {
        do {
            try handle.write(contentsOf: TensorBoardWriter.record(TensorBoardWriter.event(histograms: histograms, step: step, wallTime: time)))
        } catch {
            throw CohortError("\(url.path): cannot append to the TensorBoard event file (\(reason(error)))")
        }
    }

    /// The scalars of a point, by tag.
    public static func scalars(_ point: MetricPoint) -> [(tag: String, value: Float)] {
        switch point.split {
        case .train:
            [("train/loss", Float(point.loss)), ("train/accuracy", Float(point.accuracy)), ("lr", Float(point.lr ?? 0))]
        case .test:
            [("test/loss", Float(point.loss)), ("test/accuracy", Float(point.accuracy))]
        }
    }

    /// `data` framed as one TFRecord.
    static func record(_ data: Data) -> Data {
        var length = Data()
        appendLittleEndian(UInt64(data.count), to: &length)
        var record = length
        appendLittleEndian(CRC32C.masked(length), to: &record)
        record.append(data)
        appendLittleEndian(CRC32C.masked(data), to: &record)
        return record
    }

    /// The Event of a point: its time, step and scalars.
    static func event(_ point: MetricPoint) -> Data {
        var summary = Data()
        for scalar in scalars(point) {
            var value = Data()
            appendLengthDelimited(field: 1, Data(scalar.tag.utf8), to: &value)
            appendKey(field: 2, wireType: 5, to: &value)
            appendLittleEndian(scalar.value.bitPattern, to: &value)
            appendLengthDelimited(field: 1, value, to: &summary)
        }
        var event = header(wallTime: point.time, step: point.step)
        appendLengthDelimited(field: 5, summary, to: &event)
        return event
    }

    /// The Event of histograms: one Summary.Value with a HistogramProto each.
    static func event(histograms: [TensorHistogram], step: Int, wallTime: Double) -> Data {
        var summary = Data()
        for histogram in histograms {
            var proto = Data()
            for (field, number) in [(1, histogram.min), (2, histogram.max), (3, Double(histogram.count)),
                                    (4, histogram.sum), (5, histogram.sumOfSquares)] {
                appendKey(field: field, wireType: 1, to: &proto)
                appendLittleEndian(number.bitPattern, to: &proto)
            }
            for (field, numbers) in [(6, histogram.bucketLimits), (7, histogram.buckets)] {
                var packed = Data()
                for number in numbers { appendLittleEndian(number.bitPattern, to: &packed) }
                appendLengthDelimited(field: field, packed, to: &proto)
            }
            var value = Data()
            appendLengthDelimited(field: 1, Data(histogram.tag.utf8), to: &value)
            appendLengthDelimited(field: 5, proto, to: &value)
            appendLengthDelimited(field: 1, value, to: &summary)
        }
        var event = header(wallTime: wallTime, step: step)
        appendLengthDelimited(field: 5, summary, to: &event)
        return event
    }

    /// An Event with a file version and no summary.
    static func event(wallTime: Double, step: Int, fileVersion: String) -> Data {
        var event = header(wallTime: wallTime, step: step)
        appendLengthDelimited(field: 3, Data(fileVersion.utf8), to: &event)
        return event
    }

    private static func header(wallTime: Double, step: Int) -> Data {
        var event = Data()
        appendKey(field: 1, wireType: 1, to: &event)
        appendLittleEndian(wallTime.bitPattern, to: &event)
        appendKey(field: 2, wireType: 0, to: &event)
        appendVarint(UInt64(step), to: &event)
        return event
    }

    private static func appendKey(field: Int, wireType: Int, to data: inout Data) {
        appendVarint(UInt64(field << 3 | wireType), to: &data)
    }

    private static func appendLengthDelimited(field: Int, _ bytes: Data, to data: inout Data) {
        appendKey(field: field, wireType: 2, to: &data)
        appendVarint(UInt64(bytes.count), to: &data)
        data.append(bytes)
    }

    private static func appendVarint(_ value: UInt64, to data: inout Data) {
        var value = value
        while value >= 0x80 {
            data.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        data.append(UInt8(value))
    }

    private static func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to data: inout Data) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }
}
