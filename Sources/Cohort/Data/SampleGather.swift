/// A value as stored in a data file, as a Float before scaling.
protocol StoredValue { var floatValue: Float { get } }
extension UInt8: StoredValue { @inline(__always) var floatValue: Float { Float(self) } }
extension Float: StoredValue { @inline(__always) var floatValue: Float { self } }
extension Double: StoredValue { @inline(__always) var floatValue: Float { Float(self) } }

extension InputTransform {
    /// Writes samples `indices` of `source` into `input` (`[N, C, H, W]` row-major, N =
    /// indices.count), in one pass: each value is read at its cropped and flipped position (or is
    /// the padding's 0), scaled, normalised and written. Augmented when `epoch` is given and the
    /// transform has an augmentation (training batches); otherwise every sample as stored. Throws,
    /// naming the file and the sample, where a stored float is a NaN or an infinity.
    public func gather<T: Scalar>(_ source: SampleSource, _ indices: ArraySlice<Int>, into input: UnsafeMutablePointer<T>,
                                  epoch: Int?) throws {
        let start = source.bytes.base + source.offset
        switch source.element {
        case .uint8: gather(start.assumingMemoryBound(to: UInt8.self), scale: scale, indices, into: input, epoch: epoch)
        case .float32: gather(start.assumingMemoryBound(to: Float.self), scale: 1, indices, into: input, epoch: epoch)
        case .float64: gather(start.assumingMemoryBound(to: Double.self), scale: 1, indices, into: input, epoch: epoch)
        default: preconditionFailure("SampleSource holds only uint8, float32 or float64")
        }
        source.bytes.didRead(samples: indices.count, of: source.sampleSize * source.element.size)
        // Scaled pixels are finite; normalised ones may overflow.
        guard source.element != .uint8 || mean != nil else { return }
        if let row = firstNonFiniteRow(input, rows: indices.count, size: source.sampleSize) {
            let sample = indices[indices.startIndex + row]
            throw CohortError("\(source.path): sample \(sample) \(nonFiniteCause(source, sample: sample))")
        }
    }

    /// Why a sample's values are not finite as the model takes them: a stored NaN or infinity, a
    /// stored float64 past float32's range, or else the normalisation (a std near 0, a mean past
    /// float32's range: uint8 pixels too).
    private func nonFiniteCause(_ source: SampleSource, sample: Int) -> String {
        let start = source.bytes.base + source.offset + sample * source.sampleSize * source.element.size
        let values: [Double] = (0..<source.sampleSize).map { i in
            switch source.element {
            case .float32: Double(start.assumingMemoryBound(to: Float.self)[i])
            case .float64: start.assumingMemoryBound(to: Double.self)[i]
            default: Double(start.assumingMemoryBound(to: UInt8.self)[i])
            }
        }
        if !values.allSatisfy(\.isFinite) { return "holds a NaN or an infinity" }
        if let large = values.first(where: { abs($0) > Double(Float.greatestFiniteMagnitude) }) {
            return "holds \(large), beyond float32's range"
        }
        return "becomes infinite after data.normalize (its mean and std take a stored value past float32's range)"
    }

    /// The first of `rows` rows of `size` values holding a NaN or an infinity: one pass over all,
    /// then row by row if needed.
    private func firstNonFiniteRow<T: Scalar>(_ values: UnsafePointer<T>, rows: Int, size: Int) -> Int? {
        guard !allFiniteExactly(values, count: rows * size) else { return nil }
        return (0..<rows).first { !allFiniteExactly(values + $0 * size, count: size) }
    }

    private func gather<Value: StoredValue, T: Scalar>(_ source: UnsafePointer<Value>, scale: Float, _ indices: ArraySlice<Int>,
                                                       into input: UnsafeMutablePointer<T>, epoch: Int?) {
        let plane = height * width, size = channels * plane
        let draws = epoch.flatMap { epoch in augmentation.map { ($0, epoch) } }
        for (row, index) in indices.enumerated() {
            let src = source + index * size, dst = input + row * size
            let placement = draws.map { augmentation, epoch in (augmentation.padding, augmentation.draw(epoch: epoch, index: index)) }
            for c in 0..<channels {
                let mean = self.mean?[c] ?? 0, std = self.std?[c] ?? 1, normalizes = self.mean != nil
                @inline(__always) func convert(_ value: Value) -> T {
                    let x = value.floatValue * scale
                    return T(normalizes ? (x - mean) / std : x)
                }
                let from = src + c * plane, to = dst + c * plane
                guard let (padding, (top, left, flip)) = placement else {
                    for i in 0..<plane { to[i] = convert(from[i]) }
                    continue
                }
                let padded = T(normalizes ? (0 - mean) / std : 0)
                let down = top - padding, shift = left - padding
                // Output column x reads column x + shift, or width - 1 - x + shift when mirrored.
                let first = min(width, max(0, flip ? shift : -shift))
                let end = max(first, min(width, flip ? width + shift : width - shift))
                for y in 0..<height {
                    let out = to + y * width, sourceRow = y + down
                    guard (0..<height).contains(sourceRow) else {
                        for x in 0..<width { out[x] = padded }
                        continue
                    }
                    let line = from + sourceRow * width
                    for x in 0..<first { out[x] = padded }
                    if flip {
                        for x in first..<end { out[x] = convert(line[width - 1 - x + shift]) }
                    } else {
                        for x in first..<end { out[x] = convert(line[x + shift]) }
                    }
                    for x in end..<width { out[x] = padded }
                }
            }
        }
    }
}
