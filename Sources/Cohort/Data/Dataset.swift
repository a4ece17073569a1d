import Foundation

/// Images and labels: images read where they are stored (`SampleSource`), converted by the
/// `InputTransform` when a batch is gathered; labels checked and held in memory.
public struct Dataset: Sendable {
    public let images: SampleSource
    public let labels: [Int32]
    public let transform: InputTransform
    public var count: Int { images.count }
    /// Values per sample, e.g. 784 for a 28 x 28 image.
    public var sampleSize: Int { images.sampleSize }
    public var sampleShape: [Int] { images.sampleShape }
    /// What this process holds of the data whatever it reads (see `SampleSource.residentBytes`).
    public var residentBytes: Int { images.residentBytes + labels.count * MemoryLayout<Int32>.stride }

    /// Loads `files` and checks them against the model: matching counts, sample size, labels below `classes`.
    public init(_ files: DataFiles, transform: InputTransform, classes: Int, role: String) throws {
        self.transform = transform
        try Dataset.checkExist(files, role: role)
        switch files {
        case .cifar(let format, let paths):
            let expected = transform.inputShape.reduce(1, *)
            guard expected == CIFARFile.sampleShape.reduce(1, *) else {
                throw CohortError("\(paths[0]): \(format.name) images are [3, 32, 32] (3072 values) but model.input \(describe(transform.inputShape)) needs \(expected)")
            }
            // Flat ([3072]) is an MLP's view of them, [3, 1024] a sequence of the three colour planes;
            // any other shape would read them scrambled: [32, 96], a recurrent network's rows, would
            // take three rows of one colour plane for each row of the image.
            guard [[3072], [3, 1024], CIFARFile.sampleShape].contains(transform.inputShape) else {
                throw CohortError("\(paths[0]): \(format.name) images are [3, 32, 32] but model.input is \(describe(transform.inputShape)): use [3, 32, 32] (or a flat [3072], or [3, 1024] for a sequence of the colour planes)")
            }
            (images, labels) = try CIFARFile.read(paths, format: format, classes: classes)
        case .arrays(let pair):
            images = try SampleSource(images: StoredArray.open(path: pair.images), inputShape: transform.inputShape)
            labels = try Dataset.readLabels(pair.labels, count: images.count, imagesPath: pair.images, classes: classes, role: role)
        }
    }

    /// A checksum of the labels and of 16 samples spread over the file, as stored: a resumed run
    /// whose data give another one was trained on other data (same count, other content or order).
    public var fingerprint: UInt32 {
        let sampleBytes = images.sampleSize * images.element.size
        let picked = Set((0..<16).map { $0 * (count - 1) / 15 })
        var bytes = [UInt8]()
        bytes.reserveCapacity(labels.count * 4 + picked.count * sampleBytes)
        labels.withUnsafeBytes { bytes.append(contentsOf: $0) }
        for index in picked.sorted() {
            let start = images.bytes.base + images.offset + index * sampleBytes
            bytes.append(contentsOf: UnsafeRawBufferPointer(start: start, count: sampleBytes))
        }
        return CRC32C.checksum(bytes)
    }

    /// Throws for the first file that does not exist, naming its key and, for a relative path
    /// (one not found next to the config, `ConfigLoader.resolve`), where it was looked for.
    private static func checkExist(_ files: DataFiles, role: String) throws {
        let keyed: [(key: String, path: String)]
        switch files {
        case .cifar(let format, let paths): keyed = paths.enumerated().map { ("\(role).\(format.rawValue)[\($0.offset)]", $0.element) }
        case .arrays(let pair): keyed = [("\(role).images", pair.images), ("\(role).labels", pair.labels)]
        }
        var status = stat()
        for (key, path) in keyed where stat(path, &status) != 0 && errno == ENOENT {
            if let destination = try? FileManager.default.destinationOfSymbolicLink(atPath: path) {
                throw CohortError("\(key): \(path): a symbolic link to \(destination), which does not exist")
            }
            let place = path.hasPrefix("/") ? "" : " (a relative path is looked for next to the config, then in the current directory, \(FileManager.default.currentDirectoryPath))"
            throw CohortError("\(key): \(path): no such file\(place)")
        }
    }

    /// Scaling alone (no normalisation or augmentation).
    public init(_ files: DataFiles, scale: Double, inputShape: [Int], classes: Int, role: String) throws {
        try self.init(files, transform: InputTransform(scale: scale, inputShape: inputShape), classes: classes, role: role)
    }

    public init(_ pair: IDXPair, scale: Double, inputShape: [Int], classes: Int, role: String) throws {
        try self.init(.arrays(pair), scale: scale, inputShape: inputShape, classes: classes, role: role)
    }

    private static func readLabels(_ path: String, count: Int, imagesPath: String, classes: Int, role: String) throws -> [Int32] {
        let file = try StoredArray.open(path: path)
        guard file.shape.count == 1 else {
            throw CohortError("\(path): expected labels [count], got \(describe(file.shape)) (is this an images file?)")
        }
        guard file.element.isInteger else {
            throw CohortError("\(path): labels must be integers, got \(file.element.rawValue) values (save them as y.astype(np.int64))")
        }
        guard file.shape[0] == count else {
            throw CohortError("\(role): \(imagesPath) has \(count) images but \(path) has \(file.shape[0]) labels")
        }
        let values = file.integers()
        defer { file.bytes.releaseAll() }
        if let bad = values.firstIndex(where: { $0 < 0 || $0 >= classes }) {
            throw CohortError("\(path): label \(file.integerText(at: bad)) of sample \(bad) is out of range for a model with \(classes) outputs")
        }
        return values.map { Int32($0) }
    }

    /// Reads every sample as evaluation reads it, throwing at the first that is not finite (see
    /// `InputTransform.gather`): a test set's NaN found before training rather than at the end of
    /// its first epoch. Nothing to check for pixels stored as bytes and not normalised.
    public func checkEverySample(chunk: Int = 256) throws {
        guard images.element != .uint8 || transform.mean != nil else { return }
        let input = Buffer<Float>(count: chunk * sampleSize), out = Buffer<Int32>(count: chunk)
        for first in stride(from: 0, to: count, by: chunk) {
            try gather(Array(first..<min(first + chunk, count))[...], into: input.pointer, labels: out.pointer)
        }
    }

    /// Writes samples `indices` into `input` (`[N, sampleSize]`, transformed) and their labels into
    /// `labels`. With `epoch` (training batches), the samples are augmented as drawn for that epoch.
    /// Throws where a stored float is a NaN or an infinity.
    public func gather<T: Scalar>(_ indices: ArraySlice<Int>, into input: UnsafeMutablePointer<T>,
                                  labels out: UnsafeMutablePointer<Int32>, epoch: Int? = nil) throws {
        try transform.gather(images, indices, into: input, epoch: epoch)
        for (row, index) in indices.enumerated() { out[row] = labels[index] }
    }
}
