/// The patch of the input that one position of a layer's maps sees: its size, the distance in
/// input pixels between neighbouring positions, and the centre of the first position, by the
/// usual recurrence over the convolutions and poolings before it (size += (K-1) x jump,
/// jump *= stride, start += ((K-1)/2 - padding) x jump). Square kernels, so one figure serves
/// both axes.
struct ReceptiveField: Equatable {
    var size: Int
    var jump: Int
    var start: Double

    /// That of layer `through`'s output, or nil when a layer before it changes the shape in a way
    /// this does not know (only conv2d, pooling, residual blocks of those and layers that work
    /// value by value are followed).
    init?(_ model: Model<Float>, through: Int) {
        guard let field = ReceptiveField(size: 1, jump: 1, start: 0).through(model.layers.prefix(through + 1)) else { return nil }
        self = field
    }

    private init(size: Int, jump: Int, start: Double) { self.size = size; self.jump = jump; self.start = start }

    /// This field carried through `layers` in order. A residual block's output sees what either
    /// branch sees (an identity shortcut: its input's field); a layer that keeps its input's
    /// shape is taken to work value by value.
    private func through(_ layers: some Sequence<any Layer<Float>>) -> ReceptiveField? {
        var field = self
        for layer in layers {
            if let conv = layer as? Conv2D<Float> {
                field = field.through(conv.geometry)
            } else if let pool = layer as? Pool2D<Float> {
                field = field.through(pool.geometry)
            } else if let block = layer as? Residual<Float> {
                guard let body = field.through(block.body.layers),
                      let other = block.shortcut.map({ field.through($0.layers) }) ?? field,
                      let union = body.union(other) else { return nil }
                field = union
            } else if layer.outputShape != layer.inputShape {
                return nil
            }
        }
        return field
    }

    private func through(_ geometry: WindowGeometry) -> ReceptiveField {
        ReceptiveField(size: size + (geometry.kernel - 1) * jump, jump: jump * geometry.stride,
                       start: start + (Double(geometry.kernel - 1) / 2 - Double(geometry.padding)) * Double(jump))
    }

    /// The patch both fields' positions see, for two maps on the same grid (nil otherwise).
    private func union(_ other: ReceptiveField) -> ReceptiveField? {
        guard jump == other.jump else { return nil }
        let first = min(start - Double(size - 1) / 2, other.start - Double(other.size - 1) / 2)
        let last = max(start + Double(size - 1) / 2, other.start + Double(other.size - 1) / 2)
        return ReceptiveField(size: Int((last - first).rounded()) + 1, jump: jump, start: (first + last) / 2)
    }

    /// The input pixels [first, last] that output position `index` sees along one axis, clipped to `extent`.
    func span(_ index: Int, extent: Int) -> ClosedRange<Int> {
        let centre = start + Double(index * jump)
        let first = Int((centre - Double(size - 1) / 2).rounded(.down))
        return max(0, first)...min(extent - 1, first + size - 1)
    }
}
