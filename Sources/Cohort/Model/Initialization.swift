/// How a layer's weight (or bias) starts. Names and formulas are PyTorch's `torch.nn.init`.
public enum Initializer: Equatable, Sendable {
    /// What PyTorch does when nothing is said: for conv and dense weights `kaiming_uniform_(a=sqrt(5))`,
    /// that is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for their biases.
    case pytorchDefault
    case constant(Double)
    case normal(mean: Double, std: Double)
    case uniform(bound: Double)
    /// Glorot and Bengio (2010): U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)).
    case xavierUniform(gain: Double)
    /// Glorot and Bengio (2010): N(0, gain^2 * 2 / (fan_in + fan_out)).
    case xavierNormal(gain: Double)
    /// He et al. (2015), for ReLU: U(-b, b), b = sqrt(6 / fan_in).
    case heUniform
    /// He et al. (2015), for ReLU: N(0, 2 / fan_in).
    case heNormal
    /// LeCun et al. (1998): N(0, 1 / fan_in).
    case lecunNormal
    /// Saxe et al. (2014): the weight, flattened to `[rows, fan]`, has orthonormal rows (or columns), times `gain`.
    case orthogonal(gain: Double)
}

extension Initializer {
    /// The config's name for it.
    public var name: String {
        switch self {
        case .pytorchDefault: "PyTorch's default"
        case .constant: "constant"
        case .normal: "normal"
        case .uniform: "uniform"
        case .xavierUniform: "xavier_uniform"
        case .xavierNormal: "xavier_normal"
        case .heUniform: "he_uniform"
        case .heNormal: "he_normal"
        case .lecunNormal: "lecun_normal"
        case .orthogonal: "orthogonal"
        }
    }

    /// Whether it fills a tensor of one dimension as PyTorch would: the initializations that need
    /// a fan-in and fan-out (or a matrix) raise an error there.
    public var fillsAVector: Bool {
        switch self {
        case .pytorchDefault, .constant, .normal, .uniform: true
        default: false
        }
    }
}

/// Fan-in and fan-out as `torch.nn.init._calculate_fan_in_and_fan_out`: for `[out, in, k, k]`,
/// fan_in = in * k * k and fan_out = out * k * k.
public func fans(of shape: [Int]) -> (fanIn: Int, fanOut: Int) {
    if shape.count < 2 { return (shape.first ?? 1, shape.first ?? 1) }
    let receptive = shape.dropFirst(2).reduce(1, *)
    return (shape[1] * receptive, shape[0] * receptive)
}

/// Fills `count` values drawn by `initializer` for a tensor of `shape`.
///
/// `defaultFanIn` is the fan-in PyTorch's default uses (for a bias, that of its weight).
func initialize<T: Scalar>(_ values: UnsafeMutablePointer<T>, shape: [Int], with initializer: Initializer,
                           defaultFanIn: Int, random: CounterRandom) {
    let count = shape.reduce(1, *)
    let (fanIn, fanOut) = fans(of: shape)
    func fillUniform(_ bound: Double) {
        for i in 0..<count { values[i] = T((2 * random.uniform(UInt64(i)) - 1) * bound) }
    }
    func fillNormal(_ mean: Double, _ std: Double) {
        for i in 0..<count { values[i] = T(mean + std * random.normal(UInt64(i))) }
    }
    switch initializer {
    case .pytorchDefault: fillUniform(1 / Double(max(defaultFanIn, 1)).squareRoot())
    case .constant(let value): for i in 0..<count { values[i] = T(value) }
    case .normal(let mean, let std): fillNormal(mean, std)
    case .uniform(let bound): fillUniform(bound)
    case .xavierUniform(let gain): fillUniform(gain * (6 / Double(fanIn + fanOut)).squareRoot())
    case .xavierNormal(let gain): fillNormal(0, gain * (2 / Double(fanIn + fanOut)).squareRoot())
    case .heUniform: fillUniform((6 / Double(fanIn)).squareRoot())
    case .heNormal: fillNormal(0, (2 / Double(fanIn)).squareRoot())
    case .lecunNormal: fillNormal(0, (1 / Double(fanIn)).squareRoot())
    case .orthogonal(let gain):
        let rows = shape.first ?? 1
        let matrix = orthogonalMatrix(rows: rows, columns: count / max(rows, 1), random: random)
        for i in 0..<count { values[i] = T(gain * matrix[i]) }
    }
}

/// A `rows x columns` row-major matrix with orthonormal rows (rows <= columns) or columns, from the
/// Gram-Schmidt orthogonalisation of a Gaussian matrix, as `torch.nn.init.orthogonal_` does with QR.
func orthogonalMatrix(rows: Int, columns: Int, random: CounterRandom) -> [Double] {
    let transposed = rows > columns
    let (r, c) = transposed ? (columns, rows) : (rows, columns)
    var q = (0..<(r * c)).map { random.normal(UInt64($0)) }
    for i in 0..<r {
        for j in 0..<i {
            var dot = 0.0
            for k in 0..<c { dot += q[i * c + k] * q[j * c + k] }
            for k in 0..<c { q[i * c + k] -= dot * q[j * c + k] }
        }
        var norm = 0.0
        for k in 0..<c { norm += q[i * c + k] * q[i * c + k] }
        norm = norm.squareRoot()
        for k in 0..<c { q[i * c + k] /= norm }
    }
    if !transposed { return q }
    var t = [Double](repeating: 0, count: r * c)
    for i in 0..<r { for k in 0..<c { t[k * r + i] = q[i * c + k] } }
    return t
}

/// The initialization of a layer with weights: its weights' and its biases'.
public struct LayerInit: Equatable, Sendable {
    public var weight: Initializer
    /// `nil`: PyTorch's default if the weight uses it, zero otherwise.
    public var bias: Initializer?
    public init(weight: Initializer = .pytorchDefault, bias: Initializer? = nil) {
        self.weight = weight; self.bias = bias
    }

    /// What the biases start from: `bias`, else PyTorch's default with the weight's, else zero.
    var biasInitializer: Initializer { bias ?? (weight == .pytorchDefault ? .pytorchDefault : .constant(0)) }

    /// Fills a weight of `shape` and its optional bias of `outputs` values.
    func apply<T: Scalar>(weight w: UnsafeMutablePointer<T>, shape: [Int], bias b: UnsafeMutablePointer<T>?,
                          seed: UInt64, layerIndex: Int) {
        let fanIn = fans(of: shape).fanIn
        initialize(w, shape: shape, with: weight, defaultFanIn: fanIn,
                   random: CounterRandom(seed, 0x1417, UInt64(layerIndex), 0))
        guard let b else { return }
        initialize(b, shape: [shape[0]], with: biasInitializer, defaultFanIn: fanIn,
                   random: CounterRandom(seed, 0x1417, UInt64(layerIndex), 1))
    }
}
