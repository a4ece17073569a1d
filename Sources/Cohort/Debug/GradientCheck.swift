/// A numeric check of a model's backward pass in Double: backpropagation against central differences.
///
/// Two comparisons for every layer:
/// - **local**: the layer alone, on the input it saw, with a fixed random upstream gradient `g`:
///   its `dx` and parameter gradients against central differences of `f = sum(g * layer(x))`. A
///   wrong backward shows here in the layer that has it, and only there, so it names the culprit
///   even when the layer has no parameters.
/// - **end to end**: each parameter tensor's gradient of the mean cross-entropy over the batch
///   against central differences of that loss, through the model as it trains (dropout with the
///   step's mask, batch norm in training mode). A gradient that is wrong downstream of a layer makes
///   this fail for every layer below it.
///
/// Each tensor is checked on a random sample of its coordinates; end to end, a model of many
/// tensors shares a fixed number of coordinates among them (`Options.endToEndFullTensors`), since
/// each costs two forward passes from its layer. Coordinates at a kink (a ReLU's
/// input at 0, tied maxima of a max-pool window), where the one-sided differences disagree, are
/// skipped: the function has no derivative there. A tensor's error is
/// `max |analytic - numeric| / max(|analytic|, |numeric|)` over its checked coordinates; when both
/// are below what the differences can resolve in Double (a vanishing gradient, in the end-to-end
/// check) the tensor is reported as unresolved rather than failed.
///
/// ### See Also
/// `LayerStatistics` and `NonFiniteScan`, the debug mode's two other reports.
public enum GradientCheck {
    public struct Options: Sendable {
        /// Coordinates compared per tensor.
        public var coordinates = 30
        /// End to end, a model of up to this many parameter tensors has `coordinates` compared in
        /// each; one of more shares `coordinates * endToEndFullTensors` among them (at least one a
        /// tensor). Each costs two forward passes from its tensor's layer, so with a count per
        /// tensor the check grew with the square of the depth (ResNet-56: 50 of its 52 s).
        public var endToEndFullTensors = 20
        /// Largest error of a correct local check (Double, smooth at the sampled points). A layer
        /// of layers (a residual block, a nested sequence) is held to `endToEndTolerance` instead:
        /// a perturbation of a weight inside it moves many units through its nonlinearities, as end
        /// to end (`configs/mnist-resnet20.yaml`: a block's second batch norm's weight at 1.6e-4).
        public var localTolerance = 1e-4
        /// Largest error of a correct end-to-end check, looser: a perturbation of a weight moves
        /// thousands of units, and one of them may cross a kink.
        public var endToEndTolerance = 1e-3
        /// Seed of the coordinate sample and of the local checks' upstream gradients.
        public var seed: UInt64 = 0
        public init() {}
    }

    /// One tensor of one layer: a parameter (`weight`, `bias`, ...) or `input` (the layer's `dx`).
    public struct Row: Sendable, Equatable {
        public var layer: Int
        public var kind: String
        public var tensor: String
        /// The layer's own backward against its forward; nil when nothing could be resolved.
        public var localError: Double?
        /// The loss's gradient through the whole model; nil for `input` or when unresolved.
        public var endToEndError: Double?
        public var localPassed: Bool
        public var endToEndPassed: Bool
        /// Coordinates compared locally, and those skipped there as kinks.
        public var checked: Int
        public var skipped: Int
        public var passed: Bool { localPassed && endToEndPassed }
    }

    /// What the check found, tensor by tensor in layer order.
    public struct Report: Sendable {
        public var rows: [Row]
        public var samples: Int
        public var loss: Double
        /// The fewest and most coordinates allotted to a tensor end to end, where a tensor got fewer
        /// than it would have alone (shared among many tensors); nil where none did.
        public var endToEndCoordinates: ClosedRange<Int>?
        public var passed: Bool { rows.allSatisfy(\.passed) }

        /// The layer to blame: the first whose own backward is wrong; failing that (every layer
        /// agrees with itself but the chain does not), the deepest whose end-to-end gradient is wrong.
        public var culprit: Row? {
            rows.first { !$0.localPassed } ?? rows.last { !$0.endToEndPassed }
        }
    }

