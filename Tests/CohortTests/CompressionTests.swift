import Foundation
import XCTest
@testable import Cohort

/// `distributed.compress: bf16`: gradients rounded to bfloat16 (nearest, ties to even), summed in
/// float32, the same on every worker.
final class CompressionTests: XCTestCase {
    func bits(_ value: Float) -> UInt16 { bfloat16Bits(value) }

    func testRoundsToNearestWithTiesToEven() {
        XCTAssertEqual(bits(1), 0x3F80)
        // 1 + 2^-8 lies halfway between 1 (even) and 1 + 2^-7 (odd): down to the even one.
        XCTAssertEqual(bits(1 + 0x1p-8), 0x3F80)
        // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up to the even one.
        XCTAssertEqual(bits(1 + 3 * 0x1p-8), 0x3F82)
        XCTAssertEqual(bits(Float(bitPattern: 0x3F80_8001)), 0x3F81, "just above halfway rounds up")
        XCTAssertEqual(bits(Float(bitPattern: 0x3F80_7FFF)), 0x3F80, "just below halfway rounds down")
        XCTAssertEqual(bits(-(1 + 3 * 0x1p-8)), 0xBF82)
        XCTAssertEqual(bits(0), 0x0000)
        XCTAssertEqual(bits(-0.0), 0x8000)
        XCTAssertEqual(bits(Float(bitPattern: 0x0000_8000)), 0x0000, "a subnormal tie goes to even zero")
        XCTAssertEqual(bits(Float(bitPattern: 0x0001_8000)), 0x0002)
    }

    func testMatchesTheNearestBFloat16OfRandomValues() {
        let random = CounterRandom(11)
        for i in 0..<20_000 {
            let value = Float(bitPattern: UInt32(truncatingIfNeeded: random.bits(UInt64(i))))
            guard value.isFinite, abs(value) < Float(bitPattern: 0x7F7F_0000) else { continue }
            let low = UInt16(truncatingIfNeeded: value.bitPattern >> 16)
            let candidates = [low, low &+ 1]
            let distances = candidates.map { abs(Double(float(bfloat16Bits: $0)) - Double(value)) }
            let expected = distances[0] < distances[1] ? low : distances[1] < distances[0] ? low &+ 1 : (low & 1 == 0 ? low : low &+ 1)
            XCTAssertEqual(bits(value), expected, "\(value)")
        }
    }

    func testNaNStaysNaNAndInfinitiesStayInfinite() {
        // A NaN whose payload is all in the low half would truncate to infinity.
        for pattern: UInt32 in [0x7F80_0001, 0xFF80_0001, 0x7FC0_0000, 0x7FFF_FFFF] {
            let rounded = float(bfloat16Bits: bits(Float(bitPattern: pattern)))
            XCTAssertTrue(rounded.isNaN, String(pattern, radix: 16))
            XCTAssertEqual(rounded.sign, Float(bitPattern: pattern).sign)
        }
        XCTAssertEqual(bits(.infinity), 0x7F80)
        XCTAssertEqual(bits(-.infinity), 0xFF80)
        XCTAssertEqual(bits(.greatestFiniteMagnitude), 0x7F80, "beyond bfloat16's largest rounds to infinity")
        XCTAssertEqual(bits(Float(bitPattern: 0x7F7F_7FFF)), 0x7F7F, "bfloat16's largest stays finite")
    }

    func testEveryBFloat16RoundTripsExactly() {
        for pattern in 0...UInt16.max {
            let value = float(bfloat16Bits: pattern)
            if value.isNaN { continue }
            XCTAssertEqual(bits(value), pattern)
        }
    }

    func testPartsAreSummedInFloat32InPartOrder() {
        let values: [Float] = [1, 0x1p-8, 0x1p-8, 3, -1, 0.5]
        let parts = values.map(bfloat16Bits)
        var sums = [UInt16](repeating: 0, count: 2)
        let workspace = Buffer<Float>(count: 2)
        // Two values per part, three parts: column sums 1 + 2^-8 + (-1) and 2^-8 + 3 + 0.5.
        sumBFloat16Parts(parts, parts: 3, stride: 2, &sums, count: 2, workspace: workspace.pointer)
        XCTAssertEqual(float(bfloat16Bits: sums[0]), 0x1p-8)
        XCTAssertEqual(float(bfloat16Bits: sums[1]), 3.5)
    }
}

/// Training with `distributed.compress: bf16` under mpirun.
final class CompressedTrainingTests: XCTestCase {
    var data: IDXPair!
    var directory: URL!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self)
        data = try writeSyntheticData(in: directory, name: "train", count: 600, rows: 6, columns: 6, classes: 5, seed: 4)
    }

    func train(_ name: String, workers: Int, maxSteps: Int, compress: String, resume: Bool = false) throws -> Data {
        let run = directory.appendingPathComponent(name)
        let path = directory.appendingPathComponent("\(name).yaml").path
        try distributedConfig(data: data, run: run, maxSteps: maxSteps, schedule: "constant", distributed: ", compress: \(compress)")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let job = try MPIJob(workers: workers, arguments: ["train", path] + (resume ? ["--resume", "auto"] : []), configPath: path).wait()
        XCTAssertEqual(job.status, 0, job.error)
        return try Data(contentsOf: run.appendingPathComponent("checkpoints/\(maxSteps)/model.safetensors"))
    }

    /// On a given number of workers the rounding is the same every run: a resumed run finishes bitwise.
    func testTwoWorkersWithBFloat16ResumeBitwise() throws {
        let straight = try train("straight", workers: 2, maxSteps: 20, compress: "bf16")
        _ = try train("resumed", workers: 2, maxSteps: 9, compress: "bf16")
        XCTAssertEqual(straight, try train("resumed", workers: 2, maxSteps: 20, compress: "bf16", resume: true))
    }

    /// The rounding moves the weights a little, not the training: close to float32 gradients.
    func testBFloat16GradientsTrainCloseToFloat32() throws {
        _ = try train("f32", workers: 2, maxSteps: 20, compress: "none")
        _ = try train("bf16", workers: 2, maxSteps: 20, compress: "bf16")
        let read = { (name: String) in
            try SafeTensors.read(path: self.directory.appendingPathComponent("\(name)/checkpoints/20/model.safetensors").path).tensors
        }
        let a = try read("f32"), b = try read("bf16")
        assertSameWeights(a, b, tolerance: 0.05, "bf16 against float32")
        XCTAssertGreaterThan(relativeError(try XCTUnwrap(a["0.weight"]).doubles(), try XCTUnwrap(b["0.weight"]).doubles()), 0,
                             "bf16 changed nothing: was it used?")
    }

    /// A world of one sends nothing, so nothing is rounded.
    func testOneWorkerIsUnchangedByCompression() throws {
        XCTAssertEqual(try train("one-f32", workers: 1, maxSteps: 5, compress: "none"),
                       try train("one-bf16", workers: 1, maxSteps: 5, compress: "bf16"))
    }
}
