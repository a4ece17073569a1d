import Foundation

/// What a run prints while it trains, on the coordinator only.
///
/// On a terminal, a live bar per epoch, redrawn in place at most ten times a second and finished
/// with a newline at the epoch's end:
///
///     epoch 3/15 [==========>.........] 31/62 loss 0.4123 acc 0.8750 1703 img/s ETA 1.2s world=1
///
/// In a log or CI, one plain line per logged window (`train.log_every_steps` and each epoch's end):
///
///     step 50/930 epoch 1 loss 1.5443 accuracy 0.4703 lr 0.049658 images/s 1703 world=1
///
/// Test results, notices and the closing summary are plain lines in both modes. Nothing is
/// formatted between redraws, so a step costs a few additions and a clock reading.
public final class ProgressReporter {
    /// Where a live bar goes: raw text (carriage returns, escape codes) and the width to fit.
    public struct Terminal {
        public var columns: Int
        public var write: (String) -> Void

        public init(columns: Int, write: @escaping (String) -> Void) {
            self.columns = columns
            self.write = write
        }

        /// Standard output when it is a terminal, else nil. Under an MPI launcher (OpenMPI's
        /// mpirun, MPICH's hydra), nil too: mpirun hands its workers a pseudo-terminal even when its
        /// own output goes to a file. (A singleton, `cohort train` alone, has neither variable.)
        public static func standardOutput() -> Terminal? {
            let environment = ProcessInfo.processInfo.environment
            let launched = ["OMPI_COMM_WORLD_SIZE", "PMI_RANK"].contains { environment[$0] != nil }
            guard isatty(STDOUT_FILENO) == 1, !launched else { return nil }
            var size = winsize()
            let columns = ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 80
            return Terminal(columns: columns) { text in
                fputs(text, stdout)
                fflush(stdout)
            }
        }
    }

    private let log: (String) -> Void
    private let terminal: Terminal?
    private let world: Int
    private let totalSteps: Int
    private let stepsPerEpoch: Int
    private let batchSize: Int

    private var epoch = -1
    private var epochEnd = 0
    private var epochSteps = 0
    private var epochLoss = 0.0, epochAccuracy = 0.0, epochSeconds = 0.0
    private var lastDraw: UInt64 = 0
    /// The bar's width in characters, fixed per epoch so that it does not jitter as figures change length.
    private var barWidth: Int?
    /// A bar is on screen without its newline.
    private var barOpen = false
    private static let redrawNanoseconds: UInt64 = 100_000_000

    /// `log` prints a line; with a `terminal`, steps draw a bar there instead of logged lines.
    public init(log: @escaping (String) -> Void, terminal: Terminal?, world: Int, totalSteps: Int, stepsPerEpoch: Int,
                batchSize: Int) {
        self.log = log
        self.terminal = terminal
        self.world = world
        self.totalSteps = totalSteps
        self.stepsPerEpoch = stepsPerEpoch
        self.batchSize = batchSize
    }

    /// After each step (`done` steps in all): moves the bar, when there is one.
    public func step(_ done: Int, loss: Double, accuracy: Double, seconds: Double) {
        guard let terminal else { return }
        let stepEpoch = (done - 1) / stepsPerEpoch
        if stepEpoch != epoch {
            epoch = stepEpoch
            epochEnd = min((epoch + 1) * stepsPerEpoch, totalSteps)
            epochSteps = 0
            epochLoss = 0; epochAccuracy = 0; epochSeconds = 0
            lastDraw = 0
            barWidth = nil
        }
        epochSteps += 1
        epochLoss += loss; epochAccuracy += accuracy; epochSeconds += seconds
        let now = DispatchTime.now().uptimeNanoseconds
        if done == epochEnd {
            terminal.write("\r" + bar(done: done, columns: terminal.columns) + "\u{1B}[K\n")
            barOpen = false
        } else if lastDraw == 0 || now - lastDraw >= ProgressReporter.redrawNanoseconds {
            terminal.write("\r" + bar(done: done, columns: terminal.columns) + "\u{1B}[K")
            barOpen = true
            lastDraw = now
        }
    }

    /// A logged window of training steps: a plain line, unless a bar shows the progress.
    public func logged(_ point: MetricPoint) {
        guard terminal == nil else { return }
        log(String(format: "step %ld/%ld epoch %ld loss %.4f accuracy %.4f lr %.5g images/s %.0f world=%ld",
                   point.step, totalSteps, point.epoch, point.loss, point.accuracy, point.lr ?? 0,
                   point.imagesPerSecond ?? 0, world))
    }

