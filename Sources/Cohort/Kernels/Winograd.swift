/// Winograd's minimal filtering F(2x2, 3x3) for 3x3 convolutions of stride 1 (Lavin and Gray, "Fast
/// Algorithms for Convolutional Neural Networks", 2016).
///
/// Each 2x2 block of outputs ("tile") is `A^T [(G g G^T) . (B^T d B)] A` for the 4x4 input patch d
/// under it and the 3x3 filter g: 16 multiplications instead of 36. Summed over input channels, the
/// 16 element-wise products become 16 GEMMs, one per position ξ of the 4x4 transformed tile:
/// `M[ξ] (out x tiles) = U[ξ] (out x in) * V[ξ] (in x tiles)`. Backward runs the adjoints of the same
/// three transforms (`dM = A dY A^T`, `dU[ξ] = dM[ξ] V[ξ]^T`, `dV[ξ] = U[ξ]^T dM[ξ]`, `dg = G^T dU G`,
/// `dd = B dV B^T`), so forward and backward are exact transposes of each other in exact arithmetic.
///
///     B^T = [1  0 -1  0]     G = [1    0    0 ]     A^T = [1  1  1  0]
///           [0  1  1  0]         [1/2  1/2  1/2]           [0  1 -1 -1]
///           [0 -1  1  0]         [1/2 -1/2  1/2]
///           [0  1  0 -1]         [0    0    1 ]
///
/// Layouts: transformed tensors are `[16, C, T]` (ξ-major, then channel, then tile), a tile index
/// being `(n * tilesHigh + ty) * tilesWide + tx` over the images of one call. Tile (ty, tx) covers
/// outputs (2ty..2ty+1, 2tx..2tx+1) and reads inputs from row `2ty - padding`, column `2tx - padding`.
/// The transforms work on one row of tiles at a time with vectors over tx (even and odd input columns
/// apart), so that they vectorise; `WinogradTiling.scratchCount` elements of scratch serve them all.
public struct WinogradTiling: Equatable, Sendable {
    public let geometry: WindowGeometry
    public let outChannels: Int
    public let tilesHigh: Int, tilesWide: Int

    /// Whether F(2x2, 3x3) computes this convolution: a 3x3 kernel of stride 1.
    public static func applies(to g: WindowGeometry) -> Bool {
        g.kernel == 3 && g.stride == 1 && g.outHeight >= 1 && g.outWidth >= 1
    }

    public init(_ g: WindowGeometry, outChannels: Int) {
        precondition(Self.applies(to: g), "Winograd F(2x2, 3x3) needs a 3x3 kernel of stride 1")
        geometry = g
        self.outChannels = outChannels
        tilesHigh = (g.outHeight + 1) / 2
        tilesWide = (g.outWidth + 1) / 2
    }

    public var tilesPerImage: Int { tilesHigh * tilesWide }
    /// Columns of the padded input band a row of tiles reads: `2 * tilesWide + 2`.
    var bandWidth: Int { 2 * tilesWide + 2 }
    /// Elements of scratch every transform of this tiling needs.
    public var scratchCount: Int { 16 * (tilesWide + 1) + 4 * bandWidth }
}

/// U[ξ] = G g G^T for every filter. w: `[O, I, 3, 3]`; u: `[16, O, I]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func winogradTransformFilters<T: Scalar>(_ w: UnsafePointer<T>, _ u: UnsafeMutablePointer<T>,
                                                outChannels: Int, inChannels: Int) {
    let plane = outChannels * inChannels
    let half: T = 0.5
    for f in 0..<plane {
        let g = w + 9 * f
        // Row a of t = G g ([4, 3]) gives row a of U = t G^T.
        func store(_ a: Int, _ t0: T, _ t1: T, _ t2: T) {
            u[(4 * a) * plane + f] = t0
            u[(4 * a + 1) * plane + f] = half * (t0 + t1 + t2)
            u[(4 * a + 2) * plane + f] = half * (t0 - t1 + t2)
            u[(4 * a + 3) * plane + f] = t2
        }
        store(0, g[0], g[1], g[2])
        store(1, half * (g[0] + g[3] + g[6]), half * (g[1] + g[4] + g[7]), half * (g[2] + g[5] + g[8]))
        store(2, half * (g[0] - g[3] + g[6]), half * (g[1] - g[4] + g[7]), half * (g[2] - g[5] + g[8]))
        store(3, g[6], g[7], g[8])
    }
}

