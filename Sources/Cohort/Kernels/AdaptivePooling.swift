/// The window of output cell `index` of `outputs` over an axis of `size` inputs, as PyTorch's
/// adaptive pooling draws it: [floor(index * size / outputs), ceil((index + 1) * size / outputs)).
@inline(__always)
func adaptiveWindow(_ index: Int, outputs: Int, size: Int) -> Range<Int> {
    (index * size / outputs)..<(((index + 1) * size + outputs - 1) / outputs)
}

/// Adaptive average pooling: each output cell is the mean of its window (`adaptiveWindow`), so
/// any input size maps to `[OH, OW]`; `[1, 1]` is global average pooling.
///
/// x: `[N, C, H, W]`; y: `[N, C, OH, OW]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func adaptiveAvgPoolForward<T: Scalar>(
    _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, planes: Int, height: Int, width: Int, outHeight: Int, outWidth: Int
) {
    for plane in 0..<planes {
        let src = x + plane * height * width
        let dst = y + plane * outHeight * outWidth
        for oy in 0..<outHeight {
            let rows = adaptiveWindow(oy, outputs: outHeight, size: height)
            for ox in 0..<outWidth {
                let columns = adaptiveWindow(ox, outputs: outWidth, size: width)
                var total: T = 0
                for iy in rows { total += sum(src + iy * width + columns.lowerBound, count: columns.count) }
                dst[oy * outWidth + ox] = total / T(rows.count * columns.count)
            }
        }
    }
}

/// Spreads each output gradient evenly over its window; windows may overlap, so shares add up.
///
/// dy: `[N, C, OH, OW]`; dx: `[N, C, H, W]`, overwritten.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func adaptiveAvgPoolBackward<T: Scalar>(
    _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, planes: Int, height: Int, width: Int, outHeight: Int, outWidth: Int
) {
    dx.update(repeating: 0, count: planes * height * width)
    for plane in 0..<planes {
        let src = dy + plane * outHeight * outWidth
        let dst = dx + plane * height * width
        for oy in 0..<outHeight {
            let rows = adaptiveWindow(oy, outputs: outHeight, size: height)
            for ox in 0..<outWidth {
                let columns = adaptiveWindow(ox, outputs: outWidth, size: width)
                let share = src[oy * outWidth + ox] / T(rows.count * columns.count)
                for iy in rows {
                    let row = dst + iy * width
                    for ix in columns { row[ix] += share }
                }
            }
        }
    }
}
