/// What a sample's stored values go through on their way into the model, in torchvision's order:
/// (on training batches) `RandomCrop` and `RandomHorizontalFlip` (`Augmentation`), then
/// `ToTensor` (integer pixels times `scale`; float values as stored), then `Normalize`:
/// `(x - mean[c]) / std[c]` for channel c.
public struct InputTransform: Sendable {
    /// The model's input: channels, then a plane of height x width. Inputs that are not [C, H, W]
    /// images are one channel, one row.
    public let inputShape: [Int]
    public let channels: Int
    public let height: Int
    public let width: Int
    /// Multiplies integer pixels.
    public var scale: Float
    /// Per channel, `channels` each; nil: no normalisation.
    public var mean: [Float]?
    public var std: [Float]?
    /// Applied to training batches only.
    public var augmentation: Augmentation?

    /// Scaling alone.
    public init(scale: Double, inputShape: [Int]) {
        self.inputShape = inputShape
        self.scale = Float(scale)
        let size = inputShape.reduce(1, *)
        (channels, height, width) = inputShape.count == 3 ? (inputShape[0], inputShape[1], inputShape[2]) : (1, 1, size)
    }

    /// The transform of `data` (a config's `data:`) for `inputShape`, checked against it; errors
    /// name `file` and the key.
    public init(_ data: DataConfig, inputShape: [Int], seed: UInt64, file: String) throws {
        self.init(scale: data.scale, inputShape: inputShape)
        if let normalize = data.normalize {
            for (key, values) in [("mean", normalize.mean), ("std", normalize.std)] where values.count != 1 && values.count != channels {
                throw CohortError("\(file): data.normalize.\(key): \(values.count) values for the \(channels) channel\(channels == 1 ? "" : "s") of model.input \(describe(inputShape)) (give one per channel, or one for all\(inputShape.count == 1 && values.count == 3 ? "; for CIFAR's 3 channels, make model.input [3, 32, 32] and flatten in the model" : ""))")
            }
            mean = (0..<channels).map { Float(normalize.mean[normalize.mean.count == 1 ? 0 : $0]) }
            std = (0..<channels).map { Float(normalize.std[normalize.std.count == 1 ? 0 : $0]) }
        }
        if data.augment.cropPadding > 0 || data.augment.flipProbability > 0 {
            guard inputShape.count == 3 else {
                throw CohortError("\(file): data.augment: crops and flips are of images, model.input [C, H, W], not \(describe(inputShape))")
            }
            augmentation = Augmentation(padding: data.augment.cropPadding, flipProbability: data.augment.flipProbability, seed: seed)
        }
    }
}
