import Foundation
@testable import Cohort

/// The bytes of `values` as stored in memory (little-endian on every machine we run on).
func rawBytes<T>(_ values: [T]) -> Data {
    values.withUnsafeBytes { Data($0) }
}

/// A `.npy` file as `np.save` writes it: format `major`.0, the header padded with spaces to a
/// multiple of 64 and ended by a newline. `headerLength` replaces the length field (to make a
/// header that lies about its size).
func npyFile(_ payload: Data, descr: String, shape: [Int], major: UInt8 = 1, fortran: Bool = false,
             headerLength: Int? = nil) -> Data {
    let shapeText = "(" + shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? ",)" : ")")
    var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shapeText), }"
    let prefix = major == 1 ? 10 : 12
    while (prefix + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var data = Data([0x93] + Array("NUMPY".utf8) + [major, 0])
    let length = headerLength ?? header.utf8.count
    if major == 1 {
        data.append(contentsOf: [UInt8(length & 255), UInt8(length >> 8 & 255)])
    } else {
        data.append(contentsOf: [UInt8(length & 255), UInt8(length >> 8 & 255), UInt8(length >> 16 & 255), UInt8(length >> 24 & 255)])
    }
    data.append(contentsOf: Array(header.utf8))
    data.append(payload)
    return data
}

/// CIFAR binary batch records: per image its label byte(s) (`coarse` first for CIFAR-100), then 3,072 pixels.
func cifarRecords(pixels: [UInt8], labels: [UInt8], format: CIFARFormat) -> Data {
    var data = Data()
    for (n, label) in labels.enumerated() {
        if format == .cifar100 { data.append(UInt8(n % 20)) }
        data.append(label)
        data.append(contentsOf: pixels[(n * 3072)..<((n + 1) * 3072)])
    }
    return data
}

/// `count` synthetic 3 x 32 x 32 images of `classes` classes (a faint class pattern under noise).
func syntheticColorImages(count: Int, classes: Int, seed: UInt64) -> (pixels: [UInt8], labels: [UInt8]) {
    let random = CounterRandom(seed, 77)
    var pixels: [UInt8] = [], labels: [UInt8] = []
    for n in 0..<count {
        let label = random.below(classes, UInt64(n))
        labels.append(UInt8(label))
        for i in 0..<3072 {
            let signal = (i / 32 % classes == label) ? 110 : 0
            pixels.append(UInt8(min(255, signal + random.below(140, UInt64(10_000_000 + n * 3072 + i)))))
        }
    }
    return (pixels, labels)
}
