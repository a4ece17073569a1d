/// Every filter of the model's first convolution as a grid of small images: what the first layer
/// looks for in its input (edges and strokes, once trained; noise before).
///
/// Weight `[out, in, K, K]`. With 3 input channels each filter is one colour tile; otherwise each
/// filter is a row of `in` grey tiles, one per input channel. Each filter is scaled to its own
/// range (its smallest weight black, its largest white), so weak filters show their shape too;
/// tiles are 3 pixels of blue apart, so that a white border of a filter stays visible.
enum FilterView {
    static func section(_ context: InspectionContext) throws -> InspectPage.Section {
        var section = InspectPage.Section(
            title: "Filters of the first convolution",
            text: "Each filter's weights as a small image, scaled to the filter's own range: its most negative weight black, its most positive white.")
        let layers = context.model.layers
        guard let index = layers.firstIndex(where: { $0 is Conv2D<Float> }), let conv = layers[index] as? Conv2D<Float>,
              let weight = context.model.parameterValues(layer: index, name: "weight") else {
            section.notes.append("Skipped: the model has no conv2d layer at the top level.")
            return section
        }
        let k = conv.geometry.kernel, inputs = conv.geometry.channels, outputs = conv.outChannels
        let filterSize = inputs * k * k
        let factor = InspectionContext.factor(for: k, target: 40)
        var tiles: [Picture] = []
        for o in 0..<outputs {
            let filter = Array(weight[(o * filterSize)..<((o + 1) * filterSize)])
            let range = Picture.range(of: filter)
            if inputs == 3 {
                tiles.append(Picture.colour(filter, width: k, height: k, range: range).upscaled(by: factor))
            } else {
                for c in 0..<inputs {
                    let plane = Array(filter[(c * k * k)..<((c + 1) * k * k)])
                    tiles.append(Picture.greyscale(plane, width: k, height: k, range: range).rgb.upscaled(by: factor))
                }
            }
        }
        let columns = inputs == 3 ? 8 : (inputs == 1 ? 8 : inputs)
        let layout = inputs == 3 || inputs == 1 ? "in rows of \(columns)" : "one row per filter, one column per input channel"
        let caption = "model.layers[\(index)] conv2d: \(outputs) filters of \(inputs) x \(k) x \(k), \(layout), shown \(factor)x"
        section.figures.append(try context.figure(Picture.grid(tiles, columns: columns, gap: 3, background: [70, 110, 170]), name: "filters.png", caption: caption))
        return section
    }
}

extension Model where Element == Float {
    /// The values of state-dict tensor `"<layer>.<name>"`, or nil when the model has none.
    func parameterValues(layer: Int, name: String) -> [Float]? {
        guard let tensor = stateTensors().first(where: { $0.name == "\(layer).\(name)" }),
              case .scalars(let raw) = tensor.storage else { return nil }
        return Array(UnsafeBufferPointer(start: raw.assumingMemoryBound(to: Float.self), count: tensor.count))
    }

    /// Where state-dict tensor `"<layer>.<name>"` starts in the flat parameter buffer.
    func parameterPointer(layer: Int, name: String) -> UnsafeMutablePointer<Float>? {
        guard let tensor = stateTensors().first(where: { $0.name == "\(layer).\(name)" }),
              case .scalars(let raw) = tensor.storage else { return nil }
        return raw.assumingMemoryBound(to: Float.self)
    }
}
