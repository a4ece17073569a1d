/// The per-channel passes of batch normalization. x, y, dy, dx: `[N, C, S]` (S = H*W, or 1 after a
/// dense layer); per-channel vectors: `[C]`. Sums are accumulated in Double. `only`: the channels
/// to compute (default all), so that threads can share a pass (`forEachChannelShare`).

/// sums[c] += sum of x[., c, .]; squares[c] += sum of x^2.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func channelMoments<T: Scalar>(
    _ x: UnsafePointer<T>, sums: UnsafeMutablePointer<Double>, squares: UnsafeMutablePointer<Double>,
    batch: Int, channels: Int, spatial: Int, only range: Range<Int>? = nil
) {
    let selected = range ?? 0..<channels
    if spatial == 1 {
        // After a dense layer: one value per channel and sample, so run along the channels.
        for n in 0..<batch {
            let row = x + n * channels
            for c in selected {
                let v = Double(row[c])
                sums[c] += v
                squares[c] += v * v
            }
        }
        return
    }
    for n in 0..<batch {
        for c in selected {
            // Per row in the element type (at most H*W values), across rows in Double.
            let (s, q) = sumAndSquares(x + (n * channels + c) * spatial, count: spatial)
            sums[c] += Double(s)
            squares[c] += Double(q)
        }
    }
}

/// moments[n, c] = (sum of x[n, c, .], sum of its squares), in the element type: `channelMoments`
/// taken image by image, as `addChannelMoments` then sums them. x: `[N, C, S]`; moments: `[N, C, 2]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func imageChannelMoments<T: Scalar>(_ x: UnsafePointer<T>, _ moments: UnsafeMutablePointer<T>, images: Range<Int>,
                                    channels: Int, spatial: Int, only range: Range<Int>? = nil) {
    for n in images {
        for c in range ?? 0..<channels {
            let (s, q) = sumAndSquares(x + (n * channels + c) * spatial, count: spatial)
            moments[2 * (n * channels + c)] = s
            moments[2 * (n * channels + c) + 1] = q
        }
    }
}

/// sums[c] += moments[n, c, 0], squares[c] += moments[n, c, 1], image by image: bitwise what
/// `channelMoments` adds over the same images. moments: `[N, C, 2]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func addChannelMoments<T: Scalar>(_ moments: UnsafePointer<T>, sums: UnsafeMutablePointer<Double>, squares: UnsafeMutablePointer<Double>,
                                  batch: Int, channels: Int) {
    for n in 0..<batch {
        for c in 0..<channels {
            sums[c] += Double(moments[2 * (n * channels + c)])
            squares[c] += Double(moments[2 * (n * channels + c) + 1])
        }
    }
}

/// y = x * scale[c] + shift[c]: normalisation, scale and shift folded into one pass; with
/// `adding`, y = that + adding (a residual block's sum, as `add` would add it); with `relu`,
/// y = max(that, 0), the ReLU after the normalisation (or the sum) in the same pass.
/// adding: `[N, C, S]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func channelAffine<T: Scalar>(
    _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, scale: UnsafePointer<T>, shift: UnsafePointer<T>,
    adding other: UnsafePointer<T>? = nil, relu: Bool, batch: Int, channels: Int, spatial: Int, only range: Range<Int>? = nil
) {
    let selected = range ?? 0..<channels
    if let other {
        for n in 0..<batch {
            for c in selected {
                let offset = (n * channels + c) * spatial
                let (a, b, x, y, other) = (scale[c], shift[c], x + offset, y + offset, other + offset)
                if relu {
                    for i in 0..<spatial { y[i] = max(x[i] * a + b + other[i], 0) }
                } else {
                    for i in 0..<spatial { y[i] = x[i] * a + b + other[i] }
                }
            }
        }
        return
    }
    if spatial == 1 {
        // After a dense layer: run along the channels, which are contiguous.
        for n in 0..<batch {
            let row = x + n * channels, out = y + n * channels
            if relu {
                for c in selected { out[c] = max(row[c] * scale[c] + shift[c], 0) }
            } else {
                for c in selected { out[c] = row[c] * scale[c] + shift[c] }
            }
        }
        return
    }
    for n in 0..<batch {
        for c in selected {
            let offset = (n * channels + c) * spatial
            let a = scale[c], b = shift[c]
            if relu {
                for i in 0..<spatial { y[offset + i] = max(x[offset + i] * a + b, 0) }
            } else {
                for i in 0..<spatial { y[offset + i] = x[offset + i] * a + b }
            }
        }
    }
}

