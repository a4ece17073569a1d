import Foundation

/// The curves of a run, under its `checkpoint.dir`: every point goes to `metrics.jsonl` and to the
/// TensorBoard event file in `tensorboard/`; `curves.svg` is drawn from all of them on request (at
/// the end of a run). Only the coordinator keeps one.
///
/// A fresh run in a directory that holds an earlier run's checkpoints leaves that run's curves
/// alone until its own first checkpoint replaces them (as it replaces the checkpoints): until then
/// its points wait in memory, so a fresh run that fails early leaves the earlier run resumable with
/// its curves intact.
///
/// ### See Also
/// `MetricsLog`, `TensorBoardWriter`, `CurvesSVG`.
public final class MetricsRecorder {
    public let directory: URL
    private let resumedStep: Int?
    private let windowOpen: Bool
    private var log: MetricsLog?
    private var tensorBoard: TensorBoardWriter?
    /// Points measured while the files are held back.
    private var pending: [MetricPoint] = []
    private var pendingHistograms: [(histograms: [TensorHistogram], step: Int, epoch: Int, time: Double)] = []

    public var metricsURL: URL { directory.appendingPathComponent("metrics.jsonl") }
    public var svgURL: URL { directory.appendingPathComponent("curves.svg") }
    public var tensorBoardDirectory: URL { directory.appendingPathComponent("tensorboard") }

    /// Opens the files of a run that starts fresh (`resumedStep` nil) or resumes after
    /// `resumedStep` (`windowOpen`: its checkpoint carries steps after the last logged point, see
    /// `MetricsLog`); with `holdUntilCheckpoint`, a fresh run opens them at its first checkpoint.
    public init(runDirectory: String, resumedStep: Int?, windowOpen: Bool = false, holdUntilCheckpoint: Bool = false) throws {
        directory = URL(fileURLWithPath: runDirectory)
        self.resumedStep = resumedStep
        self.windowOpen = windowOpen
        try createDirectories(directory, named: "run directory")
        if !(holdUntilCheckpoint && resumedStep == nil) { try open() }
    }

    /// Every point of the run so far, those of earlier attempts included.
    public var points: [MetricPoint] { log?.points ?? pending }

    public func record(_ point: MetricPoint) throws {
        guard let log, let tensorBoard else {
            pending.append(point)
            return
        }
        try log.append(point)
        try tensorBoard.write(point)
    }

    /// The histograms of one step (`train.histograms_every_steps`): the event file gets them whole,
    /// `metrics.jsonl` each one's mean and standard deviation. A resumed run's event file, rebuilt
    /// from the metrics log, has the scalars of earlier attempts but their histograms no more.
    public func record(histograms: [TensorHistogram], step: Int, epoch: Int, time: Double = Date().timeIntervalSince1970) throws {
        guard let log, let tensorBoard else {
            pendingHistograms.append((histograms, step, epoch, time))
            return
        }
        try log.append(line: ModelHistograms.line(histograms, step: step, epoch: epoch, time: time))
        try tensorBoard.write(histograms: histograms, step: step, time: time)
    }

    /// After each checkpoint: opens the held-back files, replacing the earlier run's.
    public func checkpointWritten() throws {
        if log == nil { try open() }
    }

    /// The evaluation of highest test accuracy over the whole run (the earliest, on a tie).
    public var bestTest: MetricPoint? {
        points.filter { $0.split == .test }.reduce(nil) { best, point in
            best.map { point.accuracy > $0.accuracy ? point : $0 } ?? point
        }
    }

    /// Writes `curves.svg` from every point so far (not while the files are held back).
    public func writeCurves(title: String) throws {
        guard log != nil else { return }
        do {
            try Data(CurvesSVG.render(points, title: title).utf8).write(to: svgURL, options: .atomic)
        } catch {
            throw CohortError("\(svgURL.path): cannot write the curves (\(reason(error)))")
        }
    }

    private func open() throws {
        let log = try MetricsLog(url: metricsURL, resumedStep: resumedStep, windowOpen: windowOpen)
        for point in pending { try log.append(point) }
        pending = []
        let tensorBoard = try TensorBoardWriter(directory: tensorBoardDirectory, points: log.points)
        for held in pendingHistograms {
            try log.append(line: ModelHistograms.line(held.histograms, step: held.step, epoch: held.epoch, time: held.time))
            try tensorBoard.write(histograms: held.histograms, step: held.step, time: held.time)
        }
        pendingHistograms = []
        self.tensorBoard = tensorBoard
        self.log = log
    }
}