/// dw += G^T dU[ξ] G for every filter: the adjoint of `winogradTransformFilters`.
/// du: `[16, O, I]`; dw: `[O, I, 3, 3]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func winogradFilterGradient<T: Scalar>(_ du: UnsafePointer<T>, _ dw: UnsafeMutablePointer<T>,
                                              outChannels: Int, inChannels: Int) {
    let plane = outChannels * inChannels
    let half: T = 0.5
    for f in 0..<plane {
        // Row a of dt = dU G ([4, 3]).
        func row(_ a: Int) -> (T, T, T) {
            let d0 = du[(4 * a) * plane + f], d1 = du[(4 * a + 1) * plane + f]
            let d2 = du[(4 * a + 2) * plane + f], d3 = du[(4 * a + 3) * plane + f]
            return (d0 + half * (d1 + d2), half * (d1 - d2), half * (d1 + d2) + d3)
        }
        let t0 = row(0), t1 = row(1), t2 = row(2), t3 = row(3)
        // dg = G^T dt: [3, 3].
        let g = dw + 9 * f
        g[0] += t0.0 + half * (t1.0 + t2.0); g[1] += t0.1 + half * (t1.1 + t2.1); g[2] += t0.2 + half * (t1.2 + t2.2)
        g[3] += half * (t1.0 - t2.0); g[4] += half * (t1.1 - t2.1); g[5] += half * (t1.2 - t2.2)
        g[6] += half * (t1.0 + t2.0) + t3.0; g[7] += half * (t1.1 + t2.1) + t3.1; g[8] += half * (t1.2 + t2.2) + t3.2
    }
}

/// V[ξ] = B^T d B for every input patch of `images` images.
/// x: `[images, C, H, W]`; v: `[16, C, images * tilesPerImage]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func winogradTransformInput<T: Scalar>(_ x: UnsafePointer<T>, _ v: UnsafeMutablePointer<T>, images: Int,
                                              _ tiling: WinogradTiling, scratch: UnsafeMutablePointer<T>) {
    let g = tiling.geometry
    let tw = tiling.tilesWide, width = tiling.bandWidth
    let tiles = images * tiling.tilesPerImage
    let xiStride = g.channels * tiles
    // band[r]: input row 2ty - p + r over columns -p ..< -p + width, zero outside the image.
    let band = scratch
    band.update(repeating: 0, count: 4 * width)
    let columnRange = (g.padding, min(width, g.padding + g.width))
    for n in 0..<images {
        for c in 0..<g.channels {
            let plane = x + (n * g.channels + c) * g.height * g.width
            for ty in 0..<tiling.tilesHigh {
                for r in 0..<4 {
                    let iy = 2 * ty - g.padding + r
                    let row = band + r * width
                    if iy >= 0 && iy < g.height {
                        (row + columnRange.0).update(from: plane + iy * g.width, count: columnRange.1 - columnRange.0)
                    } else {
                        (row + columnRange.0).update(repeating: 0, count: columnRange.1 - columnRange.0)
                    }
                }
                // Columns first (B^T over the band's 4 rows), in place.
                let d0 = band, d1 = band + width, d2 = band + 2 * width, d3 = band + 3 * width
                for j in 0..<width {
                    let a0 = d0[j] - d2[j], a1 = d1[j] + d2[j], a2 = d2[j] - d1[j], a3 = d1[j] - d3[j]
                    d0[j] = a0; d1[j] = a1; d2[j] = a2; d3[j] = a3
                }
                let out = v + c * tiles + (n * tiling.tilesHigh + ty) * tw
                for a in 0..<4 {
                    let row = band + a * width
                    let v0 = out + (4 * a) * xiStride, v1 = out + (4 * a + 1) * xiStride
                    let v2 = out + (4 * a + 2) * xiStride, v3 = out + (4 * a + 3) * xiStride
                    for tx in 0..<tw {
                        let e0 = row[2 * tx], o0 = row[2 * tx + 1], e1 = row[2 * tx + 2], o1 = row[2 * tx + 3]
                        v0[tx] = e0 - e1
                        v1[tx] = o0 + e1
                        v2[tx] = e1 - o0
                        v3[tx] = o0 - o1
                    }
                }
            }
        }
    }
}

