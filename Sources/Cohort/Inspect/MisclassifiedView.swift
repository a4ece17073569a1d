/// The test samples the model gets wrong, each with its true and predicted label and the
/// probability the model gave its prediction (inference mode).
enum MisclassifiedView {
    /// One test sample's outcome, from `InspectionContext.scan`.
    struct Outcome {
        var index: Int
        var label: Int
        var predicted: Int
        var probability: Double
    }

    static func section(_ context: InspectionContext, wrong: [Outcome], samples: Int, limit: Int) throws -> InspectPage.Section {
        var section = InspectPage.Section(
            title: "Misclassified test samples",
            text: "Every test sample whose predicted class (the largest logit) is not its label: true label, prediction and the probability the model gave it.")
        guard context.test != nil else {
            section.notes.append("Skipped: the config has no data.test.")
            return section
        }
        section.text += String(format: " %d of %d wrong (accuracy %.4f).", wrong.count, samples,
                               1 - Double(wrong.count) / Double(max(samples, 1)))
        if wrong.count > limit { section.notes.append("The first \(limit) of \(wrong.count) are shown.") }
        let factor = InspectionContext.factor(for: context.model.inputShape.last ?? 1, target: 56)
        for outcome in wrong.prefix(limit) {
            _ = try context.load([outcome.index])
            let caption = String(format: "#%d: true %d, predicted %d (p %.2f)", outcome.index, outcome.label,
                                 outcome.predicted, outcome.probability)
            section.figures.append(try context.figure(context.inputPicture(context.input(row: 0)).upscaled(by: factor),
                                                      name: "wrong-\(outcome.index).png", caption: caption))
        }
        return section
    }
}
