import Foundation

/// `cohort inspect`: pictures of what a trained model has learned, as PNGs and one `index.html`
/// in an output directory.
///
/// The page has a section for each view: the first convolution's filters (`FilterView`), the
/// feature maps of a few test samples (`FeatureMapView`), each deep channel's favourite test
/// samples (`FavouriteSamples`), the misclassified test samples (`MisclassifiedView`) and the
/// hidden state of recurrent layers over time (`HiddenStateView`). A view that does not apply (no
/// convolution, no recurrent layer, no test data) leaves a note in its section instead.
public enum Inspector {
    public struct Options: Sendable {
        /// Test samples whose feature maps and hidden states are shown.
        public var samples = 4
        /// Favourite samples per channel.
        public var favourites = 9
        /// Misclassified samples shown at most.
        public var misclassified = 100
        public init() {}
    }

    /// Writes the pictures of `model` (weights loaded) and `index.html` into `output`; returns the page.
    ///
    /// All or nothing: everything is written into a staging directory inside `output` first, and
    /// only once all of it is there do the new files replace the earlier inspection's (renames,
    /// which a full disk cannot stop, the page last); a failure leaves `output` as it was.
    @discardableResult
    public static func run(model: Model<Float>, test: Dataset?, output: URL, title: String, summary: String,
                           options: Options = Options()) throws -> InspectPage {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: output.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw CohortError("\(output.path): cannot write the pictures there (a file, not a directory)")
        }
        try makeDirectories(output)
        let staging = output.appendingPathComponent(".cohort-inspect-\(getpid())")
        guard mkdir(staging.path, 0o777) == 0 || errno == EEXIST else {
            throw CohortError("\(output.path): cannot write the pictures there (\(String(cString: strerror(errno))))")
        }
        defer { try? FileManager.default.removeItem(at: staging) }
        let context = InspectionContext(model: model, test: test, output: staging, chunk: try model.inferenceBatch(upTo: min(256, max(test?.count ?? 1, 1)), keepingActivations: true))
        let page = try write(context, title: title, summary: summary, options: options)
        try removeEarlierPictures(in: output)
        for name in context.written + ["index.html"] {
            try replace(output.appendingPathComponent(name), with: staging.appendingPathComponent(name))
        }
        return page
    }

    /// Makes `directory` and those above it that are missing, as `mkdir -p`; an error names the
    /// first that cannot be made and the system's reason.
    static func makeDirectories(_ directory: URL) throws {
        var path = ""
        for component in directory.standardizedFileURL.pathComponents {
            path = component == "/" ? "/" : (path == "/" ? "/" : path + "/") + component
            guard mkdir(path, 0o777) != 0 else { continue }
            let failure = errno
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
                if isDirectory.boolValue { continue }
                throw CohortError("\(path): cannot make the output directory \(directory.path) there (a file, not a directory)")
            }
            throw CohortError("\(path): cannot make the output directory \(directory.path) (\(String(cString: strerror(failure))))")
        }
    }

    /// Writes every view's pictures and the page into `context.output`.
    private static func write(_ context: InspectionContext, title: String, summary: String, options: Options) throws -> InspectPage {
        let test = context.test
        let deepest = context.mapStages.last
        let scan = try scanTestSet(context, stage: deepest)
        var summary = summary
        if let test {
            summary += String(format: " Test set: %d samples, accuracy %.4f.", test.count,
                              1 - Double(scan.wrong.count) / Double(test.count))
        }
        let sections = [
            try FilterView.section(context),
            try FeatureMapView.section(context, samples: options.samples),
            try FavouriteSamples.section(context, stage: deepest, scores: scan.scores, positions: scan.positions, top: options.favourites),
            try MisclassifiedView.section(context, wrong: scan.wrong, samples: test?.count ?? 0, limit: options.misclassified),
            try HiddenStateView.section(context, samples: options.samples),
        ]
        let page = InspectPage(title: title, summary: summary, sections: sections)
        let url = context.output.appendingPathComponent("index.html")
        do {
            try Data(page.html().utf8).write(to: url)
        } catch {
            throw CohortError("\(url.path): cannot write the page (\(reason(error)))")
        }
        return page
    }

    /// Moves `staged` to `destination`, replacing any file there in one step (rename(2)).
    private static func replace(_ destination: URL, with staged: URL) throws {
        guard rename(staged.path, destination.path) == 0 else {
            throw CohortError("\(destination.path): cannot replace the earlier file (\(String(cString: strerror(errno))))")
        }
    }

    /// The pictures an earlier inspection wrote there (its misclassified samples may differ), and
    /// nothing else: only files named as this names them (`maps-3-layer4.png`, not `maps-holiday.png`).
    static func removeEarlierPictures(in output: URL) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: output.path)) ?? []
        for name in names where name.wholeMatch(of: pictureName) != nil {
            do {
                try FileManager.default.removeItem(at: output.appendingPathComponent(name))
            } catch {
                throw CohortError("\(output.appendingPathComponent(name).path): cannot replace the earlier picture (\(reason(error)))")
            }
        }
    }

    /// The names of the pictures an inspection writes (`FilterView`, `FeatureMapView`,
    /// `FavouriteSamples`, `MisclassifiedView`, `HiddenStateView`).
    nonisolated(unsafe) static let pictureName = #/filters\.png|maps-\d+-(input|layer\d+)\.png|favourites-layer\d+\.png|wrong-\d+\.png|hidden-\d+-layer\d+\.png/#

    /// One inference pass over the test set: the samples predicted wrong, and each sample's
    /// largest value of each channel of `stage`'s maps and where in the map it is (`[samples,
    /// channels]`, positions as y * W + x; empty without a stage).
    static func scanTestSet(_ context: InspectionContext, stage: (layer: Int, through: Int)?) throws
        -> (wrong: [MisclassifiedView.Outcome], scores: [Float], positions: [Int32]) {
        guard let test = context.test else { return ([], [], []) }
        let model = context.model, classes = model.classes
        var wrong: [MisclassifiedView.Outcome] = []
        let shape = stage.map { model.layers[$0.through].outputShape } ?? []
        let channels = shape.first ?? 0, spatial = shape.dropFirst().reduce(1, *)
        var scores = [Float](repeating: 0, count: stage == nil ? 0 : test.count * channels)
        var positions = [Int32](repeating: 0, count: scores.count)
        var start = 0
        while start < test.count {
            let end = min(start + context.chunk, test.count)
            let labels = try context.load(start..<end)
            try context.forward(batch: end - start)
            for n in 0..<(end - start) {
                let logits = model.output + n * classes
                guard (0..<classes).allSatisfy({ logits[$0].isFinite }) else {
                    throw Predictor.NonFiniteOutputs(sample: start + n)
                }
                let predicted = argmax(logits, count: classes)
                if predicted != labels[n] {
                    let probabilities = Predictor.softmax(logits, count: classes)
                    wrong.append(.init(index: start + n, label: labels[n], predicted: predicted, probability: probabilities[predicted]))
                }
            }
            if let stage {
                let maps = model.activation(stage.through + 1)
                for n in 0..<(end - start) {
                    for c in 0..<channels {
                        let map = maps + (n * channels + c) * spatial
                        var largest = -Float.infinity, position = 0
                        for s in 0..<spatial where map[s] > largest { (largest, position) = (map[s], s) }
                        scores[(start + n) * channels + c] = largest
                        positions[(start + n) * channels + c] = Int32(position)
                    }
                }
            }
            start = end
        }
        return (wrong, scores, positions)
    }
}