/// The folded affine y = x * scale[c] + shift[c] of a `channelAffine` with relu, whose ReLU the
/// gradient passes back through: open where x * scale + shift > 0, the ReLU's output positive
/// (computed as the forward computed it, so the same lanes open; reading x, already read, rather
/// than y: one stream fewer in each backward pass).
public typealias ReLUAffine<T: Scalar> = (scale: UnsafePointer<T>, shift: UnsafePointer<T>)

/// The gradient that reaches the normalisation through a ReLU applied in `channelAffine`: dy
/// where the ReLU was open (`ReLUAffine`), else 0 (as `reluBackward`); dy itself without one.
@inline(__always)
func throughReLU<T: Scalar>(_ dy: T, input x: T, _ relu: ReLUAffine<T>?, channel c: Int) -> T {
    guard let relu else { return dy }
    let open: T = x * relu.scale[c] + relu.shift[c] > 0 ? 1 : 0
    return dy * open
}

/// sumDy[c] += sum of dy; sumDyXhat[c] += sum of dy * xhat, with xhat = (x - mean[c]) * inverseStd[c].
/// With `relu` (a `channelAffine` with relu), dy is the gradient after the ReLU.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func batchNormGradientSums<T: Scalar>(
    _ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, relu: ReLUAffine<T>?, mean: UnsafePointer<T>, inverseStd: UnsafePointer<T>,
    sumDy: UnsafeMutablePointer<Double>, sumDyXhat: UnsafeMutablePointer<Double>,
    batch: Int, channels: Int, spatial: Int, only range: Range<Int>? = nil
) {
    let selected = range ?? 0..<channels
    if spatial == 1 {
        for n in 0..<batch {
            let row = x + n * channels, grad = dy + n * channels
            for c in selected {
                let g = Double(throughReLU(grad[c], input: row[c], relu, channel: c))
                sumDy[c] += g
                sumDyXhat[c] += g * Double((row[c] - mean[c]) * inverseStd[c])
            }
        }
        return
    }
    for n in 0..<batch {
        for c in selected {
            // Per row in the element type (at most H*W values), across rows in Double.
            let offset = (n * channels + c) * spatial
            let (s, sx) = gradientSums(dy + offset, x + offset, relu: relu.map { ($0.scale[c], $0.shift[c]) }, mean: mean[c],
                                       inverseStd: inverseStd[c], count: spatial)
            sumDy[c] += Double(s)
            sumDyXhat[c] += Double(sx)
        }
    }
}

