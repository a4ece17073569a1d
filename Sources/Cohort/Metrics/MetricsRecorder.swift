import Foundation

/// The curves of a run, under its `checkpoint.dir`: every point goes to `metrics.jsonl` and to the
/// TensorBoard event file in `tensorboard/`; `curves.svg` is drawn from all of them on request (at
/// the end of a run). Only the coordinator keeps one.
///
/// ### See Also
/// `MetricsLog`, `TensorBoardWriter`, `CurvesSVG`.
public final class MetricsRecorder {
    public let directory: URL
    public let log: MetricsLog
    public let tensorBoard: TensorBoardWriter

    public var svgURL: URL { directory.appendingPathComponent("curves.svg") }
    public var tensorBoardDirectory: URL { directory.appendingPathComponent("tensorboard") }

    /// Opens the files of a run that starts fresh (`resumedStep` nil) or resumes after `resumedStep`.
    public init(runDirectory: String, resumedStep: Int?) throws {
        directory = URL(fileURLWithPath: runDirectory)
        try MetricsRecorder.createDirectories(directory)
        log = try MetricsLog(url: directory.appendingPathComponent("metrics.jsonl"), resumedStep: resumedStep)
        tensorBoard = try TensorBoardWriter(directory: directory.appendingPathComponent("tensorboard"), points: log.points)
    }

    /// `mkdir -p`, with an error that says why (Foundation's does not, on Linux).
    private static func createDirectories(_ url: URL) throws {
        var missing: [URL] = []
        var current = url
        while !FileManager.default.fileExists(atPath: current.path) {
            missing.append(current)
            current.deleteLastPathComponent()
        }
        for directory in missing.reversed() where mkdir(directory.path, 0o755) != 0 && errno != EEXIST {
            throw CohortError("\(directory.path): cannot create the run directory, checkpoint.dir (\(String(cString: strerror(errno))))")
        }
    }

    public func record(_ point: MetricPoint) throws {
        try log.append(point)
        try tensorBoard.write(point)
    }

    /// The evaluation of highest test accuracy over the whole run (the earliest, on a tie).
    public var bestTest: MetricPoint? {
        log.points.filter { $0.split == .test }.reduce(nil) { best, point in
            best.map { point.accuracy > $0.accuracy ? point : $0 } ?? point
        }
    }

    /// Writes `curves.svg` from every point so far.
    public func writeCurves(title: String) throws {
        do {
            try Data(CurvesSVG.render(log.points, title: title).utf8).write(to: svgURL, options: .atomic)
        } catch {
            throw CohortError("\(svgURL.path): cannot write the curves (\(reason(error)))")
        }
    }
}