    /// An evaluation on the test set: after an epoch, or the `final` one at the end of the run.
    public func evaluated(_ point: MetricPoint, final: Bool) {
        let figures = String(format: "test loss %.4f accuracy %.4f (%ld samples) world=%ld",
                             point.loss, point.accuracy, point.samples ?? 0, world)
        line(final ? figures : "epoch \(point.epoch) \(figures)")
    }

    /// Any other line; an unfinished bar keeps its last state above it.
    public func line(_ text: String) {
        close()
        log(text)
    }

    /// Ends an unfinished bar with a newline (before an error message, say).
    public func close() {
        guard barOpen, let terminal else { return }
        terminal.write("\n")
        barOpen = false
    }

    /// The closing lines: steps, time, throughput, final and best test accuracy, where things are.
    public func summarize(_ summary: TrainingSummary, recorder: MetricsRecorder?) {
        var text = String(format: "done: %ld steps in %.1f s", summary.steps, summary.seconds)
        if summary.startStep > 0 { text += " (resumed at step \(summary.startStep))" }
        if summary.imagesPerSecond > 0 { text += String(format: ", %.0f images/s", summary.imagesPerSecond) }
        if let test = summary.test {
            text += String(format: ", test accuracy %.4f", test.accuracy)
            if let best = summary.bestTest { text += String(format: " (best %.4f at epoch %ld)", best.accuracy, best.epoch) }
        }
        if let checkpoint = summary.checkpoint { text += ", checkpoint \(ProgressReporter.relative(checkpoint))" }
        line(text + " world=\(world)")
        if let recorder {
            line("curves: \(recorder.svgURL.relativePath), \(recorder.metricsURL.relativePath); tensorboard --logdir \(recorder.tensorBoardDirectory.relativePath) world=\(world)")
        }
    }

    /// The bar's text for `done` steps, at most `columns - 1` characters wide.
    private func bar(done: Int, columns: Int) -> String {
        let epochs = (totalSteps + stepsPerEpoch - 1) / stepsPerEpoch
        let first = epoch * stepsPerEpoch
        let position = "\(done - first)/\(epochEnd - first)"
        let steps = Double(epochSteps)
        let rate = Double(epochSteps * batchSize) / max(epochSeconds, 1e-9)
        let timing = done == epochEnd ? "time " + ProgressReporter.duration(epochSeconds)
            : "ETA " + ProgressReporter.duration(epochSeconds / steps * Double(epochEnd - done))
        let head = "epoch \(epoch + 1)/\(epochs)"
        let figures = position + String(format: " loss %.4f acc %.4f %.0f img/s ", epochLoss / steps, epochAccuracy / steps, rate) + timing
        let worldSize = " world=\(world)"
        let tail = figures + worldSize
        let room = columns - 1 - head.count - tail.count - 4
        // Where there is room, 6 characters to spare for the figures to grow (a longer ETA, a larger
        // rate) without the bar changing width; on a narrow terminal (80 columns) what fits, narrowed
        // when they grow.
        let preferred = barWidth ?? (room - 6 >= 5 ? min(room - 6, 30) : room)
        barWidth = preferred
        let width = min(preferred, room)
        guard width >= 5 else {
            // Too narrow for a bar: the figures, cut short if need be, but never the world size.
            return String((head + " " + figures).prefix(max(columns - 1 - worldSize.count, 1))) + worldSize
        }
        let filled = width * (done - first) / max(epochEnd - first, 1)
        let arrow = filled < width ? ">" + String(repeating: ".", count: width - filled - 1) : ""
        return head + " [" + String(repeating: "=", count: filled) + arrow + "] " + tail
    }

    /// `path` from the current directory when it lies below it, as the user named it in the config.
    static func relative(_ path: String) -> String {
        let current = FileManager.default.currentDirectoryPath
        return path.hasPrefix(current + "/") ? String(path.dropFirst(current.count + 1)) : path
    }

    /// `12.3s`, `4:05` or `1:02:03`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        if seconds < 60 { return String(format: "%.1fs", seconds) }
        let whole = Int(seconds.rounded())
        if whole < 3600 { return String(format: "%ld:%02ld", whole / 60, whole % 60) }
        return String(format: "%ld:%02ld:%02ld", whole / 3600, whole / 60 % 60, whole % 60)
    }
}
