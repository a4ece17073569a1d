/// Inverted dropout (Srivastava et al., 2014): in training each value is zeroed with probability `p`
/// and the survivors are multiplied by 1 / (1 - p), so that inference needs no rescaling and is the identity.
///
/// The mask of a value is a pure function of (seed, step, layer, the sample's global index, the
/// value's index): the same sample meets the same mask whatever the number of workers.
public final class Dropout<Element: Scalar>: Layer {
    public let kind = "dropout"
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }
    public let probability: Double
    /// 0 or 1 / (1 - p) per value of the last training batch: `[N, inputSize]`.
    private var mask = Buffer<Element>(count: 0)

    public init(input: [Int], probability: Double) {
        inputShape = input
        self.probability = probability
    }

    public func reserve(maxBatch: Int) {
        mask = Buffer(count: maxBatch * inputSize)
    }

    /// Inference copies its input: no mask.
    public func reserveForInference(maxBatch: Int) {
        mask = Buffer(count: 0)
    }

    public func forward(_ x: UnsafePointer<Element>, _ y: UnsafeMutablePointer<Element>, batch: Int, context: StepContext) {
        let size = inputSize
        guard context.isTraining, probability > 0 else {
            y.update(from: x, count: batch * size)
            return
        }
        forEachShare(of: batch, values: batch * size) { samples in
            let offset = samples.lowerBound * size
            dropoutMask(mask.pointer + offset, batch: samples.count, size: size, probability: probability, seed: context.seed,
                        step: context.step, layer: context.layerIndex, firstSampleIndex: context.firstSampleIndex + samples.lowerBound)
            multiply(x + offset, mask.pointer + offset, y + offset, count: samples.count * size)
        }
    }

    public func backward(_ x: UnsafePointer<Element>, _ y: UnsafePointer<Element>, _ dy: UnsafePointer<Element>,
                         _ dx: UnsafeMutablePointer<Element>?, batch: Int, context: StepContext) {
        guard let dx else { return }
        if probability > 0 {
            let size = inputSize
            forEachShare(of: batch, values: batch * size) { samples in
                let offset = samples.lowerBound * size
                multiply(dy + offset, mask.pointer + offset, dx + offset, count: samples.count * size)
            }
        } else {
            dx.update(from: dy, count: batch * inputSize)
        }
    }
}

/// mask[n, i] = 0 with probability p, else 1 / (1 - p), drawn from (seed, step, layer, sample index, i).
/// mask: `[N, size]`; sample n's index is `firstSampleIndex + n`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func dropoutMask<T: Scalar>(_ mask: UnsafeMutablePointer<T>, batch: Int, size: Int, probability: Double,
                                   seed: UInt64, step: Int, layer: Int, firstSampleIndex: Int) {
    let keepScale = T(1 / (1 - probability))
    let threshold = Float(probability)
    for n in 0..<batch {
        let random = CounterRandom(seed, 0xD0, UInt64(step), UInt64(layer), UInt64(firstSampleIndex + n))
        let row = mask + n * size
        for i in 0..<size { row[i] = random.uniformFloat(UInt64(i)) < threshold ? 0 : keepScale }
    }
}

/// z = x * y element-wise over `count` values.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func multiply<T: Scalar>(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ z: UnsafeMutablePointer<T>, count: Int) {
    for i in 0..<count { z[i] = x[i] * y[i] }
}
