/// Random crops and flips of training images, torchvision's `RandomCrop(size, padding)` then
/// `RandomHorizontalFlip(p)`: the image is zero-padded by `padding` on every side, the input's
/// size is cut out at offset (top, left), each uniform in [0, 2 * padding], and mirrored
/// left-right with probability `flipProbability`.
///
/// A sample's draw is a pure function of (seed, epoch, its index in the file), so it does not
/// depend on the number of workers, and a resumed run draws the same.
public struct Augmentation: Sendable, Equatable {
    public var padding: Int
    public var flipProbability: Double
    public var seed: UInt64

    public init(padding: Int, flipProbability: Double, seed: UInt64) {
        self.padding = padding; self.flipProbability = flipProbability; self.seed = seed
    }

    /// Where sample `index` is cut from the padded image in `epoch`, and whether it is mirrored.
    @inline(__always)
    public func draw(epoch: Int, index: Int) -> (top: Int, left: Int, flip: Bool) {
        let random = CounterRandom(seed, 0xA06, UInt64(epoch), UInt64(index))
        let positions = 2 * padding + 1
        return (random.below(positions, 0), random.below(positions, 1), random.uniform(2) < flipProbability)
    }
}
