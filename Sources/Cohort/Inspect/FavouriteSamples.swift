/// For each channel of the last convolution (or residual block), the test samples that activate it
/// most: what the unit has learned to detect (Zeiler and Fergus 2014, "Visualizing and
/// Understanding Convolutional Networks", who show the top 9 of a unit).
///
/// A sample's score for channel c is the largest value of map c `[H, W]` (read after the stage's
/// batch norm and activation, in inference mode) anywhere in the image.
enum FavouriteSamples {
    /// `scores`: `[samples, channels]`, filled by `InspectionContext.scan`.
    static func section(_ context: InspectionContext, stage: (layer: Int, through: Int)?, scores: [Float],
                        top: Int) throws -> InspectPage.Section {
        var section = InspectPage.Section(
            title: "Favourite samples of the last convolution",
            text: "Row c: the \(top) test samples whose map of channel c reaches the highest value, most activating first (Zeiler and Fergus 2014). Samples that share a shape in a row show what the channel detects.")
        guard let test = context.test else {
            section.notes.append("Skipped: the config has no data.test.")
            return section
        }
        guard let stage else {
            section.notes.append("Skipped: the model has no conv2d or residual layer at the top level.")
            return section
        }
        let channels = context.model.layers[stage.through].outputShape[0]
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
                    _ = context.load([index])
                    cache[index] = context.inputPicture(context.input(row: 0))
                }
                tiles.append(cache[index]!)
            }
        }
        let caption = "\(context.describeStage(stage)): \(channels) channels, one row each, the \(top) most activating of \(test.count) test samples"
        section.figures.append(try context.figure(Picture.grid(tiles, columns: top),
                                                  name: "favourites-layer\(stage.layer).png", caption: caption))
        return section
    }
}
