/// Where a training step first produced a value that is NaN or infinite, in the order the step
/// computes them: the layers' outputs in forward order, then the gradients in backward order (each
/// layer's parameter gradients, then the gradient it passes down), then the parameters the
/// optimizer updated. Once one value is not finite everything computed from it follows, so the
/// first place is the one to look at.
///
/// ### See Also
/// `LayerStatistics`, `GradientCheck`.
public enum NonFiniteScan {
    public struct Finding: Sendable, Equatable, CustomStringConvertible {
        public enum Phase: String, Sendable { case forward, loss, backward, update }
        /// The global step, counted from 0.
        public var step: Int
        public var phase: Phase
        /// The layer at fault; nil for the loss.
        public var layer: Int?
        public var kind: String
        /// What holds the value: `output`, `input gradient`, `weight gradient`, `weight`, ...
        public var tensor: String
        public var nanCount: Int
        public var infiniteCount: Int
        public var count: Int

        public var description: String {
            let what = nanCount > 0 ? (infiniteCount > 0 ? "NaN and infinite" : "NaN") : "infinite"
            let place = layer.map { "model.layers[\($0)] (\(kind))" } ?? "the loss"
            let values = "\(nanCount + infiniteCount) of \(count) value\(count == 1 ? "" : "s")"
            switch phase {
            case .forward: return "step \(step + 1), forward: \(place) output is \(what) (\(values))"
            case .loss: return "step \(step + 1): \(place) is \(what) although every layer's output is finite (logits too large?)"
            case .backward: return "step \(step + 1), backward: \(place) \(tensor) is \(what) (\(values))"
            case .update: return "step \(step + 1), update: \(place) \(tensor) became \(what) (\(values)); optimizer.lr too high?"
            }
        }
    }

    /// The first non-finite value of the last step of `model` on `batch` samples, or nil.
    /// `updated`: the optimizer has applied the step, so the parameters are checked too. The model
    /// keeps every activation gradient (`keepsActivationGradients`).
    public static func scan(model: Model<Float>, batch: Int, step: Int, loss: Double, updated: Bool) -> Finding? {
        precondition(model.keepsActivationGradients, "NonFiniteScan reads every layer's input gradient")
        for (index, layer) in model.layers.enumerated() {
            if let finding = check(model.activation(index + 1), count: batch * layer.outputSize, step: step, phase: .forward,
                                   layer: index, kind: layer.kind, tensor: "output") {
                return finding
            }
        }
        if !loss.isFinite {
            return Finding(step: step, phase: .loss, layer: nil, kind: "cross_entropy", tensor: "loss",
                           nanCount: loss.isNaN ? 1 : 0, infiniteCount: loss.isNaN ? 0 : 1, count: 1)
        }
        let parameters = parameterTensors(model)
        for index in model.layers.indices.reversed() {
            let layer = model.layers[index]
            for tensor in parameters[index] {
                if let finding = check(model.gradients.pointer + tensor.offset, count: tensor.count, step: step, phase: .backward,
                                       layer: index, kind: layer.kind, tensor: "\(tensor.name) gradient") {
                    return finding
                }
            }
            guard index > 0, let inputGradient = model.activationGradient(index) else { continue }
            if let finding = check(inputGradient, count: batch * layer.inputSize, step: step, phase: .backward,
                                   layer: index, kind: layer.kind, tensor: "input gradient") {
                return finding
            }
        }
        guard updated else { return nil }
        for (index, layer) in model.layers.enumerated() {
            for tensor in parameters[index] {
                if let finding = check(model.parameters.pointer + tensor.offset, count: tensor.count, step: step, phase: .update,
                                       layer: index, kind: layer.kind, tensor: tensor.name) {
                    return finding
                }
            }
        }
        return nil
    }

    /// Each layer's parameter tensors: name, offset in the flat buffers, count.
    static func parameterTensors<T>(_ model: Model<T>) -> [[(name: String, offset: Int, count: Int)]] {
        var offset = 0
        return model.layers.map { layer in
            layer.parameterShapes.map { shape in
                defer { offset += shape.count }
                return (shape.name, offset, shape.count)
            }
        }
    }

    private static func check(_ values: UnsafePointer<Float>, count: Int, step: Int, phase: Finding.Phase,
                              layer: Int, kind: String, tensor: String) -> Finding? {
        var nan = 0, infinite = 0
        for i in 0..<count where !values[i].isFinite {
            if values[i].isNaN { nan += 1 } else { infinite += 1 }
        }
        guard nan + infinite > 0 else { return nil }
        return Finding(step: step, phase: phase, layer: layer, kind: kind, tensor: tensor,
                       nanCount: nan, infiniteCount: infinite, count: count)
    }
}