/// dx = gamma[c] * inverseStd[c] * (dy - meanDy[c] - xhat * meanDyXhat[c]), dy through the ReLU
/// as in `batchNormGradientSums`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func batchNormInputGradient<T: Scalar>(
    _ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, relu: ReLUAffine<T>?, _ dx: UnsafeMutablePointer<T>,
    mean: UnsafePointer<T>, inverseStd: UnsafePointer<T>, gamma: UnsafePointer<T>,
    meanDy: UnsafePointer<Double>, meanDyXhat: UnsafePointer<Double>,
    batch: Int, channels: Int, spatial: Int, only range: Range<Int>? = nil
) {
    let selected = range ?? 0..<channels
    if spatial == 1 {
        // After a dense layer: run along the channels, which are contiguous.
        for n in 0..<batch {
            let row = x + n * channels, grad = dy + n * channels, out = dx + n * channels
            if relu != nil {
                for c in selected {
                    let xhat = (row[c] - mean[c]) * inverseStd[c]
                    out[c] = gamma[c] * inverseStd[c] * (throughReLU(grad[c], input: row[c], relu, channel: c) - T(meanDy[c]) - xhat * T(meanDyXhat[c]))
                }
            } else {
                for c in selected {
                    let xhat = (row[c] - mean[c]) * inverseStd[c]
                    out[c] = gamma[c] * inverseStd[c] * (grad[c] - T(meanDy[c]) - xhat * T(meanDyXhat[c]))
                }
            }
        }
        return
    }
    for n in 0..<batch {
        for c in selected {
            let offset = (n * channels + c) * spatial
            let m = mean[c], r = inverseStd[c]
            let scale = gamma[c] * r, a = T(meanDy[c]), b = T(meanDyXhat[c])
            let grad = dy + offset
            // Unswitched as in `batchNormGradientSums`.
            if let relu {
                let reluScale = relu.scale[c], reluShift = relu.shift[c]
                for i in 0..<spatial {
                    let input = x[offset + i]
                    let xhat = (input - m) * r
                    let open: T = input * reluScale + reluShift > 0 ? 1 : 0
                    dx[offset + i] = scale * (grad[i] * open - a - xhat * b)
                }
            } else {
                for i in 0..<spatial {
                    let xhat = (x[offset + i] - m) * r
                    dx[offset + i] = scale * (grad[i] - a - xhat * b)
                }
            }
        }
    }
}

/// From sums[c] and squares[c], the sums of x and x² over `count` values of channel c: the batch
/// mean and 1 / sqrt(var + epsilon), the affine that `channelAffine` applies (scale = gamma *
/// inverseStd, shift = beta - mean * scale), and the running statistics moved by `momentum`
/// towards the batch's (the variance unbiased). Specialised, so that a generic layer's call is not
/// a value-witness call per operation.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func batchNormStatistics<T: Scalar>(
    sums: UnsafePointer<Double>, squares: UnsafePointer<Double>, count: Int, epsilon: Double, momentum: Double,
    gamma: UnsafePointer<T>, beta: UnsafePointer<T>, mean: UnsafeMutablePointer<T>, inverseStd: UnsafeMutablePointer<T>,
    scale: UnsafeMutablePointer<T>, shift: UnsafeMutablePointer<T>,
    runningMean: UnsafeMutablePointer<T>, runningVariance: UnsafeMutablePointer<T>, channels: Int
) {
    let m = Double(count)
    let keep = T(1 - momentum), take = T(momentum)
    for c in 0..<channels {
        let batchMean = sums[c] / m
        let variance = max(squares[c] / m - batchMean * batchMean, 0)
        mean[c] = T(batchMean)
        inverseStd[c] = T(1 / (variance + epsilon).squareRoot())
        scale[c] = gamma[c] * inverseStd[c]
        shift[c] = beta[c] - mean[c] * scale[c]
        let unbiased = count > 1 ? variance * m / (m - 1) : variance
        runningMean[c] = keep * runningMean[c] + take * T(batchMean)
        runningVariance[c] = keep * runningVariance[c] + take * T(unbiased)
    }
}

/// gammaGradient[c] += sumDyXhat[c], betaGradient[c] += sumDy[c]: the sums of
/// `batchNormGradientSums` added onto the parameter gradients.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func addAffineGradients<T: Scalar>(sumDy: UnsafePointer<Double>, sumDyXhat: UnsafePointer<Double>,
                                   gammaGradient: UnsafeMutablePointer<T>, betaGradient: UnsafeMutablePointer<T>, channels: Int) {
    for c in 0..<channels {
        gammaGradient[c] += T(sumDyXhat[c])
        betaGradient[c] += T(sumDy[c])
    }
}
