import Foundation
import XCTest

/// What a finished process said and returned.
struct ProcessResult {
    var status: Int32
    var out: String
    var err: String
}

/// Runs `executable` with `arguments` in `directory` to its end; `environment` adds to the current one.
func runProcess(_ executable: URL, _ arguments: [String], in directory: URL, environment: [String: String] = [:],
                file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.currentDirectoryURL = directory
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes while the process runs, so that neither can fill up and block it.
    final class Box: @unchecked Sendable { var data = Data() }
    let errBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errBox.data = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let errData = errBox.data
    process.waitUntilExit()
    XCTAssertEqual(process.terminationReason, .exit, "\(executable.lastPathComponent) ended by a signal", file: file, line: line)
    return ProcessResult(status: process.terminationStatus, out: String(decoding: outData, as: UTF8.self),
                         err: String(decoding: errData, as: UTF8.self))
}

/// Runs the `cohort` binary.
func runCohort(_ arguments: [String], in directory: URL, file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
    try runProcess(try cohortBinary(), arguments, in: directory, file: file, line: line)
}

/// The project's root (where `configs/` and `launch/` are).
let projectDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A small run in `directory`: synthetic 4 x 4 images of 4 classes (64 to train, 20 to test) and
/// `c.yaml`, an MLP trained `steps` steps of 16 into `run/`; `extra` is appended to the config.
func writeSmallRun(in directory: URL, steps: Int = 20, lr: Double = 0.1, extra: String = "") throws {
    _ = try writeSyntheticData(in: directory, name: "train", count: 64, rows: 4, columns: 4, classes: 4, seed: 1)
    _ = try writeSyntheticData(in: directory, name: "test", count: 20, rows: 4, columns: 4, classes: 4, seed: 2)
    let config = """
        seed: 2
        data: {train: {images: train-images.idx, labels: train-labels.idx}, test: {images: test-images.idx, labels: test-labels.idx}}
        model: {input: [1, 4, 4], layers: [flatten, {dense: {out_features: 16}}, relu, {dropout: {p: 0.2}}, {dense: {out_features: 4}}]}
        optimizer: {name: sgd, lr: \(lr), momentum: 0.9}
        train: {batch_size: 16, max_steps: \(steps)}
        checkpoint: {dir: run}

        """ + extra
    try config.write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
}
