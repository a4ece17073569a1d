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
    /// this does not know (only conv2d, pooling and layers that keep the shape are followed).
    init?(_ model: Model<Float>, through: Int) {
        var field = ReceptiveField(size: 1, jump: 1, start: 0)
        for layer in model.layers.prefix(through + 1) {
            let geometry: WindowGeometry
            if let conv = layer as? Conv2D<Float> {
                geometry = conv.geometry
            } else if let pool = layer as? Pool2D<Float> {
                geometry = pool.geometry
            } else if layer.outputShape == layer.inputShape {
                continue
            } else {
                return nil
            }
            field.start += (Double(geometry.kernel - 1) / 2 - Double(geometry.padding)) * Double(field.jump)
            field.size += (geometry.kernel - 1) * field.jump
            field.jump *= geometry.stride
        }
        self = field
    }

    private init(size: Int, jump: Int, start: Double) { self.size = size; self.jump = jump; self.start = start }

    /// The input pixels [first, last] that output position `index` sees along one axis, clipped to `extent`.
    func span(_ index: Int, extent: Int) -> ClosedRange<Int> {
        let centre = start + Double(index * jump)
        let first = Int((centre - Double(size - 1) / 2).rounded(.down))
        return max(0, first)...min(extent - 1, first + size - 1)
    }
}
