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
        let (smallest, largest) = storedRange(samples: samples)
        guard largest > 2, smallest >= 0 else { return nil }
        return "note: \(path): float images hold values up to \(largest), used as stored (data.scale applies to integer pixels only); if they are 0 to 255, save them divided by 255 or set data.normalize"
    }

    /// The least and greatest of the first `samples` samples' stored values.
    private func storedRange(samples: Int) -> (Double, Double) {
        let start = bytes.base + offset, values = min(samples, count) * sampleSize
        func value(_ i: Int) -> Double {
            switch element {
            case .float32: return Double(start.assumingMemoryBound(to: Float.self)[i])
            case .float64: return start.assumingMemoryBound(to: Double.self)[i]
            default: return Double(start.assumingMemoryBound(to: UInt8.self)[i])
            }
        }
        return (0..<values).reduce((Double.infinity, -Double.infinity)) { range, i in (min(range.0, value(i)), max(range.1, value(i))) }
    }

    /// A `note:` line when `data.normalize` is in other units than the values it normalises: the
    /// inputs (integer pixels from 0 to 255 times `scale`, float values as stored in the first
    /// `samples`) spread over less than 0.1 standard deviations in every channel (mean and std in
    /// 0-255 units for pixels scaled to [0, 1]: every input nearly one constant, trained at chance),
    /// or over more than 100 in every channel (the reverse), or over more than 10,000 in any.
    public func normalizationNote(_ transform: InputTransform, samples: Int = 64) -> String? {
        guard let mean = transform.mean, let std = transform.std else { return nil }
        let isInteger = element == .uint8
        let (low, high) = isInteger ? (0, 255 * Double(transform.scale)) : storedRange(samples: samples)
        guard high > low, high.isFinite, low.isFinite else { return nil }
        let spreads = std.map { (high - low) / Double($0) }
        let values = String(format: "[%g, %g]", low, high) + (isInteger ? " after data.scale" : ", used as stored")
        func list(_ values: [Float]) -> String { "[" + values.map { String(format: "%g", $0) }.joined(separator: ", ") + "]" }
        let given = "mean \(list(mean)), std \(list(std))"
        if spreads.max()! < 0.1 {
            return "note: data.normalize: \(path) has values in \(values), which \(given) map into a range \(String(format: "%.3g", spreads.max()!)) wide: every input nearly one constant; are mean and std in 0-255 units? give them in the units of the values (divided by 255)"
        }
        if spreads.min()! > 100 {
            return "note: data.normalize: \(path) has values in \(values), which \(given) spread over \(String(format: "%.3g", spreads.min()!)) or more; are mean and std for values in [0, 1]?\(isInteger ? " set data.scale: 0.00392156862745098 (1/255), or multiply them by 255" : " multiply them by the values' range")"
        }
        // One channel's std far too small: its inputs reach the thousands of the first layer's
        // weights, and the loss turns NaN with nothing pointing here.
        if let channel = spreads.indices.first(where: { spreads[$0] > 10_000 }) {
            return "note: data.normalize.std[\(channel)]: \(String(format: "%g", std[channel])) spreads \(path)'s values in \(values) over \(String(format: "%.3g", spreads[channel])) standard deviations; is it a typo?"
        }
        return nil
    }

    /// A `note:` line when `data.scale` was set but these samples are float, which it does not touch.
    public func unusedScaleNote(_ scale: Double) -> String? {
        guard element != .uint8, scale != DataConfig().scale else { return nil }
        return "note: data.scale \(scale) does not apply to \(path): its \(element.rawValue) images are used as stored (data.scale multiplies integer pixels; data.normalize applies to every kind)"
    }

    /// The `note:` lines these images call for under `transform` and the config's `data.scale`:
    /// channels last, float pixels of 0 to 255, normalisation in other units, a scale unused.
    public func notes(_ transform: InputTransform, scale: Double) -> [String] {
        [channelsLastNote(for: transform.inputShape), unscaledFloatNote(normalized: transform.mean != nil),
         unusedScaleNote(scale), normalizationNote(transform)].compactMap { $0 }
    }

    /// A `note:` line when the samples look channels last for `inputShape` (`looksChannelsLast`).
    public func channelsLastNote(for inputShape: [Int]) -> String? {
        guard looksChannelsLast(for: inputShape) else { return nil }
        return "note: \(path): images are \(describe(sampleShape)), channels last? model.input \(describe(inputShape)) reads them channels first; if so, save np.transpose(x, (0, 3, 1, 2))"
    }
}
