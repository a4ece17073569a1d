/// For each channel of the last convolution (or residual block), the test samples that activate it
/// most: what the unit has learned to detect (Zeiler and Fergus 2014, "Visualizing and
/// Understanding Convolutional Networks", who show the top 9 of a unit).
///
/// A sample's score for channel c is the largest value of map c `[H, W]` (read after the stage's
/// batch norm and activation, in inference mode) anywhere in the image; a red box marks the patch
/// of the input that the position of that value sees (its receptive field), where it is known.
enum FavouriteSamples {
    /// `scores` and `positions`: `[samples, channels]`, from `Inspector.scanTestSet`.
    static func section(_ context: InspectionContext, stage: (layer: Int, through: Int)?, scores: [Float],
                        positions: [Int32], top: Int) throws -> InspectPage.Section {
        var section = InspectPage.Section(
            title: "Favourite samples of the last convolution",
            text: "Row c: the \(top) test samples whose map of channel c reaches the highest value, most activating first (Zeiler and Fergus 2014); the red box is the patch of the input that the most active position sees. Patches that share a shape in a row show what the channel detects.")
        guard let test = context.test else {
            section.notes.append("Skipped: the config has no data.test.")
            return section
        }
        guard let stage else {
            section.notes.append(InspectionContext.noMapsNote)
            return section
        }
        let shape = context.model.layers[stage.through].outputShape
        let channels = shape[0], mapWidth = shape[2]
        let field = ReceptiveField(context.model, through: stage.through)
        let top = min(top, test.count)
        var tiles: [Picture] = []
        var cache: [Int: Picture] = [:]
        for c in 0..<channels {
            let ranked = (0..<test.count).sorted { a, b in
                let (x, y) = (scores[a * channels + c], scores[b * channels + c])
                return x != y ? x > y : a < b
            }
            for index in ranked.prefix(top) {
                if cache[index] == nil {
                    _ = try context.load([index])
                    cache[index] = context.inputPicture(context.input(row: 0)).rgb
                }
                var tile = cache[index]!
                if let field, context.model.inputShape.count == 3 {
                    let position = Int(positions[index * channels + c])
                    tile.outline(rows: field.span(position / mapWidth, extent: tile.height),
                                 columns: field.span(position % mapWidth, extent: tile.width))
                }
                tiles.append(tile)
            }
        }
        if field == nil { section.notes.append("No boxes: the receptive field through \(context.describeStage(stage)) is not known.") }
        let caption = "\(context.describeStage(stage)): \(channels) channels, one row each, the \(top) most activating of \(test.count) test samples"
        section.figures.append(try context.figure(Picture.grid(tiles, columns: top),
                                                  name: "favourites-layer\(stage.layer).png", caption: caption))
        return section
    }
}
