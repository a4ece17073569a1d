/// Samples stored one after the other, read where they lie: `count` samples of `sampleShape`
/// values each, of type uint8, float32 or float64, starting `offset` bytes into `bytes`.
public struct SampleSource: Sendable {
    public let bytes: DataBytes
    public let offset: Int
    public let element: ElementType
    public let count: Int
    public let sampleShape: [Int]
    public var sampleSize: Int { sampleShape.reduce(1, *) }
    public var path: String { bytes.path }
    /// What this process holds of it whatever it reads (a mapped file: at most `DataBytes.mappedBudget`).
    public var residentBytes: Int { bytes.isMapped ? min(bytes.count, DataBytes.mappedBudget) : bytes.count }

    init(bytes: DataBytes, offset: Int, element: ElementType, count: Int, sampleShape: [Int]) {
        self.bytes = bytes; self.offset = offset; self.element = element; self.count = count; self.sampleShape = sampleShape
    }

    /// The images of an IDX or `.npy` array `[N, ...]`, checked to be samples of `inputShape`.
    public init(images array: StoredArray, inputShape: [Int]) throws {
        let path = array.path
        guard [.uint8, .float32, .float64].contains(array.element) else {
            throw CohortError("\(path): images of dtype \(array.element.rawValue) are not supported (uint8, float32 or float64)")
        }
        guard array.shape.count >= 2 else {
            throw CohortError("\(path): expected images [count, rows, columns], got \(describe(array.shape)) (is this a labels file?)")
        }
        guard array.shape[0] > 0 else { throw CohortError("\(path): holds no samples") }
        let shape = Array(array.shape.dropFirst())
        let size = shape.reduce(1, *), expected = inputShape.reduce(1, *)
        guard size == expected else {
            throw CohortError("\(path): images are \(describe(shape)) (\(size) values) but model.input \(describe(inputShape)) needs \(expected)")
        }
        self.init(bytes: array.bytes, offset: array.offset, element: array.element, count: array.shape[0], sampleShape: shape)
    }

    /// Whether samples stored `[H, W, C]` are read for a model input `[C, H, W]` of several
    /// channels: channels last (Keras, PIL), which the interface accepts (the element counts
    /// match) but which read channels first is every image scrambled.
    public func looksChannelsLast(for inputShape: [Int]) -> Bool {
        inputShape.count == 3 && inputShape[0] > 1 && sampleShape != inputShape
            && sampleShape == [inputShape[1], inputShape[2], inputShape[0]]
    }

    /// A `note:` line when float samples hold values past 2, none below 0, and nothing normalises
    /// them: images stored as 0 to 255 in float, which `scale` does not touch (a loss in the
    /// thousands); not data already standardised, which has values below 0 (a note on every run
    /// of N(0, 1) data had said otherwise). Looks at the first `samples`.
    public func unscaledFloatNote(normalized: Bool, samples: Int = 64) -> String? {
        guard !normalized, element == .float32 || element == .float64 else { return nil }
        let start = bytes.base + offset, values = min(samples, count) * sampleSize
        func value(_ i: Int) -> Double {
            element == .float32 ? Double(start.assumingMemoryBound(to: Float.self)[i]) : start.assumingMemoryBound(to: Double.self)[i]
        }
        let (smallest, largest) = (0..<values).reduce((0.0, 0.0)) { range, i in (min(range.0, value(i)), max(range.1, value(i))) }
        guard largest > 2, smallest >= 0 else { return nil }
        return "note: \(path): float images hold values up to \(largest), used as stored (data.scale applies to integer pixels only); if they are 0 to 255, save them divided by 255 or set data.normalize"
    }

    /// A `note:` line when the samples look channels last for `inputShape` (`looksChannelsLast`).
    public func channelsLastNote(for inputShape: [Int]) -> String? {
        guard looksChannelsLast(for: inputShape) else { return nil }
        return "note: \(path): images are \(describe(sampleShape)), channels last? model.input \(describe(inputShape)) reads them channels first; if so, save np.transpose(x, (0, 3, 1, 2))"
    }
}
