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

    /// A `note:` line when the samples look channels last for `inputShape` (`looksChannelsLast`).
    public func channelsLastNote(for inputShape: [Int]) -> String? {
        guard looksChannelsLast(for: inputShape) else { return nil }
        return "note: \(path): images are \(describe(sampleShape)), channels last? model.input \(describe(inputShape)) reads them channels first; if so, save np.transpose(x, (0, 3, 1, 2))"
    }
}
