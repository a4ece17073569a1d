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
                for oy in 0..<oh {
                    let iy = oy * g.stride - g.padding + ki
                    let line = out + oy * ow
                    if iy < 0 || iy >= g.height {
                        line.update(repeating: 0, count: ow)
                        continue
                    }
                    let src = plane + iy * g.width
                    for ox in 0..<ow {
                        let ix = ox * g.stride - g.padding + kj
                        line[ox] = (ix >= 0 && ix < g.width) ? src[ix] : 0
                    }
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
                for oy in 0..<oh {
                    let iy = oy * g.stride - g.padding + ki
                    if iy < 0 || iy >= g.height { continue }
                    let dst = plane + iy * g.width
                    let line = src + oy * ow
                    for ox in 0..<ow {
                        let ix = ox * g.stride - g.padding + kj
                        if ix >= 0 && ix < g.width { dst[ix] += line[ox] }
                    }
                }
                row += 1
            }
        }
    }
}
