import Foundation

/// The two binary versions of CIFAR (Krizhevsky, "Learning multiple layers of features from tiny
/// images", 2009; the "binary version" files `data_batch_1.bin`, ..., `test_batch.bin`,
/// `train.bin`, `test.bin`).
public enum CIFARFormat: String, CaseIterable, Sendable {
    /// A record is a label byte, then 3,072 pixel bytes: red, green, blue planes of 32 x 32.
    case cifar10
    /// A record is two label bytes (coarse, fine), then the same pixels; the fine label is used.
    case cifar100

    var labelBytes: Int { self == .cifar10 ? 1 : 2 }
    var name: String { self == .cifar10 ? "CIFAR-10" : "CIFAR-100" }
}

/// Several CIFAR batch files read as one data set, in the order given, into memory of our own:
/// the records interleave labels with pixels, and the images are gathered from a contiguous copy.
public enum CIFARFile {
    public static let sampleShape = [3, 32, 32]
    static let imageBytes = 3 * 32 * 32

    /// The pixels `[N, 3, 32, 32]` uint8 and the labels of `paths`, in order, each label below `classes`.
    public static func read(_ paths: [String], format: CIFARFormat, classes: Int) throws -> (images: SampleSource, labels: [Int32]) {
        let record = format.labelBytes + imageBytes
        let files = try paths.map { path in
            let bytes = try DataBytes(path: path)
            guard bytes.count > 0, bytes.count % record == 0 else {
                throw CohortError("\(path): \(bytes.count) bytes is not a whole number of \(format.name) records of \(record) bytes (is it the binary version, and \(format == .cifar10 ? "not CIFAR-100" : "not CIFAR-10")?)")
            }
            return bytes
        }
        let count = files.reduce(0) { $0 + $1.count / record }
        let name = paths.count == 1 ? paths[0] : "\(paths[0]) and the other \(paths.count - 1) files"
        let budget = MemoryBudget.current()
        guard budget.holds(Double(count * imageBytes)) else {
            throw CohortError(String(format: "%@: the %ld images are copied out of the records, %.1f GiB, more than %@; save them as .npy (memory-mapped) instead",
                                     name, count, Double(count * imageBytes) / 1_073_741_824, budget.allowance))
        }
        guard let pixels = malloc(count * imageBytes) else {
            throw CohortError(String(format: "%@: out of memory copying the %ld images (%.1f GiB)", name, count, Double(count * imageBytes) / 1_073_741_824))
        }
        var labels: [Int32] = []
        labels.reserveCapacity(count)
        var sample = 0
        for file in files {
            let raw = file.base.assumingMemoryBound(to: UInt8.self)
            for n in 0..<(file.count / record) {
                let label = Int(raw[n * record + format.labelBytes - 1])
                guard label < classes else {
                    free(pixels)
                    throw CohortError("\(file.path): label \(label) of record \(n) is out of range for a model with \(classes) outputs")
                }
                labels.append(Int32(label))
                (pixels + sample * imageBytes).copyMemory(from: raw + n * record + format.labelBytes, byteCount: imageBytes)
                sample += 1
            }
        }
        let owned = DataBytes(owning: pixels, count: count * imageBytes, path: paths.count == 1 ? paths[0] : paths.joined(separator: ", "))
        return (SampleSource(bytes: owned, offset: 0, element: .uint8, count: count, sampleShape: sampleShape), labels)
    }
}
