/// Images and labels from a pair of IDX files, kept as bytes and scaled when a batch is gathered.
public struct Dataset: Sendable {
    public let count: Int
    /// Values per sample, e.g. 784 for a 28 x 28 image.
    public let sampleSize: Int
    public let sampleShape: [Int]
    public let pixels: [UInt8]
    public let labels: [UInt8]
    public let scale: Float

    /// Loads a pair and checks it against the model: matching counts, sample size, labels below `classes`.
    public init(_ pair: IDXPair, scale: Double, inputShape: [Int], classes: Int, role: String) throws {
        let images = try IDXFile(path: pair.images)
        let labelFile = try IDXFile(path: pair.labels)
        guard images.dimensions.count >= 2 else {
            throw CohortError("\(pair.images): expected images [count, rows, columns], got \(describe(images.dimensions)) (is this a labels file?)")
        }
        guard labelFile.dimensions.count == 1 else {
            throw CohortError("\(pair.labels): expected labels [count], got \(describe(labelFile.dimensions)) (is this an images file?)")
        }
        count = images.dimensions[0]
        guard labelFile.dimensions[0] == count else {
            throw CohortError("\(role): \(pair.images) has \(count) images but \(pair.labels) has \(labelFile.dimensions[0]) labels")
        }
        guard count > 0 else { throw CohortError("\(pair.images): holds no samples") }
        sampleShape = Array(images.dimensions.dropFirst())
        sampleSize = sampleShape.reduce(1, *)
        let expected = inputShape.reduce(1, *)
        guard sampleSize == expected else {
            throw CohortError("\(pair.images): samples are \(describe(sampleShape)) (\(sampleSize) values) but model.input \(describe(inputShape)) needs \(expected)")
        }
        if let bad = labelFile.bytes.firstIndex(where: { Int($0) >= classes }) {
            throw CohortError("\(pair.labels): label \(labelFile.bytes[bad]) of sample \(bad) is out of range for a model with \(classes) outputs")
        }
        pixels = images.bytes
        labels = labelFile.bytes
        self.scale = Float(scale)
    }

    /// Copies samples `indices` into `input` (`[N, sampleSize]`, scaled) and their labels into `labels`.
    public func gather<T: Scalar>(_ indices: ArraySlice<Int>, into input: UnsafeMutablePointer<T>,
                                  labels out: UnsafeMutablePointer<Int32>) {
        pixels.withUnsafeBufferPointer { source in
            for (row, index) in indices.enumerated() {
                let src = source.baseAddress! + index * sampleSize
                let dst = input + row * sampleSize
                for i in 0..<sampleSize { dst[i] = T(Float(src[i]) * scale) }
                out[row] = Int32(labels[index])
            }
        }
    }
}
