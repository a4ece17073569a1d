import Foundation
import XCTest
@testable import Cohort

/// Random mutations of valid inputs: the readers never crash or hang, and every rejection is one line.
final class FuzzTests: XCTestCase {
    /// A small deterministic generator (SplitMix64), so that a failure can be replayed.
    struct Mutator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            return CounterRandom.mix(state)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }

        /// Flips, deletes, inserts or duplicates a few bytes, or splices in a token.
        mutating func mutate(_ input: [UInt8], tokens: [String]) -> [UInt8] {
            var bytes = input
            for _ in 0..<(1 + below(4)) {
                let at = below(bytes.count + 1)
                switch below(6) {
                case 0 where !bytes.isEmpty: bytes[min(at, bytes.count - 1)] ^= UInt8(1 << below(8))
                case 1 where !bytes.isEmpty: bytes.remove(at: min(at, bytes.count - 1))
                case 2: bytes.insert(UInt8(below(256)), at: at)
                case 3 where at < bytes.count: bytes.insert(contentsOf: bytes[at..<min(bytes.count, at + below(16))], at: at)
                case 4: bytes.insert(contentsOf: Array(tokens[below(tokens.count)].utf8), at: at)
                default: if at < bytes.count { bytes.removeSubrange(at..<min(bytes.count, at + below(8))) }
                }
            }
            return bytes
        }
    }

    func assertOneLine(_ error: Error, _ label: String) {
        guard let error = error as? CohortError else { return XCTFail("\(label): not a CohortError: \(error)") }
        XCTAssertFalse(error.message.contains("\n"), "\(label): \(error.message)")
        XCTAssertFalse(error.message.isEmpty, label)
    }

    func testMutatedConfigsAreReadOrRejectedInOneLine() throws {
        let valid = try String(contentsOf: fixtureDirectory.appendingPathComponent("cnn_momentum.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "  init: {from: cnn_momentum-init.safetensors}\n", with: "")
        let tokens = [": ", "\n", "- ", "{", "}", "[", "]", "-1", "0", "1e308", "999999999999", "null", "~", "&a", "*a", "!!binary", "\t",
                      "'", "\"", "nan", ".inf", "true", "dense", "conv2d", "kernel_size: 99", "out_features: 0", "lstm", ",", "#"]
        var mutator = Mutator(state: 20261125)
        var accepted = 0, rejected = 0
        let start = Date()
        for round in 0..<3000 {
            let text = String(decoding: mutator.mutate(Array(valid.utf8), tokens: tokens), as: UTF8.self)
            do {
                let config = try ConfigLoader.parse(text, file: "fuzz.yaml")
                _ = try Model<Float>(config.model)
                accepted += 1
            } catch {
                assertOneLine(error, "round \(round)")
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 1000, "the mutations are too weak to test anything")
        XCTAssertGreaterThan(accepted, 10, "no mutation was harmless: the generator breaks everything")
        XCTAssertLessThan(Date().timeIntervalSince(start), 60)
    }

    func testMutatedIDXFilesAreReadOrRejectedInOneLine() throws {
        let directory = try temporaryDirectory(self)
        let valid = try Data(contentsOf: fixtureDirectory.appendingPathComponent("mlp_nesterov-images.idx"))
        let gzipped = directory.appendingPathComponent("valid.gz")
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/sh")
        gzip.arguments = ["-c", "gzip -c '\(fixtureDirectory.appendingPathComponent("mlp_nesterov-images.idx").path)' > '\(gzipped.path)'"]
        try gzip.run()
        gzip.waitUntilExit()
        let sources = [Array(valid.prefix(400)), Array(try Data(contentsOf: gzipped))]
        var mutator = Mutator(state: 7)
        var rejected = 0
        let file = directory.appendingPathComponent("fuzz.idx")
        for round in 0..<2000 {
            try Data(mutator.mutate(sources[round % 2], tokens: ["\u{0}\u{0}\u{8}\u{3}", "\u{ff}\u{ff}\u{ff}\u{ff}", "\u{1f}\u{8b}"])).write(to: file)
            do {
                _ = try IDXFile(path: file.path)
            } catch {
                assertOneLine(error, "round \(round)")
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 500)
    }

    func testMutatedSafeTensorsAreReadOrRejectedInOneLine() throws {
        let valid = try Data(contentsOf: fixtureDirectory.appendingPathComponent("cnn_momentum-init.safetensors"))
        var mutator = Mutator(state: 11)
        var rejected = 0
        for round in 0..<2000 {
            let bytes = mutator.mutate(Array(valid.prefix(1200)), tokens: ["\"shape\":[99999999999,99999999999]", "\"dtype\":\"F16\"", "{", "}", "-1", "\"data_offsets\":[0,1]"])
            do {
                _ = try SafeTensors.decode(Data(bytes), name: "fuzz.safetensors")
            } catch {
                assertOneLine(error, "round \(round)")
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 500)
    }

    func testMutatedNumPyFilesAreReadOrRejectedInOneLine() throws {
        let directory = try temporaryDirectory(self)
        let valid = try Data(contentsOf: fixtureDirectory.appendingPathComponent("normalize-images.npy"))
        let labels = try Data(contentsOf: fixtureDirectory.appendingPathComponent("normalize-labels.npy"))
        var mutator = Mutator(state: 14)
        var rejected = 0
        let file = directory.appendingPathComponent("fuzz.npy")
        let tokens = ["'descr'", "'<f8'", "'>f4'", "'|O'", "True", "(4294967296, 4294967296)", "(", ")", ",", "L", "\u{ff}\u{ff}", "\u{93}NUMPY\u{3}\u{0}"]
        for round in 0..<2000 {
            let source = round % 3 == 0 ? labels : valid
            try Data(mutator.mutate(Array(source.prefix(200)), tokens: tokens) + source.dropFirst(200)).write(to: file)
            do {
                let array = try StoredArray.open(path: file.path)
                if array.element.isInteger && array.shape.count == 1 { _ = array.integers() }
                _ = try SampleSource(images: array, inputShape: [3, 5, 7])
            } catch {
                assertOneLine(error, "round \(round)")
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 500)
    }
}