    /// Checks `model` on the `batch` samples already in `model.input`, labelled `labels`, in the step `context`.
    ///
    /// `progress(done, total)` is called as each of its `total` parts is done: every parameter
    /// tensor end to end, then every layer alone.
    public static func run(model: Model<Double>, batch: Int, labels: [Int32], context: StepContext,
                           options: Options = Options(), progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> Report {
        precondition(labels.count == batch && batch <= model.maxBatch)
        let tensorSizes = model.layers.flatMap { $0.parameterShapes.map(\.count) }
        let tensors = tensorSizes.count, total = tensors + model.layers.count
        let allotted = endToEndCoordinates(tensors: tensors, options: options)
        let shared = zip(allotted, tensorSizes).contains { $0 < min(options.coordinates, $1) }
        let endToEnd = try endToEndErrors(model: model, batch: batch, labels: labels, context: context,
                                          coordinates: allotted, options: options) {
            progress($0, total)
        }
        try model.forward(batch: batch, context: context)
        let loss = crossEntropy(model: model, batch: batch, labels: labels, gradient: false)
        var rows: [Row] = []
        var offset = 0
        for (index, layer) in model.layers.enumerated() {
            var layerContext = context
            layerContext.layerIndex = index
            let local = try localErrors(layer, index: index, input: model.activation(index), model: model, offset: offset,
                                        batch: batch, context: layerContext, options: options)
            let tolerance = layer.sublayers.isEmpty ? options.localTolerance : options.endToEndTolerance
            for result in local {
                let e2e = endToEnd["\(index).\(result.tensor)"] ?? nil
                rows.append(Row(layer: index, kind: layer.kind, tensor: result.tensor,
                                localError: result.error, endToEndError: e2e,
                                localPassed: result.error.map { $0 <= tolerance } ?? true,
                                endToEndPassed: e2e.map { $0 <= options.endToEndTolerance } ?? true,
                                checked: result.checked, skipped: result.skipped))
            }
            offset += layer.parameterShapes.reduce(0) { $0 + $1.count }
            progress(tensors + index + 1, total)
        }
        return Report(rows: rows, samples: batch, loss: loss,
                      endToEndCoordinates: shared ? allotted.min()!...allotted.max()! : nil)
    }

    /// The coordinates each of `tensors` parameter tensors has compared end to end, in model order:
    /// `coordinates * endToEndFullTensors` shared evenly, the later tensors (the cheaper) taking
    /// what does not divide; at most `coordinates`, at least one.
    static func endToEndCoordinates(tensors: Int, options: Options) -> [Int] {
        let total = options.coordinates * options.endToEndFullTensors
        let each = total / max(tensors, 1), extra = total % max(tensors, 1)
        return (0..<tensors).map { max(1, min(options.coordinates, each + ($0 >= tensors - extra ? 1 : 0))) }
    }

    /// The mean loss over the batch; with `gradient`, its gradient goes to `model.outputGradient`.
    private static func crossEntropy(model: Model<Double>, batch: Int, labels: [Int32], gradient: Bool) -> Double {
        labels.withUnsafeBufferPointer { labels in
            softmaxCrossEntropy(logits: model.output, labels: labels.baseAddress!, dlogits: gradient ? model.outputGradient : nil,
                                batch: batch, classes: model.classes, gradientScale: 1 / Double(batch)).lossSum / Double(batch)
        }
    }

    /// Each parameter tensor's end-to-end error, by state-dict name (nil: unresolved), on
    /// `coordinates[k]` coordinates of the k-th tensor; `finished(n)` after the n-th tensor.
    private static func endToEndErrors(model: Model<Double>, batch: Int, labels: [Int32], context: StepContext,
                                       coordinates: [Int], options: Options, finished: (Int) -> Void) throws -> [String: Double?] {
        try model.forward(batch: batch, context: context)
        let base = crossEntropy(model: model, batch: batch, labels: labels, gradient: true)
        try model.backward(batch: batch, context: context)
        let analytic = Array(model.gradients.buffer)
        var errors: [String: Double?] = [:]
        var offset = 0, tensor = 0
        for (index, layer) in model.layers.enumerated() {
            for shape in layer.parameterShapes {
                let values = model.parameters.pointer + offset
                let limit = coordinates[tensor]
                let picks = sample(count: shape.count, limit: 3 * limit,
                                   random: CounterRandom(options.seed, 0xE2E, UInt64(index), UInt64(offset)))
                let first = offset
                let comparison = try leastError(step: 1e-6, tolerance: options.endToEndTolerance) { h in
                    // What the loss's rounding lets central differences resolve, with margin.
                    let rounding = (abs(base) + 1).ulp / h
                    return try compare(values, picks: picks, limit: limit, h: h, rounding: rounding, floor: 1e5 * rounding,
                                       kink: options.endToEndTolerance, base: base, analytic: { analytic[first + $0] }) {
                        try model.forward(batch: batch, context: context, fromLayer: index)
                        return crossEntropy(model: model, batch: batch, labels: labels, gradient: false)
                    }
                }
                errors["\(index).\(shape.name)"] = comparison.error
                offset += shape.count
                tensor += 1
                finished(tensor)
                // The last evaluation left the activations after this layer perturbed; later layers start from them.
                try model.forward(batch: batch, context: context, fromLayer: index)
            }
        }
        return errors
    }

    private struct TensorResult {
        var tensor: String
        var error: Double?
        var checked: Int
        var skipped: Int
    }

    /// Layer `index` alone: its `dx` (except for the first layer, whose `dx` the model never asks
    /// for) and its parameter gradients against f = sum(g * y) for a fixed random g.
    private static func localErrors(_ layer: any Layer<Double>, index: Int, input: UnsafePointer<Double>, model: Model<Double>,
                                    offset: Int, batch: Int, context: StepContext, options: Options) throws -> [TensorResult] {
        let inputCount = batch * layer.inputSize, outputCount = batch * layer.outputSize
        let x = Buffer<Double>(count: inputCount), y = Buffer<Double>(count: outputCount)
        let g = Buffer<Double>(count: outputCount), dx = Buffer<Double>(count: inputCount)
        x.pointer.update(from: input, count: inputCount)
        let random = CounterRandom(options.seed, 0x10CA1, UInt64(index))
        for i in 0..<outputCount { g.pointer[i] = random.normal(UInt64(i)) }
        func f() throws -> Double {
            try layer.forward(x.pointer, y.pointer, batch: batch, context: context)
            var sum = 0.0
            for i in 0..<outputCount { sum += g.pointer[i] * y.pointer[i] }
            return sum
        }
        let base = try f()
        var magnitude = 0.0
        for i in 0..<outputCount { magnitude += abs(g.pointer[i] * y.pointer[i]) }
        model.gradients.pointer.update(repeating: 0, count: model.gradients.count)
        try layer.backward(x.pointer, y.pointer, g.pointer, dx.pointer, batch: batch, context: context)
        let parameterGradients = Array(model.gradients.buffer)

        var tensors: [(name: String, values: UnsafeMutablePointer<Double>, count: Int, analytic: (Int) -> Double)] = []
        var parameterOffset = offset
        for shape in layer.parameterShapes {
            let first = parameterOffset
            tensors.append((shape.name, model.parameters.pointer + first, shape.count, { parameterGradients[first + $0] }))
            parameterOffset += shape.count
        }
        if index > 0 {
            let gradient = Array(UnsafeBufferPointer(start: dx.pointer, count: inputCount))
            tensors.append(("input", x.pointer, inputCount, { gradient[$0] }))
        }
        var results: [TensorResult] = []
        for (number, tensor) in tensors.enumerated() {
            var squares = 0.0
            for i in 0..<tensor.count { squares += tensor.values[i] * tensor.values[i] }
            let rms = (squares / Double(max(tensor.count, 1))).squareRoot()
            let picks = sample(count: tensor.count, limit: 3 * options.coordinates,
                               random: CounterRandom(options.seed, 0x5A3, UInt64(index), UInt64(number)))
            let tolerance = layer.sublayers.isEmpty ? options.localTolerance : options.endToEndTolerance
            // A step relative to the tensor's own scale, so that tiny activations are not jumped over.
            let comparison = try leastError(step: 1e-5 * (rms > 0 ? rms : 1), tolerance: tolerance) { h in
                let rounding = (magnitude + .leastNormalMagnitude).ulp / h
                return try compare(tensor.values, picks: picks, limit: options.coordinates, h: h, rounding: rounding,
                                   floor: 1e3 * rounding, kink: tolerance, base: base, analytic: tensor.analytic, f)
            }
            results.append(TensorResult(tensor: tensor.name, error: comparison.error, checked: comparison.checked,
                                        skipped: comparison.skipped))
        }
        return results
    }

    /// `compareAt(h)`, and where its error exceeds `tolerance`, `compareAt` at a tenth and a
    /// hundredth of `h`: the comparison of the smallest resolved error.
    ///
    /// Kinks crossed unseen within the step (a perturbation moves thousands of units, over many
    /// samples) move a central difference by an amount that shrinks with the step, as the chance of
    /// crossing one does; a wrong gradient's error does not shrink, and rounding's grows. ResNet-20
    /// (`configs/mnist-resnet20.yaml`) on 64 samples: a block's first weight at 2.15e-3 end to end
    /// with a step of 1e-6, 1.8e-7 with one of 1e-7.
    static func leastError(step h: Double, tolerance: Double,
                           _ compareAt: (Double) throws -> (error: Double?, checked: Int, skipped: Int)) rethrows
        -> (error: Double?, checked: Int, skipped: Int) {
        var least = try compareAt(h)
        for smaller in [h / 10, h / 100] {
            guard let error = least.error, !(error <= tolerance) else { break }
            let retried = try compareAt(smaller)
            if let retriedError = retried.error, retriedError < error { least = retried }
        }
        return least
    }

    /// Central differences of `f` at coordinates `picks` of `values` (until `limit` of them are
    /// usable, see `centralDifference`), against `analytic`. `f()` at the unperturbed point is `base`;
    /// `rounding` is about what rounding `f` moves a one-sided difference of step `h` by, and a
    /// tensor whose differences and gradients are all below `floor` is unresolved (error nil).
    static func compare(_ values: UnsafeMutablePointer<Double>, picks: [Int], limit: Int, h: Double, rounding: Double,
                        floor: Double, kink: Double,
                        base: Double, analytic: (Int) -> Double,
                        _ f: () throws -> Double) throws -> (error: Double?, checked: Int, skipped: Int) {
        var pairs: [(analytic: Double, numeric: Double)] = []
        var skipped = 0
        for i in picks where pairs.count < limit {
            guard let numeric = try centralDifference(values + i, h: h, rounding: rounding, floor: floor, kink: kink,
                                                      base: base, f) else {
                skipped += 1
                continue
            }
            pairs.append((analytic(i), numeric))
        }
        var difference = 0.0, scale = 0.0
        for pair in pairs {
            // NaN must fail the check, and max() would drop it.
            let gap = abs(pair.analytic - pair.numeric)
            difference = gap.isNaN || difference.isNaN ? .nan : max(difference, gap)
            scale = max(scale, abs(pair.analytic), abs(pair.numeric))
        }
        if difference.isNaN { return (.infinity, pairs.count, skipped) }
        guard scale >= floor else { return (nil, pairs.count, skipped) }
        return (difference / scale, pairs.count, skipped)
    }

    /// The central difference of `f` in `value`, or nil at a kink: where the one-sided differences
    /// disagree by more than `kink` (relative). A kink crossed unseen on one side moves the central
    /// difference by at most half their disagreement, so `kink` is the check's tolerance (at 1e-3
    /// for a local check of tolerance 1e-4, a batch norm's bias over 256 samples, its ReLU's kinks
    /// within the step of some of 200,000 values, failed at 4.5e-4). A disagreement within a few
    /// times `rounding` (what rounding moves a one-sided difference by) is rounding, and any kink
    /// hidden in it moves the central difference by no more than rounding does: an LSTM's and a
    /// GRU's weights had a few coordinates of tiny gradient in thirty skipped as kinks so. (Telling
    /// curvature from a kink by halving the step was tried: over many samples a coordinate near one
    /// kink is near others, and some of those passed for curvature, errors and all.)
    static func centralDifference(_ value: UnsafeMutablePointer<Double>, h: Double, rounding: Double, floor: Double,
                                  kink: Double, base: Double, _ f: () throws -> Double) throws -> Double? {
        let saved = value.pointee
        defer { value.pointee = saved }
        value.pointee = saved + h
        let plus = try f()
        value.pointee = saved - h
        let minus = try f()
        let forward = (plus - base) / h, backward = (base - minus) / h
        let bound = max(kink * max(abs(forward), abs(backward), floor), 4 * rounding)
        // Written so that NaN passes through as a difference, and fails the check.
        return abs(forward - backward) > bound ? nil : (plus - minus) / (2 * h)
    }

    /// Up to `limit` distinct indices below `count`, in random order: all of them when there are few.
    static func sample(count: Int, limit: Int, random: CounterRandom) -> [Int] {
        if count <= limit {
            var all = Array(0..<count)
            for i in stride(from: count - 1, to: 0, by: -1) { all.swapAt(i, random.below(i + 1, UInt64(i))) }
            return all
        }
        var chosen: [Int] = [], seen = Set<Int>()
        var counter: UInt64 = 0
        while chosen.count < limit {
            let i = random.below(count, counter)
            counter += 1
            if seen.insert(i).inserted { chosen.append(i) }
        }
        return chosen
    }
}
