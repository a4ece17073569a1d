/// Max pooling of a batch of images, remembering where each maximum came from.
///
/// x: `[N, C, H, W]`; y, argmax: `[N, C, OH, OW]`; argmax holds the offset of the maximum within its `[H, W]` plane.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func maxPoolForward<T: Scalar>(
    _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ argmax: UnsafeMutablePointer<Int32>,
    batch: Int, _ g: WindowGeometry
) {
    let oh = g.outHeight, ow = g.outWidth, planeSize = g.height * g.width
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

/// Routes each output gradient to the input that was the maximum.
///
/// dy, argmax: `[N, C, OH, OW]`; dx: `[N, C, H, W]`, overwritten.
@_specialize(where T == Float)
@_specialize(where T == Double)
public func maxPoolBackward<T: Scalar>(
    _ dy: UnsafePointer<T>, _ argmax: UnsafePointer<Int32>, _ dx: UnsafeMutablePointer<T>,
    batch: Int, _ g: WindowGeometry
) {
    let outPlane = g.outHeight * g.outWidth, planeSize = g.height * g.width
    dx.update(repeating: 0, count: batch * g.channels * planeSize)
    for plane in 0..<(batch * g.channels) {
        let d = dx + plane * planeSize
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
