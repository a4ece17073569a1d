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
    /// The `--set` values in it, for the messages of errors found later (a layer's, as the model is built).
    public var overrides: [ConfigOverride] = []
    public init() {}
}

/// A file of images and a file of labels, each IDX or NumPy `.npy` (told apart by content).
public struct IDXPair: Sendable, Equatable {
    public var images: String
    public var labels: String
}

/// The files of a data set: images and labels, or CIFAR's binary batches (read in order as one set).
public enum DataFiles: Sendable, Equatable {
    case arrays(IDXPair)
    case cifar(CIFARFormat, [String])

    /// The key and the images' file(s), for messages: `data.test (x_test.npy)`.
    public func described(as key: String) -> String {
        switch self {
        case .arrays(let pair): "\(key) (\(pair.images))"
        case .cifar(_, let paths): "\(key) (\(paths.joined(separator: ", ")))"
        }
    }

    public var paths: [String] {
        switch self {
        case .arrays(let pair): [pair.images, pair.labels]
        case .cifar(_, let paths): paths
        }
    }
}

/// `data.normalize`: torchvision's `Normalize(mean, std)`, one value per channel (or one for all).
public struct NormalizeConfig: Sendable, Equatable {
    public var mean: [Double]
    public var std: [Double]
}

/// `data.augment`: `random_crop: {padding}` and `horizontal_flip` (a probability); 0: off.
public struct AugmentConfig: Sendable, Equatable {
    public var cropPadding = 0
    public var flipProbability = 0.0
}

public struct DataConfig: Sendable {
    public var train: DataFiles?
    public var test: DataFiles?
    public var scale: Double = 1.0 / 255.0
    public var shuffle = true
    public var normalize: NormalizeConfig?
    public var augment = AugmentConfig()
}

public indirect enum LayerSpec: Sendable, Equatable {
    case conv2d(outChannels: Int, kernel: Int, stride: Int, padding: Int, bias: Bool, initializer: LayerInit)
    case dense(outFeatures: Int, bias: Bool, initializer: LayerInit)
    /// `initializer`: of the scale (PyTorch's default: 1) and the shift (0).
    case batchnorm(momentum: Double, epsilon: Double, synchronized: Bool, initializer: LayerInit = LayerInit())
    case dropout(p: Double)
    case activation(Activation<Float>.Function)
    case pool(Pool2D<Float>.Mode, kernel: Int, stride: Int, padding: Int)
    case flatten
    case lstm(hiddenSize: Int, returnSequences: Bool, bias: Bool, initializer: LayerInit)
    case gru(hiddenSize: Int, returnSequences: Bool, bias: Bool, initializer: LayerInit)
    case rnn(hiddenSize: Int, nonlinearity: RNN<Float>.Nonlinearity, returnSequences: Bool, bias: Bool, initializer: LayerInit)
    case adaptiveAvgPool(outHeight: Int, outWidth: Int)
    /// y = body(x) + shortcut(x); an empty shortcut is the identity.
    case residual(body: [LayerSpec], shortcut: [LayerSpec])

    /// An LSTM, GRU or RNN layer.
    public var isRecurrent: Bool {
        switch self {
        case .lstm, .gru, .rnn: true
        default: false
        }
    }
}

public struct ModelConfig: Sendable {
    public var input: [Int] = []
    public var layers: [LayerSpec] = []
    /// Initial weights in safetensors with PyTorch names.
    public var initFrom: String?
    /// How every convolution computes (`model.convolution`).
    public var convolution = ConvolutionPreference.auto
}

public struct ScheduleConfig: Sendable, Equatable {
    public enum Kind: String, Sendable { case constant, step, cosine }
    public var kind: Kind = .constant
    public var stepSize = 1
    public var gamma = 0.1
    public var warmupSteps = 0
}

/// The optimizers `optimizer.name` can name (`torch.optim`'s, lower-case).
public enum OptimizerName: String, CaseIterable, Sendable {
    case sgd, adam, adamw, rmsprop, adagrad

