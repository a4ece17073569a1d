/// Geometry of a square 2-d convolution or pooling window over one `[C, H, W]` image.
public struct WindowGeometry: Equatable, Sendable {
    public var channels: Int, height: Int, width: Int
    public var kernel: Int, stride: Int, padding: Int

    public init(channels: Int, height: Int, width: Int, kernel: Int, stride: Int, padding: Int) {
        self.channels = channels; self.height = height; self.width = width
        self.kernel = kernel; self.stride = stride; self.padding = padding
    }

    /// Output rows; 0 when the window does not fit the padded input.
    public var outHeight: Int { height + 2 * padding < kernel ? 0 : (height + 2 * padding - kernel) / stride + 1 }
    public var outWidth: Int { width + 2 * padding < kernel ? 0 : (width + 2 * padding - kernel) / stride + 1 }
    /// Rows of the column matrix: `C * K * K`.
    public var patchSize: Int { channels * kernel * kernel }
    public var inputSize: Int { channels * height * width }

    /// The output columns `first..<end` whose input column `ox * stride - padding + kj` lies inside the image.
    @inline(__always)
    func validOutputColumns(_ kj: Int) -> (first: Int, end: Int) {
        // ix >= 0  <=>  ox >= ceil((padding - kj) / stride);  ix < width  <=>  ox <= (width - 1 + padding - kj) / stride
        let low = padding - kj
        let first = low <= 0 ? 0 : (low + stride - 1) / stride
        let highNumerator = width - 1 + padding - kj
        let end = highNumerator < 0 ? 0 : min(outWidth, highNumerator / stride + 1)
        return (min(first, outWidth), end)
    }
}

/// Unfolds one image into columns so that a convolution becomes one GEMM.
///
/// x: `[C, H, W]`; cols: `[C*K*K, OH*OW]`, row `(c*K + ki)*K + kj`, zero where the window leaves the padded image.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func im2col<T: Scalar>(_ x: UnsafePointer<T>, _ cols: UnsafeMutablePointer<T>, _ g: WindowGeometry) {
    let oh = g.outHeight, ow = g.outWidth, k = g.kernel
    var row = 0
    for c in 0..<g.channels {
        let plane = x + c * g.height * g.width
        for ki in 0..<k {
            for kj in 0..<k {
                let out = cols + row * oh * ow
                let (first, end) = g.validOutputColumns(kj)
                for oy in 0..<oh {
                    let iy = oy * g.stride - g.padding + ki
                    let line = out + oy * ow
                    if iy < 0 || iy >= g.height {
                        line.update(repeating: 0, count: ow)
                        continue
                    }
                    let src = plane + iy * g.width - g.padding + kj
                    if first > 0 { line.update(repeating: 0, count: first) }
                    if g.stride == 1 {
                        if end > first { (line + first).update(from: src + first, count: end - first) }
                    } else {
                        for ox in first..<max(first, end) { line[ox] = src[ox * g.stride] }
                    }
                    if end < ow { (line + max(end, 0)).update(repeating: 0, count: ow - max(end, 0)) }
                }
                row += 1
            }
        }
    }
}

/// Folds columns back into an image, summing overlapping windows: the adjoint of `im2col`.
///
/// cols: `[C*K*K, OH*OW]`; dx: `[C, H, W]`, overwritten.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func col2im<T: Scalar>(_ cols: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, _ g: WindowGeometry) {
    let oh = g.outHeight, ow = g.outWidth, k = g.kernel
    dx.update(repeating: 0, count: g.inputSize)
    var row = 0
    for c in 0..<g.channels {
        let plane = dx + c * g.height * g.width
        for ki in 0..<k {
            for kj in 0..<k {
                let src = cols + row * oh * ow
                let (first, end) = g.validOutputColumns(kj)
                for oy in 0..<oh {
                    let iy = oy * g.stride - g.padding + ki
                    if iy < 0 || iy >= g.height { continue }
                    let dst = plane + iy * g.width - g.padding + kj
                    let line = src + oy * ow
                    for ox in first..<max(first, end) { dst[ox * g.stride] += line[ox] }
                }
                row += 1
            }
        }
    }
}