/// dx = B dV B^T scattered back onto the images: the adjoint of `winogradTransformInput`.
/// dv: `[16, C, images * tilesPerImage]`; dx: `[images, C, H, W]`, overwritten.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func winogradInputGradient<T: Scalar>(_ dv: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, images: Int,
                                             _ tiling: WinogradTiling, scratch: UnsafeMutablePointer<T>) {
    let g = tiling.geometry
    let tw = tiling.tilesWide, width = tiling.bandWidth
    let tiles = images * tiling.tilesPerImage
    let xiStride = g.channels * tiles
    // w[a][s]: the row pass's result per tile, `[4, 4, tw + 1]` with a zero entry at tw.
    let w = scratch
    let lane = tw + 1
    let band = scratch + 16 * lane
    dx.update(repeating: 0, count: images * g.inputSize)
    for i in 0..<16 { w[i * lane + tw] = 0 }
    for n in 0..<images {
        for c in 0..<g.channels {
            let plane = dx + (n * g.channels + c) * g.height * g.width
            for ty in 0..<tiling.tilesHigh {
                let src = dv + c * tiles + (n * tiling.tilesHigh + ty) * tw
                // Rows of the tile (b over the 4x4 transformed tile): w[a][s] = sum_b dV[a][b] B^T[b][s].
                for a in 0..<4 {
                    let s0 = src + (4 * a) * xiStride, s1 = src + (4 * a + 1) * xiStride
                    let s2 = src + (4 * a + 2) * xiStride, s3 = src + (4 * a + 3) * xiStride
                    let w0 = w + (4 * a) * lane, w1 = w + (4 * a + 1) * lane
                    let w2 = w + (4 * a + 2) * lane, w3 = w + (4 * a + 3) * lane
                    for tx in 0..<tw {
                        let d0 = s0[tx], d1 = s1[tx], d2 = s2[tx], d3 = s3[tx]
                        w0[tx] = d0
                        w1[tx] = d1 - d2 + d3
                        w2[tx] = d1 + d2 - d0
                        w3[tx] = -d3
                    }
                }
                // Interleave onto the band's columns: tile tx adds columns 2tx..2tx+3, so even column
                // 2k gathers s = 0 of tile k and s = 2 of tile k - 1, odd column 2k + 1 s = 1 and s = 3.
                for a in 0..<4 {
                    let row = band + a * width
                    let w0 = w + (4 * a) * lane, w1 = w + (4 * a + 1) * lane
                    let w2 = w + (4 * a + 2) * lane, w3 = w + (4 * a + 3) * lane
                    row[0] = w0[0]
                    row[1] = w1[0]
                    for k in 1...tw {
                        row[2 * k] = w0[k] + w2[k - 1]
                        row[2 * k + 1] = w1[k] + w3[k - 1]
                    }
                }
                // Columns of the tile (a over its rows), added onto the image rows the band covers.
                let b0 = band, b1 = band + width, b2 = band + 2 * width, b3 = band + 3 * width
                for j in 0..<width {
                    let e0 = b0[j], e1 = b1[j], e2 = b2[j], e3 = b3[j]
                    b0[j] = e0
                    b1[j] = e1 - e2 + e3
                    b2[j] = e1 + e2 - e0
                    b3[j] = -e3
                }
                let first = g.padding, count = min(width, g.padding + g.width) - g.padding
                for r in 0..<4 {
                    let iy = 2 * ty - g.padding + r
                    guard iy >= 0 && iy < g.height else { continue }
                    let target = plane + iy * g.width
                    let row = band + r * width + first
                    for j in 0..<count { target[j] += row[j] }
                }
            }
        }
    }
}

