/// A run's whole configuration, as read and checked from its YAML file (see `docs` in the README).
public struct TrainingConfig: Sendable {
    public var seed: UInt64 = 0
    public var data = DataConfig()
    public var model = ModelConfig()
    public var optimizer = OptimizerConfig()
    public var train = TrainConfig()
    public var checkpoint = CheckpointConfig()
    public var distributed = DistributedConfig()
    /// The file it came from (for messages), and its text (saved with every checkpoint).
    public var sourcePath = ""
    public var sourceText = ""
    public init() {}
}

/// A pair of IDX files.
public struct IDXPair: Sendable, Equatable {
    public var images: String
    public var labels: String
}

public struct DataConfig: Sendable {
    public var train: IDXPair?
    public var test: IDXPair?
    public var scale: Double = 1.0 / 255.0
    public var shuffle = true
}

public enum LayerSpec: Sendable, Equatable {
    case conv2d(outChannels: Int, kernel: Int, stride: Int, padding: Int, bias: Bool, initializer: LayerInit)
    case dense(outFeatures: Int, bias: Bool, initializer: LayerInit)
    case batchnorm(momentum: Double, epsilon: Double, synchronized: Bool)
    case dropout(p: Double)
    case activation(Activation<Float>.Function)
    case pool(Pool2D<Float>.Mode, kernel: Int, stride: Int, padding: Int)
    case flatten
    case lstm(hiddenSize: Int, returnSequences: Bool, bias: Bool, initializer: LayerInit)
    case gru(hiddenSize: Int, returnSequences: Bool, bias: Bool, initializer: LayerInit)
    case rnn(hiddenSize: Int, nonlinearity: RNN<Float>.Nonlinearity, returnSequences: Bool, bias: Bool, initializer: LayerInit)
}

public struct ModelConfig: Sendable {
    public var input: [Int] = []
    public var layers: [LayerSpec] = []
    /// Initial weights in safetensors with PyTorch names.
    public var initFrom: String?
}

public struct ScheduleConfig: Sendable, Equatable {
    public enum Kind: String, Sendable { case constant, step, cosine }
    public var kind: Kind = .constant
    public var stepSize = 1
    public var gamma = 0.1
    public var warmupSteps = 0
}

public struct OptimizerConfig: Sendable {
    public var name = "sgd"
    public var lr = 0.01
    public var momentum = 0.0
    public var dampening = 0.0
    public var nesterov = false
    public var weightDecay = 0.0
    public var schedule = ScheduleConfig()
}

public enum BatchSize: Sendable, Equatable {
    /// Batch gradient descent: the whole training set each step.
    case full
    case samples(Int)
}

public struct TrainConfig: Sendable {
    public var batchSize: BatchSize = .samples(64)
    public var maxSteps: Int?
    public var epochs: Int?
    public var loss = "cross_entropy"
    /// Print a progress line every this many steps.
    public var logEverySteps = 50
}

public struct CheckpointConfig: Sendable {
    public var dir = "runs/default"
    /// 0: only the final checkpoint.
    public var everySteps = 0
    public var keep = 3
}

public struct DistributedConfig: Sendable {
    public var timeoutSeconds = 60.0
}
