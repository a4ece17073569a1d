import Foundation
import XCTest
@testable import Cohort

/// NumPy `.npy` files: what NumPy writes is read, told apart from IDX by content; everything else
/// is refused in one line that names the file and what it holds.
final class NumPyTests: XCTestCase {
    func testTheHeaderDictionaryIsParsedAsNumPyWritesIt() throws {
        func parse(_ text: String) throws -> NumPyHeader { try NumPyHeader(parsing: Array(text.utf8)) }
        XCTAssertEqual(try parse("{'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), }   \n"),
                       NumPyHeader(descr: "<f4", fortranOrder: false, shape: [60000, 28, 28]))
        XCTAssertEqual(try parse("{'descr': '|u1', 'fortran_order': True, 'shape': (5,)}"),
                       NumPyHeader(descr: "|u1", fortranOrder: true, shape: [5]))
        XCTAssertEqual(try parse("{\"shape\": (3L, 4L), \"fortran_order\": False, \"descr\": \"<i8\"}"),
                       NumPyHeader(descr: "<i8", fortranOrder: false, shape: [3, 4]))
        XCTAssertEqual(try parse("{'descr': '<f8', 'fortran_order': False, 'shape': ()}").shape, [])
        for bad in ["", "{", "{'descr': '<f4'}", "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}",
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}",
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}"] {
            XCTAssertThrowsError(try parse(bad), bad)
        }
    }

    /// Float images are checked as they are gathered: a NaN or an infinity names its sample; values
    /// near Float's limit, whose sum overflows, are finite and pass.
    func testFloatImagesAreCheckedExactlyAsTheyAreGathered() throws {
        let directory = try temporaryDirectory(self)
        for (descr, bad) in [("<f4", Double.nan), ("<f8", -Double.infinity)] {
            var values = [Double](repeating: 3e38, count: 4 * 6)
            let url = directory.appendingPathComponent("x.npy")
            func write() throws {
                let payload = descr == "<f4" ? rawBytes(values.map(Float.init)) : rawBytes(values)
                try npyFile(payload, descr: descr, shape: [4, 2, 3]).write(to: url)
            }
            try write()
            let input = Buffer<Float>(count: 4 * 6)
            let transform = InputTransform(scale: 1, inputShape: [2, 3])
            try transform.gather(SampleSource(images: StoredArray.open(path: url.path), inputShape: [2, 3]), [0, 1, 2, 3], into: input.pointer, epoch: nil)
            XCTAssertTrue(input.buffer.allSatisfy { $0 == 3e38 }, descr)
            XCTAssertFalse(allFinite(input.pointer, count: input.count), "the summing check would have refused them")
            values[2 * 6 + 4] = bad
            try write()
            let source = try SampleSource(images: StoredArray.open(path: url.path), inputShape: [2, 3])
            XCTAssertThrowsError(try transform.gather(source, [1, 2, 3], into: input.pointer, epoch: nil)) { error in
                XCTAssertEqual("\(error)", "\(url.path): sample 2 holds a NaN or an infinity", descr)
            }
            XCTAssertNoThrow(try transform.gather(source, [3, 0], into: input.pointer, epoch: nil), descr)
        }
    }

    func testEveryVersionAndAllowedDtypeIsRead() throws {
        let directory = try temporaryDirectory(self)
        let values: [UInt8] = (0..<24).map { UInt8($0 * 10) }
        for major: UInt8 in [1, 2, 3] {
            for (descr, payload) in [("|u1", rawBytes(values)), ("<f4", rawBytes(values.map(Float.init))), ("<f8", rawBytes(values.map(Double.init)))] {
                let url = directory.appendingPathComponent("x\(major).npy")
                try npyFile(payload, descr: descr, shape: [2, 3, 4], major: major).write(to: url)
                let source = try SampleSource(images: StoredArray.open(path: url.path), inputShape: [3, 4])
                XCTAssertEqual(source.count, 2)
                XCTAssertEqual(source.sampleShape, [3, 4])
                let input = Buffer<Float>(count: 24)
                try InputTransform(scale: 1, inputShape: [3, 4]).gather(source, [0, 1], into: input.pointer, epoch: nil)
                XCTAssertEqual(Array(input.buffer), values.map(Float.init), "\(descr) version \(major)")
            }
        }
        let labels: [Int] = [0, 3, 1, 2]
        for (descr, payload) in [("|u1", rawBytes(labels.map(UInt8.init))), ("|i1", rawBytes(labels.map(Int8.init))), ("<u2", rawBytes(labels.map(UInt16.init))),
                                 ("<i2", rawBytes(labels.map(Int16.init))), ("<u4", rawBytes(labels.map(UInt32.init))), ("<i4", rawBytes(labels.map(Int32.init))),
                                 ("<u8", rawBytes(labels.map(UInt64.init))), ("<i8", rawBytes(labels.map(Int64.init)))] {
            try npyFile(payload, descr: descr, shape: [4], major: 1).write(to: directory.appendingPathComponent("y.npy"))
            try npyFile(Data(count: 4 * 6), descr: "|u1", shape: [4, 2, 3]).write(to: directory.appendingPathComponent("x.npy"))
            let data = try Dataset(IDXPair(images: directory.appendingPathComponent("x.npy").path, labels: directory.appendingPathComponent("y.npy").path),
                                   scale: 1, inputShape: [6], classes: 4, role: "data.train")
            XCTAssertEqual(data.labels, labels.map(Int32.init), descr)
        }
    }

    /// A descr without its byte-order character ('u1', 'f4'), which NumPy reads as the machine's
    /// order, is read so; it had been "unknown dtype".
    func testADescrWithoutByteOrderIsTheMachinesOrder() throws {
        XCTAssertEqual(try NumPyFile.element("u1").get(), .uint8)
        XCTAssertEqual(try NumPyFile.element("f4").get(), .float32)
        XCTAssertEqual(try NumPyFile.element("i8").get(), .int64)
        XCTAssertEqual(try NumPyFile.element("<f8").get(), .float64)
        XCTAssertThrowsError(try NumPyFile.element("").get())
        XCTAssertThrowsError(try NumPyFile.element("f2").get())
        XCTAssertThrowsError(try NumPyFile.element("|b1").get()) { error in
            XCTAssertEqual((error as? NumPyHeaderError)?.reason, "holds booleans (dtype '|b1'); save labels as integers: np.save(path, y.astype(np.int64))")
        }
        let directory = try temporaryDirectory(self)
        let url = directory.appendingPathComponent("x.npy")
        try npyFile(rawBytes((0..<12).map(Float.init)), descr: "f4", shape: [2, 6]).write(to: url)
        let source = try SampleSource(images: StoredArray.open(path: url.path), inputShape: [6])
        XCTAssertEqual(source.element, .float32)
        XCTAssertEqual(source.count, 2)
    }

    /// Written by NumPy itself (`Fixtures/make_normalize_fixture.py`): uint8 images, int64 labels, float64.
    func testFilesSavedByNumPyAreRead() throws {
        let data = try Dataset(IDXPair(images: fixtureDirectory.appendingPathComponent("normalize-images.npy").path,
                                       labels: fixtureDirectory.appendingPathComponent("normalize-labels.npy").path),
                               scale: 1, inputShape: [3, 5, 7], classes: 10, role: "data.train")
        XCTAssertEqual(data.count, 4)
        XCTAssertEqual(data.labels, [3, 1, 4, 1])
        let expected = try StoredArray.open(path: fixtureDirectory.appendingPathComponent("normalize-expected.npy").path)
        XCTAssertEqual(expected.element, .float64)
        XCTAssertEqual(expected.shape, [4, 3, 5, 7])
    }

    func expectError(_ body: () throws -> Void, containing texts: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
            XCTFail("no error, expected one containing \(texts)", file: file, line: line)
        } catch {
            let message = (error as? CohortError)?.message ?? "\(error)"
            XCTAssertFalse(message.contains("\n"), message, file: file, line: line)
            for text in texts { XCTAssertTrue(message.contains(text), "'\(message)' does not contain '\(text)'", file: file, line: line) }
        }
    }

    func testEveryDisallowedFileIsRefusedNamingItAndWhatItHolds() throws {
        let directory = try temporaryDirectory(self)
        let images = rawBytes([UInt8](repeating: 1, count: 4 * 6))
        let good = npyFile(images, descr: "|u1", shape: [4, 2, 3])
        var lying = good
        lying[8] = 0xFF; lying[9] = 0x7F
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2, 3), }"
        while (10 + header.utf8.count + 1) % 4 != 1 { header += " " }
        header += "\n"
        var unaligned = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8))
        unaligned.append(Data(count: 4 * 6 * 4))
        let cases: [(String, Data, [String])] = [
            ("fortran.npy", npyFile(images, descr: "|u1", shape: [4, 2, 3], fortran: true), ["Fortran order", "np.ascontiguousarray"]),
            ("big.npy", npyFile(Data(count: 4 * 6 * 4), descr: ">f4", shape: [4, 2, 3]), ["big-endian", "astype('<f4')"]),
            ("object.npy", npyFile(Data(count: 4 * 6 * 8), descr: "|O", shape: [4, 2, 3]), ["Python objects"]),
            ("string.npy", npyFile(Data(count: 4 * 6 * 20), descr: "<U5", shape: [4, 2, 3]), ["strings", "'<U5'"]),
            ("complex.npy", npyFile(Data(count: 4 * 6 * 8), descr: "<c8", shape: [4, 2, 3]), ["dtype '<c8' is not supported"]),
            ("int64-images.npy", npyFile(Data(count: 4 * 6 * 8), descr: "<i8", shape: [4, 2, 3]), ["images of dtype int64"]),
            ("shape.npy", npyFile(rawBytes([UInt8](repeating: 1, count: 4 * 8)), descr: "|u1", shape: [4, 2, 4]), ["images are [2, 4] (8 values)", "model.input [1, 2, 3]"]),
            ("flat.npy", npyFile(images, descr: "|u1", shape: [24]), ["expected images [count, rows, columns], got [24]"]),
            ("truncated.npy", good.prefix(good.count - 5), ["truncated", "(4, 2, 3) uint8, 24 bytes", "holds 19"]),
            ("header.npy", good.prefix(40), ["header claims", "lies about its size"]),
            ("lying.npy", lying, ["header claims 32767 bytes"]),
            ("extra.npy", good + Data([1, 2, 3]), ["3 bytes after"]),
            ("version.npy", { var d = good; d[6] = 4; return d }(), ["format version 4.0 is not supported"]),
            ("tiny.npy", good.prefix(9), ["truncated .npy file (9 bytes)"]),
            ("garbled.npy", { var d = good; d[10] = UInt8(ascii: "#"); return d }(), ["garbled.npy: malformed header"]),
            ("unaligned.npy", unaligned, ["not aligned"]),
        ]
        let labels = directory.appendingPathComponent("labels.npy")
        try npyFile(rawBytes([Int64](repeating: 1, count: 4)), descr: "<i8", shape: [4]).write(to: labels)
        for (name, data, expected) in cases {
            let url = directory.appendingPathComponent(name)
            try data.write(to: url)
            expectError({ _ = try Dataset(IDXPair(images: url.path, labels: labels.path), scale: 1, inputShape: [1, 2, 3], classes: 4, role: "data.train") },
                        containing: [name] + expected)
        }
        let images2 = directory.appendingPathComponent("images.npy")
        try good.write(to: images2)
        let labelCases: [(String, Data, [String])] = [
            ("float-labels.npy", npyFile(rawBytes([Float](repeating: 1, count: 4)), descr: "<f4", shape: [4]), ["labels must be integers, got float32"]),
            ("negative.npy", npyFile(rawBytes([Int64]([0, 1, -1, 2])), descr: "<i8", shape: [4]), ["label -1 of sample 2 is out of range for a model with 4 outputs"]),
            ("large.npy", npyFile(rawBytes([Int64]([0, 1, 2, 4])), descr: "<i8", shape: [4]), ["label 4 of sample 3 is out of range"]),
            ("column.npy", npyFile(rawBytes([Int64](repeating: 0, count: 4)), descr: "<i8", shape: [4, 1]), ["expected labels [count], got [4, 1]"]),
            ("count.npy", npyFile(rawBytes([Int64](repeating: 0, count: 3)), descr: "<i8", shape: [3]), ["has 4 images but", "count.npy has 3 labels"]),
        ]
        for (name, data, expected) in labelCases {
            let url = directory.appendingPathComponent(name)
            try data.write(to: url)
            expectError({ _ = try Dataset(IDXPair(images: images2.path, labels: url.path), scale: 1, inputShape: [1, 2, 3], classes: 4, role: "data.train") },
                        containing: [name] + expected)
        }
    }
}
