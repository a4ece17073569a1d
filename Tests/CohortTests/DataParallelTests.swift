import Foundation
import XCTest
@testable import Cohort

/// The same run on 1, 2 and 3 workers under `mpirun` trains the same weights: gradients averaged
/// over the global batch, batch norm synchronised, dropout and shuffle keyed by global sample index.
final class DataParallelTests: XCTestCase {
    func mpirun() -> String? {
        ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    func testOneTwoAndThreeWorkersTrainTheSameWeights() throws {
        let mpirun = try XCTUnwrap(mpirun(), "mpirun is not installed (apt-get install openmpi-bin)")
        let binary = try cohortBinary()
        let directory = try temporaryDirectory(self)
        let pair = try writeSyntheticData(in: directory, name: "train", count: 120, rows: 6, columns: 6, classes: 5, seed: 4)
        var weights: [[String: SafeTensors.Tensor]] = []
        for world in 1...3 {
            let run = directory.appendingPathComponent("run\(world)")
            // A batch of 50 does not divide by 3 workers: slices of 17, 17 and 16.
            let config = """
                seed: 8
                data: {train: {images: \(pair.images), labels: \(pair.labels)}, shuffle: true}
                model:
                  input: [1, 6, 6]
                  layers:
                    - conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
                    - batchnorm: {}
                    - relu: {}
                    - maxpool2d: {kernel_size: 2}
                    - flatten: {}
                    - dense: {out_features: 16}
                    - batchnorm: {}
                    - relu: {}
                    - dropout: {p: 0.4}
                    - dense: {out_features: 5}
                optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
                train: {batch_size: 50, max_steps: 20}
                checkpoint: {dir: \(run.path)}
                """
            let configURL = directory.appendingPathComponent("c\(world).yaml")
            try config.write(to: configURL, atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: mpirun)
            process.arguments = ["-np", "\(world)", "--oversubscribe", "--allow-run-as-root", "--stdin", "none",
                                 "-x", "OPENBLAS_NUM_THREADS=1", binary.path, "train", configURL.path]
            process.standardOutput = FileHandle.nullDevice
            let err = Pipe()
            process.standardError = err
            try process.run()
            let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, "world \(world): \(errText)")
            weights.append(try SafeTensors.read(path: run.appendingPathComponent("checkpoints/20/model.safetensors").path).tensors)
        }
        for world in 2...3 {
            for (name, reference) in weights[0] {
                let other = try XCTUnwrap(weights[world - 1][name])
                if name.hasSuffix("num_batches_tracked") {
                    XCTAssertEqual(other.int64s(), reference.int64s())
                    continue
                }
                let error = relativeError(other.doubles(), reference.doubles())
                XCTAssertLessThan(error, 1e-5, "world \(world): \(name) differs by \(error) relative")
            }
        }
    }
}
