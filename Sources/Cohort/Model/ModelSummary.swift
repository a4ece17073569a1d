/// The table a Keras or PyTorch user looks for before training: each layer with its output shape
/// and parameter count, the layers of a block indented under it, and the totals.
public enum ModelSummary {
    public static func lines<T: Scalar>(_ model: Model<T>) -> [String] {
        // Top-level indices padded alike, so that their kinds line up past layer 9.
        let indexWidth = String(max(model.layers.count - 1, 0)).count
        let rows = model.placedLayers.map { placed -> (String, String, String) in
            let name = placed.depth == 0 ? placed.stateName.padding(toLength: indexWidth, withPad: " ", startingAt: 0)
                : String(repeating: "  ", count: placed.depth) + placed.stateName.split(separator: ".").suffix(2).joined(separator: ".")
            let parameters = placed.layer.parameterShapes.reduce(0) { $0 + $1.count }
            return ("\(name)  \(placed.layer.kind)", describe(placed.layer.outputShape), grouped(parameters))
        }
        let header = ("layer", "output shape", "parameters")
        let widths = ([header] + rows).reduce((0, 0, 0)) { (max($0.0, $1.0.count), max($0.1, $1.1.count), max($0.2, $1.2.count)) }
        func format(_ row: (String, String, String)) -> String {
            row.0.padding(toLength: widths.0, withPad: " ", startingAt: 0) + "  "
                + row.1.padding(toLength: widths.1, withPad: " ", startingAt: 0) + "  "
                + String(repeating: " ", count: widths.2 - row.2.count) + row.2
        }
        let buffers = model.stateTensors().filter {
            if case .int64 = $0.storage { return false }
            return true
        }.reduce(0) { $0 + $1.count } - model.parameters.count
        let input = "input \(describe(model.inputShape))"
        return [input, format(header)] + rows.map(format)
            + ["total: \(grouped(model.parameters.count)) trainable parameters in \(model.layers.count) top-level layer\(model.layers.count == 1 ? "" : "s"); \(grouped(buffers)) batch-norm running statistics"]
    }

    /// 272474 -> "272,474".
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var result = ""
        for (i, digit) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { result.append(",") }
            result.append(digit)
        }
        return (value < 0 ? "-" : "") + result
    }
}
