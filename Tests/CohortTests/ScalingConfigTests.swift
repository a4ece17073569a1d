import XCTest
@testable import Cohort

/// The keys of "Training at scale": `train.accumulate`, `distributed.*`; each mistake names its path.
final class ScalingConfigTests: XCTestCase {
    func config(train: String = "", distributed: String = "") -> String {
        """
        data: {train: {images: i.idx, labels: l.idx}}
        model: {input: [4], layers: [{dense: {out_features: 2}}]}
        train: {batch_size: 8, max_steps: 1\(train)}
        distributed: {timeout_s: 5\(distributed)}
        """
    }

    func message(_ text: String) -> String {
        do {
            _ = try ConfigLoader.parse(text, file: "c.yaml")
            return "no error"
        } catch {
            return (error as? CohortError)?.message ?? "not a CohortError: \(error)"
        }
    }

    func testAccumulateIsRead() throws {
        XCTAssertEqual(try ConfigLoader.parse(config(), file: "c.yaml").train.accumulate, 1)
        XCTAssertEqual(try ConfigLoader.parse(config(train: ", accumulate: 4"), file: "c.yaml").train.accumulate, 4)
    }

    func testAccumulateOutOfRangeOrOfTheWrongTypeIsRefused() {
        XCTAssertEqual(message(config(train: ", accumulate: 0")), "c.yaml: train.accumulate: must be >= 1, got 0 (line 3)")
        XCTAssertEqual(message(config(train: ", accumulate: 2.5")), "c.yaml: train.accumulate: expected an integer, got '2.5' (line 3)")
        XCTAssertEqual(message(config(train: ", accumulate: 9")),
                       "c.yaml: train.accumulate: 9 micro-batches cannot split train.batch_size 8 (at most one per sample) (line 3)")
    }
}

extension ScalingConfigTests {
    func testCompressIsReadAndCheckedByName() throws {
        XCTAssertEqual(try ConfigLoader.parse(config(), file: "c.yaml").distributed.compress, .none)
        XCTAssertEqual(try ConfigLoader.parse(config(distributed: ", compress: bf16"), file: "c.yaml").distributed.compress, .bf16)
        XCTAssertEqual(message(config(distributed: ", compress: fp8")),
                       "c.yaml: distributed.compress: unknown compression 'fp8' (expected none or bf16) (line 4)")
        XCTAssertEqual(message(config(distributed: ", compres: bf16")), "c.yaml: distributed.compres: unknown key (line 4)")
    }
}

extension ScalingConfigTests {
    func testOverlapAndBucketSizeAreReadAndChecked() throws {
        let defaults = try ConfigLoader.parse(config(), file: "c.yaml").distributed
        XCTAssertTrue(defaults.overlap)
        XCTAssertEqual(defaults.bucketCount, 262_144)
        let given = try ConfigLoader.parse(config(distributed: ", overlap: false, bucket_mb: 0.5"), file: "c.yaml").distributed
        XCTAssertFalse(given.overlap)
        XCTAssertEqual(given.bucketCount, 131_072)
        XCTAssertEqual(message(config(distributed: ", overlap: 1")), "c.yaml: distributed.overlap: expected true or false, got '1' (line 4)")
        XCTAssertEqual(message(config(distributed: ", bucket_mb: 0")), "c.yaml: distributed.bucket_mb: must be in (0, 4096], got 0 (line 4)")
    }
}

extension ScalingConfigTests {
    func testTimeoutIsAFiniteNumberOfSecondsFromOne() {
        func timeout(_ value: String) -> String { message(config().replacingOccurrences(of: "timeout_s: 5", with: "timeout_s: \(value)")) }
        XCTAssertEqual(timeout("0.01"), "c.yaml: distributed.timeout_s: must be >= 1 (seconds), got 0.01 (line 4)")
        XCTAssertEqual(timeout(".inf"), "c.yaml: distributed.timeout_s: must be a finite number >= 1 (seconds), got .inf (line 4)")
        XCTAssertEqual(timeout("1"), "no error")
    }
}
