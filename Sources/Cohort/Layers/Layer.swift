/// What a layer needs to know about the step it runs in.
public struct StepContext {
    /// Training (batch statistics, dropout on) or inference (running statistics, dropout off).
    public var isTraining: Bool
    /// The run's seed, from which dropout masks derive.
    public var seed: UInt64
    /// The global step, counted from 0.
    public var step: Int
    /// The global index of this worker's first sample in the data set order of this step: dropout
    /// masks are keyed by it, so the world size cannot change them.
    public var firstSampleIndex: Int
    /// The number of samples over all workers in this step.
    public var globalBatch: Int
    /// The workers sharing this batch (batch-norm statistics are summed over them).
    public var communicator: Communicator
    /// Key of the layer being run, set by the `Sequential` that runs it: its index in the model
    /// for a top-level layer, `nestedLayerKey` of its parents' for one inside a block. Dropout
    /// masks derive from it.
    public var layerIndex: Int = 0

    public init(isTraining: Bool, seed: UInt64, step: Int, firstSampleIndex: Int, globalBatch: Int,
                communicator: Communicator) {
        self.isTraining = isTraining; self.seed = seed; self.step = step
        self.firstSampleIndex = firstSampleIndex; self.globalBatch = globalBatch
        self.communicator = communicator
    }
}

/// A tensor of a layer's state, as it appears in a PyTorch state dict (`weight`, `running_mean`, ...).
public struct StateTensor {
    public enum Storage {
        case scalars(UnsafeMutableRawPointer)
        case int64(UnsafeMutablePointer<Int64>)
    }
    public var name: String
    public var shape: [Int]
    public var storage: Storage
    /// Whether its values are variances (a batch norm's running_var): never negative, as loaded.
    public var holdsVariances = false
    public var count: Int { shape.reduce(1, *) }
}

/// A shape of a trainable tensor that the model allocates in its flat parameter buffer.
public struct ParameterShape: Equatable {
    public var name: String
    public var shape: [Int]
    public var count: Int { shape.reduce(1, *) }
    public init(_ name: String, _ shape: [Int]) { self.name = name; self.shape = shape }
}

/// One layer of a sequential model: its parameters, forward and backward.
///
/// The model allocates every buffer: parameters and their gradients live in two flat buffers (one
/// allreduce for all gradients), activations are sized for the largest local batch. A layer only
/// allocates its own workspace, once, in `reserve(maxBatch:)`. Gradients of parameters accumulate
/// (the model zeroes them before each step); `dx` is overwritten.
public protocol Layer<Element>: AnyObject {
    associatedtype Element: Scalar
    /// The config name, e.g. `conv2d`.
    var kind: String { get }
    var inputShape: [Int] { get }
    var outputShape: [Int] { get }
    /// Trainable tensors in PyTorch's state-dict order.
    var parameterShapes: [ParameterShape] { get }
    /// Hands the layer its slices of the flat parameter and gradient buffers, in `parameterShapes` order.
    func bind(parameters: UnsafeMutablePointer<Element>, gradients: UnsafeMutablePointer<Element>)
    /// Fills the parameters with their initial values.
    func initialize(seed: UInt64, layerIndex: Int)
    /// Allocates workspace for batches of up to `maxBatch` samples.
    func reserve(maxBatch: Int)
    /// Allocates what a forward in inference mode needs for batches of up to `maxBatch` samples,
    /// nothing for backward (`Model.reserveForInference`); by default, `reserve(maxBatch:)`.
    func reserveForInference(maxBatch: Int)
    /// The layer's state-dict tensors besides parameters (batch-norm running statistics).
    func buffers() -> [StateTensor]
    /// The layers this one is made of, with the names their tensors take (`"0"`, `"body"`); none for a plain layer.
    var sublayers: [(name: String, layer: any Layer<Element>)] { get }
    /// Values per sample the layer keeps between forward and backward besides its output (a block's
    /// inner activations and their gradients), for the memory estimate.
    var activationValuesPerSample: Int { get }
    /// The same after `reserveForInference`.
    var inferenceValuesPerSample: Int { get }
    /// x: `[N, inputShape]`, y: `[N, outputShape]`.
    func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) throws
    /// Given x, y and dy of the last forward, adds parameter gradients and writes dx (when asked for).
    func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                  _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) throws
}

extension Layer {
    public var parameterShapes: [ParameterShape] { [] }
    public func bind(parameters: UnsafeMutablePointer<Element>, gradients: UnsafeMutablePointer<Element>) {}
    public func initialize(seed: UInt64, layerIndex: Int) {}
    public func reserve(maxBatch: Int) {}
    public func reserveForInference(maxBatch: Int) { reserve(maxBatch: maxBatch) }
    public func buffers() -> [StateTensor] { [] }
    public var sublayers: [(name: String, layer: any Layer<Element>)] { [] }
    public var activationValuesPerSample: Int { 0 }
    public var inferenceValuesPerSample: Int { activationValuesPerSample }
    public var inputSize: Int { inputShape.reduce(1, *) }
    public var outputSize: Int { outputShape.reduce(1, *) }
}

/// Where a layer sits in the config, as its messages name it: `model.layers[3]`, or
/// `model.layers[3].residual.body[0]` inside a block. An integer literal is a top-level index.
public struct LayerPlace: ExpressibleByIntegerLiteral, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
    public init(integerLiteral index: Int) { description = "model.layers[\(index)]" }
    /// Item `index` of the list `key` inside this layer: `model.layers[3].residual.body[0]`.
    public func item(_ key: String, _ index: Int) -> LayerPlace { LayerPlace("\(description).\(key)[\(index)]") }
}

/// An error in the model's architecture, naming the layer.
func layerError(_ place: LayerPlace, _ kind: String, _ message: String) -> CohortError {
    CohortError("\(place) (\(kind)): \(message)")
}

/// The key of sublayer `child` of the layer keyed `parent` (top-level layers are keyed by their
/// index): initialization and dropout draw from it. Nested keys are at least 2^62, so they never
/// meet a top-level index, and positive, so they convert to UInt64 as top-level ones do.
func nestedLayerKey(parent: Int, child: Int) -> Int {
    var h = UInt64(truncatingIfNeeded: parent) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(child + 1)
    h ^= h >> 31
    h = h &* 0xBF58_476D_1CE4_E5B9
    h ^= h >> 29
    return Int(h & 0x3FFF_FFFF_FFFF_FFFF | 0x4000_0000_0000_0000)
}

/// The number of elements of `shape`, or nil if it overflows.
func elementCount(_ shape: [Int]) -> Int? {
    var total = 1
    for d in shape {
        let (product, overflow) = total.multipliedReportingOverflow(by: d)
        if overflow || d < 0 { return nil }
        total = product
    }
    return total
}

func describe(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
