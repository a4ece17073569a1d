import XCTest
@testable import Cohort

final class BufferTests: XCTestCase {
    /// Every buffer starts on a cache line, whatever its size and element type (glibc's malloc
    /// alone gives 16 bytes), and holds its zero value.
    func testBuffersStartOnACacheLineAndAreZeroed() {
        for count in [0, 1, 7, 1000, 40_000, 1_000_000] {
            let floats = Buffer<Float>(count: count), doubles = Buffer<Double>(count: count), bytes = Buffer<UInt8>(count: count)
            XCTAssertEqual(UInt(bitPattern: floats.pointer) % 64, 0, "Float x \(count)")
            XCTAssertEqual(UInt(bitPattern: doubles.pointer) % 64, 0, "Double x \(count)")
            XCTAssertEqual(UInt(bitPattern: bytes.pointer) % 64, 0, "UInt8 x \(count)")
            XCTAssertTrue(floats.buffer.allSatisfy { $0 == 0 })
            XCTAssertTrue(bytes.buffer.allSatisfy { $0 == 0 })
        }
        let filled = Buffer<Int32>(count: 5, zero: -1)
        XCTAssertEqual(Array(filled.buffer), [-1, -1, -1, -1, -1])
    }
}