/// y = A^T M[ξ] A for every tile: the convolution's outputs.
/// m: `[16, O, images * tilesPerImage]`; y: `[images, O, OH, OW]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func winogradTransformOutput<T: Scalar>(_ m: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, images: Int,
                                               _ tiling: WinogradTiling, scratch: UnsafeMutablePointer<T>) {
    let g = tiling.geometry
    let o = tiling.outChannels, tw = tiling.tilesWide
    let tiles = images * tiling.tilesPerImage
    let xiStride = o * tiles
    let oh = g.outHeight, ow = g.outWidth
    let top = scratch, bottom = scratch + 2 * tw
    for n in 0..<images {
        for c in 0..<o {
            let plane = y + (n * o + c) * oh * ow
            for ty in 0..<tiling.tilesHigh {
                let src = m + c * tiles + (n * tiling.tilesHigh + ty) * tw
                for tx in 0..<tw {
                    var s = (T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0))
                    // Rows: s[0][b] = m0b + m1b + m2b, s[1][b] = m1b - m2b - m3b.
                    let m00 = src[tx], m01 = src[xiStride + tx], m02 = src[2 * xiStride + tx], m03 = src[3 * xiStride + tx]
                    let m10 = src[4 * xiStride + tx], m11 = src[5 * xiStride + tx]
                    let m12 = src[6 * xiStride + tx], m13 = src[7 * xiStride + tx]
                    let m20 = src[8 * xiStride + tx], m21 = src[9 * xiStride + tx]
                    let m22 = src[10 * xiStride + tx], m23 = src[11 * xiStride + tx]
                    let m30 = src[12 * xiStride + tx], m31 = src[13 * xiStride + tx]
                    let m32 = src[14 * xiStride + tx], m33 = src[15 * xiStride + tx]
                    s.0 = m00 + m10 + m20; s.1 = m01 + m11 + m21; s.2 = m02 + m12 + m22; s.3 = m03 + m13 + m23
                    s.4 = m10 - m20 - m30; s.5 = m11 - m21 - m31; s.6 = m12 - m22 - m32; s.7 = m13 - m23 - m33
                    top[2 * tx] = s.0 + s.1 + s.2
                    top[2 * tx + 1] = s.1 - s.2 - s.3
                    bottom[2 * tx] = s.4 + s.5 + s.6
                    bottom[2 * tx + 1] = s.5 - s.6 - s.7
                }
                let oy = 2 * ty
                (plane + oy * ow).update(from: top, count: ow)
                if oy + 1 < oh { (plane + (oy + 1) * ow).update(from: bottom, count: ow) }
            }
        }
    }
}

/// dM[ξ] = A dY A^T for every tile: the adjoint of `winogradTransformOutput`.
/// dy: `[images, O, OH, OW]`; dm: `[16, O, images * tilesPerImage]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func winogradOutputGradient<T: Scalar>(_ dy: UnsafePointer<T>, _ dm: UnsafeMutablePointer<T>, images: Int,
                                              _ tiling: WinogradTiling, scratch: UnsafeMutablePointer<T>) {
    let g = tiling.geometry
    let o = tiling.outChannels, tw = tiling.tilesWide
    let tiles = images * tiling.tilesPerImage
    let xiStride = o * tiles
    let oh = g.outHeight, ow = g.outWidth
    // The two output rows of a row of tiles, zero past the image's last row and column.
    let top = scratch, bottom = scratch + 2 * tw
    top.update(repeating: 0, count: 4 * tw)
    for n in 0..<images {
        for c in 0..<o {
            let plane = dy + (n * o + c) * oh * ow
            for ty in 0..<tiling.tilesHigh {
                let oy = 2 * ty
                top.update(from: plane + oy * ow, count: ow)
                if oy + 1 < oh {
                    bottom.update(from: plane + (oy + 1) * ow, count: ow)
                } else {
                    bottom.update(repeating: 0, count: ow)
                }
                let out = dm + c * tiles + (n * tiling.tilesHigh + ty) * tw
                for tx in 0..<tw {
                    let y00 = top[2 * tx], y01 = top[2 * tx + 1], y10 = bottom[2 * tx], y11 = bottom[2 * tx + 1]
                    // q = A dY: [4, 2]; dM = q A^T: [4, 4].
                    let q00 = y00, q01 = y01
                    let q10 = y00 + y10, q11 = y01 + y11
                    let q20 = y00 - y10, q21 = y01 - y11
                    let q30 = -y10, q31 = -y11
                    out[tx] = q00; out[xiStride + tx] = q00 + q01
                    out[2 * xiStride + tx] = q00 - q01; out[3 * xiStride + tx] = -q01
                    out[4 * xiStride + tx] = q10; out[5 * xiStride + tx] = q10 + q11
                    out[6 * xiStride + tx] = q10 - q11; out[7 * xiStride + tx] = -q11
                    out[8 * xiStride + tx] = q20; out[9 * xiStride + tx] = q20 + q21
                    out[10 * xiStride + tx] = q20 - q21; out[11 * xiStride + tx] = -q21
                    out[12 * xiStride + tx] = q30; out[13 * xiStride + tx] = q30 + q31
                    out[14 * xiStride + tx] = q30 - q31; out[15 * xiStride + tx] = -q31
                }
            }
        }
    }
}
