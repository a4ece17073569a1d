/// Each layer's output and the loss's gradient with respect to it, over one training batch: mean,
/// standard deviation and, after a ReLU, the share of units that are 0 for every sample (dead).
///
/// Flags make the classic failures of deep networks visible on the user's own model: an output
/// whose standard deviation is below `vanishingActivationStd` (the signal has died out), a
/// gradient whose standard deviation is more than `explodingGradientRatio` times (or less than
/// `vanishingGradientRatio` times) that of the gradient at the model's output, the loss's own.
///
/// ### See Also
/// `GradientCheck`, `NonFiniteScan`.
public struct LayerStatistics: Sendable {
    public static let vanishingActivationStd = 1e-3
    public static let explodingGradientRatio = 1e3
    public static let vanishingGradientRatio = 1e-3

    public enum Flag: String, Sendable {
        case vanishing = "vanishing"
        case vanishingGradient = "vanishing gradient"
        case exploding = "exploding gradient"
    }

    public struct Row: Sendable {
        public var layer: Int
        public var kind: String
        public var outputShape: [Int]
        public var activationMean: Double
        public var activationStd: Double
        public var gradientMean: Double
        public var gradientStd: Double
        /// Units of a ReLU's output that are 0 for every sample of the batch; nil for other layers.
        public var deadFraction: Double?
        public var flags: [Flag]
    }

    /// The global step, counted from 0.
    public var step: Int
    public var batch: Int
    public var loss: Double
    public var rows: [Row]

    /// Measures the last forward and backward of `model` on `batch` samples; the model keeps every
    /// activation gradient (`keepsActivationGradients`).
    public init(model: Model<Float>, batch: Int, step: Int, loss: Double) {
        precondition(model.keepsActivationGradients, "LayerStatistics reads every layer's output gradient")
        self.step = step
        self.batch = batch
        self.loss = loss
        var rows: [Row] = []
        for (index, layer) in model.layers.enumerated() {
            let count = batch * layer.outputSize
            let output = LayerStatistics.moments(model.activation(index + 1), count: count)
            let gradient = LayerStatistics.moments(model.activationGradient(index + 1)!, count: count)
            var dead: Double?
            if let activation = layer as? Activation<Float>, activation.function == .relu {
                dead = LayerStatistics.deadFraction(model.activation(index + 1), batch: batch, size: layer.outputSize)
            }
            rows.append(Row(layer: index, kind: layer.kind, outputShape: layer.outputShape,
                            activationMean: output.mean, activationStd: output.std,
                            gradientMean: gradient.mean, gradientStd: gradient.std, deadFraction: dead, flags: []))
        }
        let reference = rows.last?.gradientStd ?? 0
        for i in rows.indices {
            if rows[i].activationStd < LayerStatistics.vanishingActivationStd { rows[i].flags.append(.vanishing) }
            guard reference > 0, reference.isFinite else { continue }
            let ratio = rows[i].gradientStd / reference
            if ratio > LayerStatistics.explodingGradientRatio { rows[i].flags.append(.exploding) }
            if ratio < LayerStatistics.vanishingGradientRatio { rows[i].flags.append(.vanishingGradient) }
        }
        self.rows = rows
    }

    /// Mean and (population) standard deviation, accumulated in Double.
    static func moments(_ values: UnsafePointer<Float>, count: Int) -> (mean: Double, std: Double) {
        guard count > 0 else { return (0, 0) }
        var sum = 0.0
        for i in 0..<count { sum += Double(values[i]) }
        let mean = sum / Double(count)
        var squares = 0.0
        for i in 0..<count {
            let d = Double(values[i]) - mean
            squares += d * d
        }
        return (mean, (squares / Double(count)).squareRoot())
    }

    /// The share of the `size` units of `[N, size]` that are exactly 0 in every row.
    static func deadFraction(_ values: UnsafePointer<Float>, batch: Int, size: Int) -> Double {
        guard size > 0 else { return 0 }
        var dead = 0
        for unit in 0..<size {
            var alive = false
            for n in 0..<batch where values[n * size + unit] != 0 {
                alive = true
                break
            }
            if !alive { dead += 1 }
        }
        return Double(dead) / Double(size)
    }
}