    /// The config keys this optimizer takes besides `name`, `lr` and `schedule`, as PyTorch names them.
    public var keys: [String] {
        switch self {
        case .sgd: ["momentum", "dampening", "nesterov", "weight_decay"]
        case .adam, .adamw: ["betas", "eps", "weight_decay", "amsgrad"]
        case .rmsprop: ["alpha", "eps", "weight_decay", "momentum", "centered"]
        case .adagrad: ["lr_decay", "weight_decay", "initial_accumulator_value", "eps"]
        }
    }

    /// PyTorch's default learning rate of this optimizer (`torch.optim`, 2.x).
    public var defaultLearningRate: Double {
        switch self {
        case .sgd, .adam, .adamw: 1e-3
        case .rmsprop, .adagrad: 1e-2
        }
    }
}

/// An optimizer and its hyper-parameters. A field that `name` does not use is ignored; the
/// defaults are PyTorch's, see `defaults(for:)`.
public struct OptimizerConfig: Sendable {
    public var name = OptimizerName.sgd
    public var lr = 0.01
    /// SGD and RMSprop.
    public var momentum = 0.0
    /// SGD.
    public var dampening = 0.0
    public var nesterov = false
    /// L2 for all but AdamW, whose decay is decoupled.
    public var weightDecay = 0.0
    /// Adam and AdamW.
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var amsgrad = false
    /// Adam, AdamW, RMSprop and Adagrad.
    public var eps = 1e-8
    /// RMSprop.
    public var alpha = 0.99
    public var centered = false
    /// Adagrad.
    public var lrDecay = 0.0
    public var initialAccumulatorValue = 0.0
    public var schedule = ScheduleConfig()

    public init(name: OptimizerName = .sgd, lr: Double = 0.01) {
        self.name = name
        self.lr = lr
    }

    /// `torch.optim`'s defaults for `name`: those that differ between optimizers are AdamW's
    /// weight_decay (0.01) and Adagrad's eps (1e-10).
    public static func defaults(for name: OptimizerName, lr: Double) -> OptimizerConfig {
        var config = OptimizerConfig(name: name, lr: lr)
        if name == .adamw { config.weightDecay = 0.01 }
        if name == .adagrad { config.eps = 1e-10 }
        return config
    }
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
    /// Scale the gradient down to this global L2 norm when it is longer (`clip_grad_norm_`); nil: never.
    public var clipGradNorm: Double?
    /// Print a progress line every this many steps.
    public var logEverySteps = 50
    /// Write histograms of each layer's weights, gradients and outputs at the first step and every
    /// this many steps (TensorBoard, and their means and deviations in metrics.jsonl); nil: never.
    public var histogramsEverySteps: Int?
    /// Micro-batches per step (`train.accumulate`): the global batch in this many successive parts,
    /// their gradients summed before the one allreduce and update.
    public var accumulate = 1
}

public struct CheckpointConfig: Sendable {
    public var dir = "runs/default"
    /// 0: only the final checkpoint.
    public var everySteps = 0
    public var keep = 3
}

public struct DistributedConfig: Sendable {
    public var timeoutSeconds = 60.0
    public var compress = GradientCompression.none
    /// Sum gradients during backward, bucket by bucket, on a communication thread (`GradientExchange`).
    public var overlap = true
    /// The size of a gradient bucket in MiB of float32 (`GradientBuckets`, PyTorch DDP's `bucket_cap_mb`).
    public var bucketMB = 1.0

    /// `bucketMB` in values (at least one).
    public var bucketCount: Int { max(1, Int(bucketMB * 1_048_576 / 4)) }
}

/// How gradients travel between the workers (`distributed.compress`).
public enum GradientCompression: String, CaseIterable, Sendable {
    /// float32, summed by MPI.
    case none
    /// bfloat16, summed in float32 (`Communicator.allreduceSumBFloat16`): half the bytes.
    case bf16
}

extension TrainingConfig {
    /// The global batch for a training set of `trainingSamples`: all of them for `full`, else
    /// `train.batch_size`, which must not exceed them.
    public func batchSize(trainingSamples: Int) throws -> Int {
        switch train.batchSize {
        case .full:
            return trainingSamples
        case .samples(let size):
            guard size <= trainingSamples else {
                throw CohortError("\(sourcePath): train.batch_size: \(size) is larger than the \(trainingSamples) training samples")
            }
            return size
        }
    }
}
