/// Max pooling of a batch of images, remembering where each maximum came from.
///
/// x: `[N, C, H, W]`; y, argmax: `[N, C, OH, OW]`; argmax holds the offset of the maximum within its `[H, W]` plane.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func maxPoolForward<T: Scalar>(
    _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ argmax: UnsafeMutablePointer<Int32>,
    batch: Int, _ g: WindowGeometry
) {
    let oh = g.outHeight, ow = g.outWidth, planeSize = g.height * g.width
    if g.padding == 0 {
        maxPoolForwardUnpadded(x, y, argmax, planes: batch * g.channels, g)
        return
    }
    for plane in 0..<(batch * g.channels) {
        let src = x + plane * planeSize
        let dst = y + plane * oh * ow
        let arg = argmax + plane * oh * ow
        for oy in 0..<oh {
            for ox in 0..<ow {
                var best = -T.infinity
                var bestIndex = -1
                for ki in 0..<g.kernel {
                    let iy = oy * g.stride - g.padding + ki
                    if iy < 0 || iy >= g.height { continue }
                    for kj in 0..<g.kernel {
                        let ix = ox * g.stride - g.padding + kj
                        if ix < 0 || ix >= g.width { continue }
                        let v = src[iy * g.width + ix]
                        if v > best || bestIndex < 0 || v.isNaN { best = v; bestIndex = iy * g.width + ix }
                    }
                }
                dst[oy * ow + ox] = best
                arg[oy * ow + ox] = Int32(bestIndex)
            }
        }
    }
}

/// Max pooling without padding, where every window lies inside the image: no bounds checks, and
/// the running maximum is chosen by selects, not branches (which the random data would mispredict).
@inline(__always)
private func maxPoolForwardUnpadded<T: Scalar>(
    _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ argmax: UnsafeMutablePointer<Int32>,
    planes: Int, _ g: WindowGeometry
) {
    let oh = g.outHeight, ow = g.outWidth, w = g.width, planeSize = g.height * g.width
    if g.kernel == 2 && g.stride == 2 {
        maxPool2x2(x, y, argmax, planes: planes, g)
        return
    }
    for plane in 0..<planes {
        let src = x + plane * planeSize
        let dst = y + plane * oh * ow
        let arg = argmax + plane * oh * ow
        for oy in 0..<oh {
            for ox in 0..<ow {
                let corner = oy * g.stride * w + ox * g.stride
                var best = src[corner]
                var bestIndex = Int32(corner)
                for ki in 0..<g.kernel {
                    for kj in 0..<g.kernel {
                        let index = corner + ki * w + kj
                        let v = src[index]
                        let take = v > best || v != v
                        best = take ? v : best
                        bestIndex = take ? Int32(index) : bestIndex
                    }
                }
                dst[oy * ow + ox] = best
                arg[oy * ow + ox] = bestIndex
            }
        }
    }
}

/// The commonest pooling, 2x2 windows with stride 2, in two vectorisable passes over a run of
/// output rows: the element-wise maximum of each pair of input rows, with the offset of the value
/// that won, into scratch rows of 2 OW values (contiguous, a last odd column left out); then the
/// maximum of each pair of neighbours, over the whole run in one loop. Pairs never straddle two
/// rows, and the run's outputs are contiguous: the rows of 14 and 7 outputs of the cnn workload,
/// taken one by one, spent much of their time in the scalar tails of vector loops (pooling's
/// forward: 7.4-7.9 % of one-core cnn profiles on a Zen 4, 2.8-3.1 % in runs of up to 128 outputs).
/// A run's scratch stays within the 1 KB that `withUnsafeTemporaryAllocation` always takes from
/// the stack (above it, the standard library asks the thread for its stack's bounds on each call).
/// No branches: the data's random order would mispredict them.
/// Ties go to the first position in row-major order, as PyTorch's scan does.
@inline(__always)
private func maxPool2x2<T: Scalar>(
    _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ argmax: UnsafeMutablePointer<Int32>,
    planes: Int, _ g: WindowGeometry
) {
    let oh = g.outHeight, ow = g.outWidth, w = g.width, planeSize = g.height * g.width
    let columns = 2 * ow, rowsPerRun = max(1, 512 / MemoryLayout<T>.stride / ow)
    withUnsafeTemporaryAllocation(of: T.self, capacity: rowsPerRun * columns) { rowMaxima in
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: rowsPerRun * columns) { rowOffsets in
            let maxima = rowMaxima.baseAddress!, offsets = rowOffsets.baseAddress!
            for plane in 0..<planes {
                let src = x + plane * planeSize, out = plane * oh * ow
                for firstRow in stride(from: 0, to: oh, by: rowsPerRun) {
                    let rows = min(rowsPerRun, oh - firstRow)
                    for r in 0..<rows {
                        let oy = firstRow + r
                        let top = src + 2 * oy * w, bottom = top + w
                        let best = maxima + r * columns, at = offsets + r * columns
                        let first = Int32(2 * oy * w)
                        for i in 0..<columns {
                            let below = bottom[i] > top[i]
                            best[i] = below ? bottom[i] : top[i]
                            at[i] = first + Int32(i) + (below ? Int32(w) : 0)
                        }
                    }
                    maxOfPairs(maxima, offsets, y + out + firstRow * ow, argmax + out + firstRow * ow, count: rows * ow)
                }
            }
        }
    }
}

