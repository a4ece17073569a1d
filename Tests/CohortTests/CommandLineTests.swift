import Foundation
import XCTest
@testable import Cohort

/// The `cohort` binary as users run it.
final class CommandLineTests: XCTestCase {
    func run(_ arguments: [String], in directory: URL) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = try cohortBinary()
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit, "ended by a signal")
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    func testTrainThenEvalReportsJSON() throws {
        let directory = try temporaryDirectory(self)
        let train = try writeSyntheticData(in: directory, name: "train", count: 64, rows: 4, columns: 4, classes: 4, seed: 1)
        let test = try writeSyntheticData(in: directory, name: "test", count: 20, rows: 4, columns: 4, classes: 4, seed: 2)
        let config = """
            seed: 2
            data: {train: {images: train-images.idx, labels: train-labels.idx}, test: {images: test-images.idx, labels: test-labels.idx}}
            model: {input: [1, 4, 4], layers: [flatten, {dense: {out_features: 16}}, relu, {dense: {out_features: 4}}]}
            optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
            train: {batch_size: 16, epochs: 5}
            checkpoint: {dir: run}
            """
        _ = (train, test)
        try config.write(to: directory.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
        let trained = try run(["train", "c.yaml"], in: directory)
        XCTAssertEqual(trained.status, 0, trained.err)
        XCTAssertTrue(trained.out.contains("world=1"), trained.out)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent("run/checkpoints/20/model.safetensors").path))
        let evaluated = try run(["eval", "c.yaml", "--checkpoint", "auto", "--json"], in: directory)
        XCTAssertEqual(evaluated.status, 0, evaluated.err)
        let last = try XCTUnwrap(evaluated.out.split(separator: "\n").last)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        XCTAssertEqual(object["samples"] as? Int, 20)
        let accuracy = try XCTUnwrap(object["accuracy"] as? Double)
        XCTAssertGreaterThan(accuracy, 0.5, "the synthetic classes are easy to separate")
        XCTAssertNotNil(object["loss"] as? Double)
    }

    func testErrorsAreOneLineAndExitNonZero() throws {
        let directory = try temporaryDirectory(self)
        let missing = try run(["train", "nope.yaml"], in: directory)
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.err, "error: nope.yaml: config file not found\n")
        try "seed: 1\noptimizer: {lr: 0.1}\n".write(to: directory.appendingPathComponent("bad.yaml"), atomically: true, encoding: .utf8)
        let bad = try run(["train", "bad.yaml"], in: directory)
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.err.hasPrefix("error: bad.yaml: data: missing"), bad.err)
        XCTAssertEqual(bad.err.split(separator: "\n").count, 1)
        let noCheckpoint = try run(["eval", "bad.yaml"], in: directory)
        XCTAssertEqual(noCheckpoint.status, 1)
    }

    func testHelpListsTheCommands() throws {
        let help = try run(["--help"], in: FileManager.default.temporaryDirectory)
        XCTAssertEqual(help.status, 0)
        for command in ["train", "eval", "bench"] { XCTAssertTrue(help.out.contains(command), help.out) }
    }
}
