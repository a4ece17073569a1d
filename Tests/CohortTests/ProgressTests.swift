import Foundation
import XCTest
@testable import Cohort

/// What `cohort train` prints: a live bar per epoch on a terminal, plain lines in a log.
final class ProgressTests: XCTestCase {
    /// 320 training samples in batches of 8 (40 steps per epoch), 3 epochs, a line every 16 steps.
    func writeRun(in directory: URL) throws -> String {
        _ = try writeSyntheticData(in: directory, name: "train", count: 320, rows: 4, columns: 4, classes: 4, seed: 1)
        _ = try writeSyntheticData(in: directory, name: "test", count: 40, rows: 4, columns: 4, classes: 4, seed: 2)
        try """
            seed: 2
            data: {train: {images: train-images.idx, labels: train-labels.idx}, test: {images: test-images.idx, labels: test-labels.idx}}
            model: {input: [1, 4, 4], layers: [flatten, {dense: {out_features: 16}}, relu, {dense: {out_features: 4}}]}
            optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
            train: {batch_size: 8, epochs: 3, log_every_steps: 16}
            checkpoint: {dir: run}
            """.write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
        return "c.yaml"
    }

    /// Runs `cohort train CONFIG` with standard output to a pipe (as in a log or CI).
    func trainInALog(_ config: String, in directory: URL) throws -> (status: Int32, out: String) {
        let process = Process()
        process.executableURL = try cohortBinary()
        process.arguments = ["train", config]
        process.currentDirectoryURL = directory
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.standardError
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Runs `cohort train CONFIG` on a pseudo-terminal of 100 columns (util-linux `script`), and
    /// returns what the terminal received, with its `\r\n` line ends made `\n`.
    func trainOnATerminal(_ config: String, in directory: URL) throws -> (status: Int32, out: String, seconds: Double) {
        let script = try XCTUnwrap(["/usr/bin/script", "/bin/script"].first { FileManager.default.isExecutableFile(atPath: $0) },
                                   "util-linux's script is not installed (apt-get install bsdutils)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = ["-q", "-e", "-c", "stty cols 100 rows 30; exec '\(try cohortBinary().path)' train \(config)", "/dev/null"]
        process.currentDirectoryURL = directory
        process.standardInput = FileHandle.nullDevice
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.standardError
        let started = Date()
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        return (process.terminationStatus, text, Date().timeIntervalSince(started))
    }

    func testInALogProgressIsPlainLines() throws {
        let directory = try temporaryDirectory(self)
        let run = try trainInALog(writeRun(in: directory), in: directory)
        XCTAssertEqual(run.status, 0)
        XCTAssertFalse(run.out.contains("\r") || run.out.contains("\u{1B}"), "terminal control codes in a log: \(run.out)")
        let lines = progressLines(run.out)
        for line in lines { XCTAssertTrue(line.hasSuffix(" world=1"), "a line without the world size: \(line)") }
        let step = try NSRegularExpression(pattern: #"^step (\d+)/120 epoch (\d) loss \d\.\d{4} accuracy [01]\.\d{4} lr \S+ images/s \d+ world=1$"#)
        let steps = lines.compactMap { line -> Int? in
            guard let match = step.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) else { return nil }
            return Int(line[Range(match.range(at: 1), in: line)!])
        }
        XCTAssertEqual(steps, [16, 32, 40, 48, 64, 80, 96, 112, 120], run.out)
        XCTAssertEqual(lines.filter { $0.hasPrefix("epoch ") && $0.contains(" test loss ") }.count, 2, run.out)
        XCTAssertEqual(lines.filter { $0.hasPrefix("test loss ") && $0.contains("(40 samples)") }.count, 1, run.out)
        let done = try XCTUnwrap(lines.first { $0.hasPrefix("done: ") }, run.out)
        let summary = try NSRegularExpression(pattern: #"^done: 120 steps in [\d.]+ s, \d+ images/s, test accuracy (\d\.\d{4}) \(best (\d\.\d{4}) at epoch [123]\), checkpoint run/checkpoints/120 world=1$"#)
        let match = try XCTUnwrap(summary.firstMatch(in: done, range: NSRange(done.startIndex..., in: done)), done)
        let final = try XCTUnwrap(Double(done[Range(match.range(at: 1), in: done)!]))
        let best = try XCTUnwrap(Double(done[Range(match.range(at: 2), in: done)!]))
        XCTAssertGreaterThanOrEqual(best, final)
        XCTAssertEqual(lines.last, "curves: run/curves.svg, run/metrics.jsonl; tensorboard --logdir run/tensorboard world=1")
    }

    func testOnATerminalEachEpochIsALiveBar() throws {
        let directory = try temporaryDirectory(self)
        let run = try trainOnATerminal(writeRun(in: directory), in: directory)
        XCTAssertEqual(run.status, 0, run.out)
        XCTAssertFalse(run.out.contains("step 16/120"), "plain step lines on a terminal: \(run.out)")
        // Every drawing of the bar starts with a carriage return and clears the rest of the line.
        let drawings = run.out.components(separatedBy: "\r").dropFirst().map { $0.replacingOccurrences(of: "\u{1B}[K", with: "") }
        XCTAssertFalse(drawings.isEmpty, run.out)
        for drawing in drawings {
            let text = drawing.split(separator: "\n", omittingEmptySubsequences: false)[0]
            XCTAssertTrue(text.hasPrefix("epoch ") && text.hasSuffix(" world=1"), "not a bar: \(text)")
            XCTAssertLessThan(text.count, 100, "wider than the terminal: \(text)")
        }
        XCTAssertLessThanOrEqual(Double(drawings.count), 3 * 2 + 10 * run.seconds + 3,
                                 "more than ~10 redraws a second (\(drawings.count) in \(run.seconds) s)")
        // What stays on screen: each line as its last drawing left it.
        let screen = progressLines(run.out).map { line in
            String(line.components(separatedBy: "\r").last!).replacingOccurrences(of: "\u{1B}[K", with: "")
        }
        for line in screen { XCTAssertTrue(line.hasSuffix(" world=1"), "a line without the world size: \(line)") }
        let bar = try NSRegularExpression(pattern: #"^epoch (\d)/3 \[=+\] 40/40 loss \d\.\d{4} acc [01]\.\d{4} \d+ img/s time [\d.:]+s? world=1$"#)
        let finished = screen.indices.filter { bar.firstMatch(in: screen[$0], range: NSRange(screen[$0].startIndex..., in: screen[$0])) != nil }
        XCTAssertEqual(finished.count, 3, "one finished bar per epoch: \(screen)")
        for (epoch, index) in finished.enumerated() {
            XCTAssertTrue(screen[index].hasPrefix("epoch \(epoch + 1)/3 "), screen[index])
            let next = screen[index + 1]
            XCTAssertTrue(epoch < 2 ? next.hasPrefix("epoch \(epoch + 1) test loss ") : next.hasPrefix("test loss "), next)
            XCTAssertTrue(drawings.contains { $0.hasPrefix("epoch \(epoch + 1)/3 [>") && $0.contains(" 1/40 ") && $0.contains(" ETA ") },
                          "the bar of epoch \(epoch + 1) is not drawn at its first step")
        }
        XCTAssertTrue(screen.contains { $0.hasPrefix("done: 120 steps in ") }, run.out)
    }

    /// mpirun gives its workers a pseudo-terminal even when its own output is a pipe: under it,
    /// the plain lines, from rank 0 only.
    func testUnderMPIRunProgressIsPlainLines() throws {
        let directory = try temporaryDirectory(self)
        let config = directory.appendingPathComponent(try writeRun(in: directory)).path
        let text = try String(contentsOfFile: config, encoding: .utf8)
        try text.replacingOccurrences(of: "dir: run", with: "dir: \(directory.path)/run").write(toFile: config, atomically: true, encoding: .utf8)
        let job = try MPIJob(workers: 2, arguments: ["train", config], configPath: config).wait()
        XCTAssertEqual(job.status, 0, job.error)
        XCTAssertFalse(job.output.contains("\r") || job.output.contains("\u{1B}"), "a bar under mpirun: \(job.output)")
        let lines = progressLines(job.output)
        XCTAssertEqual(lines.filter { $0.hasPrefix("step 16/120 epoch 1 ") }.count, 1, job.output)
        XCTAssertTrue(lines.allSatisfy { $0.hasSuffix(" world=2") }, job.output)
    }

    /// The reporter's bar alone: redrawn at most every 0.1 s, fitted to a narrow terminal, and left
    /// on its own line when something else is printed mid-epoch.
    func testTheBarIsThrottledFittedAndClosed() {
        var written = ""
        var logged: [String] = []
        let reporter = ProgressReporter(log: { logged.append($0) }, terminal: .init(columns: 60) { written += $0 },
                                        world: 2, totalSteps: 2000, stepsPerEpoch: 1000, batchSize: 32)
        let started = Date()
        for done in 1...1500 { reporter.step(done, loss: 0.5, accuracy: 0.75, seconds: 0.001) }
        let elapsed = Date().timeIntervalSince(started)
        reporter.logged(.train(step: 1500, epoch: 2, loss: 0.5, accuracy: 0.75, lr: 0.1, imagesPerSecond: 1))
        XCTAssertEqual(logged, [], "no plain step lines besides a bar")
        reporter.line("stopped at step 1500 of 2000 world=2")
        let drawings = written.components(separatedBy: "\r").dropFirst()
        XCTAssertLessThanOrEqual(Double(drawings.count), 3 + 10 * elapsed)
        for drawing in drawings {
            let text = drawing.replacingOccurrences(of: "\u{1B}[K", with: "").replacingOccurrences(of: "\n", with: "")
            XCTAssertLessThan(text.count, 60, text)
            XCTAssertTrue(text.hasSuffix(" world=2"), "the world size cut off: \(text)")
        }
        XCTAssertTrue(written.hasSuffix("\n"), "the bar of the unfinished epoch is ended before the next line")
        XCTAssertEqual(logged, ["stopped at step 1500 of 2000 world=2"])
        XCTAssertTrue(written.contains("1000/1000"), written)
    }

    /// On an 80-column terminal (the figures take most of it) a narrower bar, not none; every
    /// drawing fits, also when the rate and the ETA grow longer than at the epoch's start.
    func testAnEightyColumnTerminalStillGetsABar() {
        var written = ""
        let reporter = ProgressReporter(log: { _ in }, terminal: .init(columns: 80) { written += $0 },
                                        world: 1, totalSteps: 24, stepsPerEpoch: 8, batchSize: 500)
        for done in 1...8 {
            reporter.step(done, loss: 2.3042, accuracy: 0.096, seconds: done < 4 ? 0.004 : 400)
            usleep(110_000)  // past the redraw throttle: every step draws
        }
        let drawings = written.components(separatedBy: "\r").dropFirst()
            .map { $0.replacingOccurrences(of: "\u{1B}[K", with: "").replacingOccurrences(of: "\n", with: "") }
        XCTAssertGreaterThan(drawings.count, 4)
        for text in drawings {
            XCTAssertLessThan(text.count, 80, text)
            XCTAssertTrue(text.hasPrefix("epoch 1/3 ["), text)
            XCTAssertTrue(text.hasSuffix(" world=1"), text)
        }
    }

    func testDurations() {
        XCTAssertEqual(ProgressReporter.duration(4.26), "4.3s")
        XCTAssertEqual(ProgressReporter.duration(245), "4:05")
        XCTAssertEqual(ProgressReporter.duration(3723), "1:02:03")
    }
}

/// The lines after the model summary that opens a run's output (which must be there), from
/// "training ..." on: each ends with the world size.
func progressLines(_ output: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
    let lines = output.split(separator: "\n").map(String.init)
    XCTAssertTrue(lines.first?.hasPrefix("input [") ?? false, "no model summary first: \(output)", file: file, line: line)
    guard let start = lines.firstIndex(where: { $0.hasPrefix("training ") }) else {
        XCTFail("no 'training' line: \(output)", file: file, line: line)
        return lines
    }
    XCTAssertTrue(lines[start - 1].hasPrefix("total: "), "the summary does not end with its totals", file: file, line: line)
    return Array(lines[start...])
}
