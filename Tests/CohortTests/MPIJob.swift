import Foundation
import XCTest
@testable import Cohort

/// A `cohort` job under `mpirun`, started by a test.
final class MPIJob {
    let process = Process()
    let configPath: String
    private let errorPipe = Pipe()
    private let outputPipe = Pipe()

    static var mpirun: String? {
        ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts `cohort <arguments>` on `workers` ranks, with `environment` added to theirs;
    /// `configPath` must appear in the arguments.
    init(workers: Int, arguments: [String], configPath: String, environment: [String: String] = [:]) throws {
        let mpirun = try XCTUnwrap(MPIJob.mpirun, "mpirun is not installed (apt-get install openmpi-bin)")
        self.configPath = configPath
        process.executableURL = URL(fileURLWithPath: mpirun)
        process.arguments = ["-np", "\(workers)", "--oversubscribe", "--allow-run-as-root", "--quiet", "--stdin", "none",
                             "-x", "OPENBLAS_NUM_THREADS=1"] + environment.sorted { $0.key < $1.key }.flatMap { ["-x", "\($0.key)=\($0.value)"] }
            + [try cohortBinary().path] + arguments
        process.standardOutput = outputPipe
        process.standardError = errorPipe
        try process.run()
    }

    /// Waits for the job to end; returns its exit status and standard error.
    func wait() -> (status: Int32, output: String, error: String) {
        let output = String(decoding: outputPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let error = String(decoding: errorPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output, error)
    }

    /// PIDs of the job's workers (not mpirun itself).
    func workerPIDs() -> [Int32] {
        let pgrep = Process()
        pgrep.executableURL = URL(fileURLWithPath: "/usr/bin/pgrep")
        pgrep.arguments = ["-f", "^\((try? cohortBinary().path) ?? "cohort") .*\(configPath)"]
        let pipe = Pipe()
        pgrep.standardOutput = pipe
        try? pgrep.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        pgrep.waitUntilExit()
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    /// Waits (up to `timeout` seconds) until `path` exists.
    static func waitFor(_ path: String, timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: path) { return true }
            usleep(20_000)
        }
        return false
    }
}

/// A config for the distributed tests: conv, batch norm, dropout, shuffle, Nesterov momentum, a
/// cosine schedule (by default); 12 steps per epoch.
/// `batchNorm: false` leaves out the two batch norms; `train` and `distributed` are appended to
/// those sections (`", accumulate: 3"`).
func distributedConfig(data: IDXPair, run: URL, maxSteps: Int, everySteps: Int = 0, batch: Int = 50, timeout: Int = 60,
                       schedule: String = "cosine", batchNorm: Bool = true, hidden: Int = 16, train: String = "", distributed: String = "") -> String {
    let norm = batchNorm ? "{batchnorm: {}}" : "{dropout: {p: 0.0}}"
    return """
    seed: 8
    data: {train: {images: \(data.images), labels: \(data.labels)}, shuffle: true}
    model:
      input: [1, 6, 6]
      layers:
        - conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
        - \(norm)
        - relu: {}
        - maxpool2d: {kernel_size: 2}
        - flatten: {}
        - dense: {out_features: \(hidden)}
        - \(norm)
        - relu: {}
        - dropout: {p: 0.4}
        - dense: {out_features: 5}
    optimizer: {name: sgd, lr: 0.05, momentum: 0.9, nesterov: true, schedule: {name: \(schedule)}}
    train: {batch_size: \(batch), max_steps: \(maxSteps)\(train)}
    checkpoint: {dir: \(run.path), every_steps: \(everySteps), keep: 100}
    distributed: {timeout_s: \(timeout)\(distributed)}
    """
}

/// Every tensor of two state dicts within `tolerance` relative (batches tracked: equal).
func assertSameWeights(_ a: [String: SafeTensors.Tensor], _ b: [String: SafeTensors.Tensor], tolerance: Double,
                       _ label: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(Set(a.keys), Set(b.keys), label, file: file, line: line)
    for (name, reference) in a {
        guard let other = b[name] else { continue }
        if name.hasSuffix("num_batches_tracked") {
            XCTAssertEqual(other.int64s(), reference.int64s(), "\(label): \(name)", file: file, line: line)
            continue
        }
        let error = relativeError(other.doubles(), reference.doubles())
        XCTAssertLessThan(error, tolerance, "\(label): \(name) differs by \(error) relative", file: file, line: line)
    }
}