/// y[k] = the larger of values[2k] and values[2k + 1] (`max`'s choice), argmax[k] the offset of
/// the one that wins: the right one if larger, or if equal and at a smaller offset (the left
/// one's maximum in the bottom row, the right one's in the top row), which is the first of the
/// window in row-major order.
@inline(__always)
private func maxOfPairs<T: Scalar>(
    _ values: UnsafePointer<T>, _ offsets: UnsafePointer<Int32>, _ y: UnsafeMutablePointer<T>,
    _ argmax: UnsafeMutablePointer<Int32>, count: Int
) {
    for k in 0..<count {
        let l = values[2 * k], r = values[2 * k + 1], left = offsets[2 * k], right = offsets[2 * k + 1]
        let takesRight = r > l || (r == l && right < left)
        y[k] = max(l, r)
        argmax[k] = takesRight ? right : left
    }
}

/// Routes each output gradient to the input that was the maximum.
///
/// dy, argmax: `[N, C, OH, OW]`; dx: `[N, C, H, W]`, overwritten.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func maxPoolBackward<T: Scalar>(
    _ dy: UnsafePointer<T>, _ argmax: UnsafePointer<Int32>, _ dx: UnsafeMutablePointer<T>,
    batch: Int, _ g: WindowGeometry
) {
    let outPlane = g.outHeight * g.outWidth, planeSize = g.height * g.width
    for plane in 0..<(batch * g.channels) {
        // Zeroed plane by plane, so that the scatter finds it in cache.
        let d = dx + plane * planeSize
        d.update(repeating: 0, count: planeSize)
        for o in 0..<outPlane {
            d[Int(argmax[plane * outPlane + o])] += dy[plane * outPlane + o]
        }
    }
}

/// Average pooling; padded positions count as zeros in the average, as PyTorch's default.
///
/// x: `[N, C, H, W]`; y: `[N, C, OH, OW]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func avgPoolForward<T: Scalar>(
    _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, batch: Int, _ g: WindowGeometry
) {
    let oh = g.outHeight, ow = g.outWidth, planeSize = g.height * g.width
    let scale = 1 / T(g.kernel * g.kernel)
    for plane in 0..<(batch * g.channels) {
        let src = x + plane * planeSize
        let dst = y + plane * oh * ow
        for oy in 0..<oh {
            for ox in 0..<ow {
                var sum: T = 0
                for ki in 0..<g.kernel {
                    let iy = oy * g.stride - g.padding + ki
                    if iy < 0 || iy >= g.height { continue }
                    for kj in 0..<g.kernel {
                        let ix = ox * g.stride - g.padding + kj
                        if ix >= 0 && ix < g.width { sum += src[iy * g.width + ix] }
                    }
                }
                dst[oy * ow + ox] = sum * scale
            }
        }
    }
}

/// Spreads each output gradient evenly over its window.
///
/// dy: `[N, C, OH, OW]`; dx: `[N, C, H, W]`, overwritten.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func avgPoolBackward<T: Scalar>(
    _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, batch: Int, _ g: WindowGeometry
) {
    let oh = g.outHeight, ow = g.outWidth, planeSize = g.height * g.width
    let scale = 1 / T(g.kernel * g.kernel)
    dx.update(repeating: 0, count: batch * g.channels * planeSize)
    for plane in 0..<(batch * g.channels) {
        let src = dy + plane * oh * ow
        let dst = dx + plane * planeSize
        for oy in 0..<oh {
            for ox in 0..<ow {
                let share = src[oy * ow + ox] * scale
                for ki in 0..<g.kernel {
                    let iy = oy * g.stride - g.padding + ki
                    if iy < 0 || iy >= g.height { continue }
                    for kj in 0..<g.kernel {
                        let ix = ox * g.stride - g.padding + kj
                        if ix >= 0 && ix < g.width { dst[iy * g.width + ix] += share }
                    }
                }
            }
        }
    }
}
