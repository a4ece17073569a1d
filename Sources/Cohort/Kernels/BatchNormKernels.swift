/// The per-channel passes of batch normalization. x, y, dy, dx: `[N, C, S]` (S = H*W, or 1 after a
/// dense layer); per-channel vectors: `[C]`. Sums are accumulated in Double.

/// sums[c] += sum of x[., c, .]; squares[c] += sum of x^2.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func channelMoments<T: Scalar>(
    _ x: UnsafePointer<T>, sums: UnsafeMutablePointer<Double>, squares: UnsafeMutablePointer<Double>,
    batch: Int, channels: Int, spatial: Int
) {
    if spatial == 1 {
        // After a dense layer: one value per channel and sample, so run along the channels.
        for n in 0..<batch {
            let row = x + n * channels
            for c in 0..<channels {
                let v = Double(row[c])
                sums[c] += v
                squares[c] += v * v
            }
        }
        return
    }
    for n in 0..<batch {
        for c in 0..<channels {
            // Per row in the element type (at most H*W values), across rows in Double.
            let (s, q) = sumAndSquares(x + (n * channels + c) * spatial, count: spatial)
            sums[c] += Double(s)
            squares[c] += Double(q)
        }
    }
}

/// y = x * scale[c] + shift[c]: normalisation, scale and shift folded into one pass.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func channelAffine<T: Scalar>(
    _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, scale: UnsafePointer<T>, shift: UnsafePointer<T>,
    batch: Int, channels: Int, spatial: Int
) {
    for n in 0..<batch {
        for c in 0..<channels {
            let offset = (n * channels + c) * spatial
            let a = scale[c], b = shift[c]
            for i in 0..<spatial { y[offset + i] = x[offset + i] * a + b }
        }
    }
}

/// sumDy[c] += sum of dy; sumDyXhat[c] += sum of dy * xhat, with xhat = (x - mean[c]) * inverseStd[c].
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func batchNormGradientSums<T: Scalar>(
    _ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, mean: UnsafePointer<T>, inverseStd: UnsafePointer<T>,
    sumDy: UnsafeMutablePointer<Double>, sumDyXhat: UnsafeMutablePointer<Double>,
    batch: Int, channels: Int, spatial: Int
) {
    if spatial == 1 {
        for n in 0..<batch {
            let row = x + n * channels, grad = dy + n * channels
            for c in 0..<channels {
                let g = Double(grad[c])
                sumDy[c] += g
                sumDyXhat[c] += g * Double((row[c] - mean[c]) * inverseStd[c])
            }
        }
        return
    }
    for n in 0..<batch {
        for c in 0..<channels {
            let offset = (n * channels + c) * spatial
            let m = mean[c], r = inverseStd[c]
            var s: T = 0, sx: T = 0
            for i in 0..<spatial {
                let g = dy[offset + i]
                s += g
                sx += g * (x[offset + i] - m) * r
            }
            sumDy[c] += Double(s)
            sumDyXhat[c] += Double(sx)
        }
    }
}

/// dx = gamma[c] * inverseStd[c] * (dy - meanDy[c] - xhat * meanDyXhat[c]).
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func batchNormInputGradient<T: Scalar>(
    _ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>,
    mean: UnsafePointer<T>, inverseStd: UnsafePointer<T>, gamma: UnsafePointer<T>,
    meanDy: UnsafePointer<Double>, meanDyXhat: UnsafePointer<Double>,
    batch: Int, channels: Int, spatial: Int
) {
    for n in 0..<batch {
        for c in 0..<channels {
            let offset = (n * channels + c) * spatial
            let m = mean[c], r = inverseStd[c]
            let scale = gamma[c] * r, a = T(meanDy[c]), b = T(meanDyXhat[c])
            for i in 0..<spatial {
                let xhat = (x[offset + i] - m) * r
                dx[offset + i] = scale * (dy[offset + i] - a - xhat * b)
            }
        }
    }
}
