/// A layer of a model's tree, with its names: where the config puts it and its state-dict prefix.
public struct PlacedLayer<Element: Scalar> {
    public let layer: any Layer<Element>
    /// `model.layers[3].residual.body[0]`, as messages and `--set` name it.
    public let place: LayerPlace
    /// `3.body.0`: the prefix of its tensors' state-dict names.
    public let stateName: String
    /// 0 for a top-level layer, 1 inside a residual block, ...
    public let depth: Int
}

extension Model {
    /// Every layer depth first, a block before its own layers (the `Sequential`s that hold a
    /// block's branches are not listed: their layers are, under the block).
    public var placedLayers: [PlacedLayer<Element>] {
        var result: [PlacedLayer<Element>] = []
        func visit(_ layer: any Layer<Element>, place: LayerPlace, stateName: String, depth: Int) {
            result.append(PlacedLayer(layer: layer, place: place, stateName: stateName, depth: depth))
            for (branch, sequence) in layer.sublayers {
                for (index, child) in sequence.sublayers {
                    visit(child, place: place.item("\(layer.kind).\(branch)", Int(index)!),
                          stateName: "\(stateName).\(branch).\(index)", depth: depth + 1)
                }
            }
        }
        for (index, layer) in layers.enumerated() {
            visit(layer, place: LayerPlace(integerLiteral: index), stateName: String(index), depth: 0)
        }
        return result
    }
}
