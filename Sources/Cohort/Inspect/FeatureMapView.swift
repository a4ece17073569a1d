/// The maps every convolution (or residual block) computes for a few test samples: where in the
/// image each channel responds.
///
/// A stage's maps are read after the element-wise layers that follow it (batch norm, ReLU), as
/// the next layer sees them: output `[C, H, W]`, one grey tile per channel, all of a sample's
/// tiles of a stage on one scale (its smallest value black, its largest white), so that a channel
/// that stays silent shows black.
enum FeatureMapView {
    static func section(_ context: InspectionContext, samples: Int) throws -> InspectPage.Section {
        var section = InspectPage.Section(
            title: "Feature maps",
            text: "For each of the first test samples, the maps of every convolution (after its batch norm and activation), one tile per channel, all tiles of a picture on one grey scale.")
        let stages = context.mapStages
        guard let test = context.test else {
            section.notes.append("Skipped: the config has no data.test.")
            return section
        }
        guard !stages.isEmpty else {
            section.notes.append(InspectionContext.noMapsNote)
            return section
        }
        let count = min(samples, test.count, context.chunk)
        let labels = try context.load(0..<count)
        try context.forward(batch: count)
        let inputFactor = InspectionContext.factor(for: context.model.inputShape.last ?? 1, target: 84)
        for n in 0..<count {
            section.figures.append(try context.figure(context.inputPicture(context.input(row: n)).upscaled(by: inputFactor),
                                                      name: "maps-\(n)-input.png", caption: "test sample \(n), label \(labels[n]): the input"))
            for stage in stages {
                let shape = context.model.layers[stage.through].outputShape
                let (channels, height, width) = (shape[0], shape[1], shape[2])
                let size = channels * height * width
                let values = Array(UnsafeBufferPointer(start: context.model.activation(stage.through + 1) + n * size, count: size))
                let range = Picture.range(of: values)
                let factor = InspectionContext.factor(for: width, target: 56)
                let tiles = (0..<channels).map { c in
                    Picture.greyscale(Array(values[(c * height * width)..<((c + 1) * height * width)]), width: width, height: height,
                                      range: range).upscaled(by: factor)
                }
                let caption = String(format: "test sample %d: %@, %d maps of %dx%d, black %.3g to white %.3g",
                                     n, context.describeStage(stage), channels, height, width, range.lowerBound, range.upperBound)
                section.figures.append(try context.figure(Picture.grid(tiles, columns: channels <= 32 ? 8 : 16),
                                                          name: "maps-\(n)-layer\(stage.layer).png", caption: caption))
            }
        }
        return section
    }
}
