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
/// being `(n * tilesHigh + ty) * tilesWide + tx` over the images of one call, with at least 8
/// elements of slack after each ξ (`WinogradTiling.transformedStride`). Tile (ty, tx) covers
/// outputs (2ty..2ty+1, 2tx..2tx+1) and reads inputs from row `2ty - padding`, column `2tx - padding`.
/// The transforms work a row of tiles at a time in vectors of 8 tiles (even and odd columns apart
/// through SIMD16's halves), or two rows when a row holds 4 tiles (maps 7 or 8 wide:
/// `WinogradTiling.pairsRows`), so that no lane computes a tile that is thrown away. A row's last
/// vector may overhang into tiles written later (the next row's, the next image's) or the slack,
/// but never into the next channel's, so that threads can transform different channels at once;
/// `WinogradTiling.scratchCount` elements of scratch serve every transform.
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
    /// Tiles of a row rounded up to whole vectors of 8.
    var lanes: Int { (tilesWide + 7) / 8 * 8 }
    /// Whether a vector of 8 tiles holds two rows of 4 (one core, batch 32, 64 channels of 8 x 8:
    /// the input transform 0.32 ms a layer, as much as on 32 channels of 16 x 16, when each vector
    /// computed a row of 4 and 4 tiles of the next row to be thrown away).
    var pairsRows: Bool { tilesWide == 4 }
    /// Rows of tiles in a vector: 2 when `pairsRows`, else 1.
    var rowsPerVector: Int { pairsRows ? 2 : 1 }
    /// Whether the output transforms can read and write the output rows where they are: rows of
    /// whole vectors of tiles (outputs a multiple of 16 wide) and an even number of them.
    var outputRowsInPlace: Bool { geometry.outWidth == 2 * lanes && geometry.outHeight % 2 == 0 }
    /// Stride of a row of the band of 4 input rows (padded image columns -p ..< 2 * lanes + 16 - p).
    var bandStride: Int { 2 * lanes + 16 }
    /// Elements of scratch every transform of this tiling needs: two bands per row of tiles in a
    /// vector, and 16 rows of tiles per row of tiles in a vector, or a row of zeros.
    public var scratchCount: Int {
        rowsPerVector * 8 * bandStride + max(rowsPerVector * 16 * (lanes + 16), geometry.width)
    }

    /// Elements from one ξ to the next of a transformed tensor of `channels` channels over `images`
    /// images: the tiles and 8 of slack, rounded up to a cache line, so that every ξ starts on one
    /// (with `Buffer`'s alignment) and the 16 of a transform's streams fall in different cache sets
    /// (resnet20 on one core: 368 -> 382 images/s, medians of 6 alternating runs).
    public func transformedStride(channels: Int, images: Int) -> Int { (channels * images * tilesPerImage + 8 + 15) / 16 * 16 }
    /// Elements of a transformed tensor of `channels` channels over `images` images.
    public func transformedCount(channels: Int, images: Int) -> Int { 16 * transformedStride(channels: channels, images: images) }
}

/// The rows of tiles in a vector of 8 tiles, as a type, so that a transform is compiled once for
/// each count with the count a constant, and the one-row loops stay as fast as before pairing.
protocol RowsOfTiles { static var count: Int { get } }
enum OneRowOfTiles: RowsOfTiles { static var count: Int { 1 } }
enum TwoRowsOfTiles: RowsOfTiles { static var count: Int { 2 } }

@inline(__always)
private func load8<T: Scalar>(_ p: UnsafePointer<T>) -> SIMD8<T> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<T>.self)
}

@inline(__always)
private func load16<T: Scalar>(_ p: UnsafePointer<T>) -> SIMD16<T> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<T>.self)
}

@inline(__always)
private func store<V: SIMD>(_ v: V, _ p: UnsafeMutablePointer<V.Scalar>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
}

/// The first `count` lanes of v (all 8 when count >= 8): a row's last vector near the end of a
/// channel, which must not spill into the next channel's tiles, another thread's (`forEachVector`).
@inline(__always)
private func store<T: Scalar>(_ v: SIMD8<T>, _ p: UnsafeMutablePointer<T>, lanes count: Int) {
    if count >= 8 { return store(v, p) }
    storePrefix(v, p, count: count)
}

/// Out of line, so that it does not weigh on the loops around it; by the bits of `count` (< 8), in
/// at most three stores of 4, 2 and 1 lanes, rather than lane by lane (the last row of tiles of
/// every 14 x 14 plane ends here: 3 % of a cnn worker's samples as a loop over the lanes).
@inline(never)
private func storePrefix<T: Scalar>(_ v: SIMD8<T>, _ p: UnsafeMutablePointer<T>, count: Int) {
    var p = p, rest = v.lowHalf
    if count & 4 != 0 {
        store(v.lowHalf, p)
        p += 4
        rest = v.highHalf
    }
    var last = rest.lowHalf
    if count & 2 != 0 {
        store(rest.lowHalf, p)
        p += 2
        last = rest.highHalf
    }
    if count & 1 != 0 { p.pointee = last[0] }
}

/// body(tx, lanes) over a row of `count` tiles in vectors of 8, `left` tiles of the channel from
/// the row's first on. A last vector that overhangs the row stores all 8 lanes while they fall in
/// tiles of the channel (tiles the same thread writes later: the next rows of tiles, the next
/// image's), and only those that do near the channel's end, where the next tiles are the next
/// channel's, possibly another thread's. Rows of fewer than 4 tiles (maps of up to 6 outputs) reach
/// past the next row: deciding by "the channel's last row" alone, their second-to-last row
/// overwrote the next channel's first tiles (the team test on 4 x 4 maps).
@inline(__always)
private func forEachVector(of count: Int, tilesLeftInChannel left: Int, _ body: (_ first: Int, _ lanes: Int) -> Void) {
    var tx = 0
    while tx + 8 <= count {
        body(tx, 8)
        tx += 8
    }
    if tx < count { body(tx, min(8, left - tx)) }
}

/// a[0], b[0], a[1], b[1], ...
@inline(__always)
private func interleave<T: Scalar>(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD16<T> {
    var r = SIMD16<T>()
    r.evenHalf = a
    r.oddHalf = b
    return r
}

/// U[ξ] = G g G^T for every filter. w: `[O, I, 3, 3]`; u: `[16, O, I]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func winogradTransformFilters<T: Scalar>(_ w: UnsafePointer<T>, _ u: UnsafeMutablePointer<T>,
                                                outChannels: Int, inChannels: Int) {
    let plane = outChannels * inChannels
    // 16 filters at a time, each value of a filter gathered into a vector, so that every store of
    // U is a vector along the filters (one filter at a time, this ran as scalar code: 2.8 % of a
    // resnetish step). The last run may hold fewer filters (`VectorLanes`).
    let half = SIMD16<T>(repeating: 0.5)
    for lanes in VectorLanes.over(plane) {
        var g = (SIMD16<T>(), SIMD16<T>(), SIMD16<T>(), SIMD16<T>(), SIMD16<T>(), SIMD16<T>(), SIMD16<T>(), SIMD16<T>(), SIMD16<T>())
        for l in 0..<lanes.width {
            let filter = w + 9 * (lanes.start + l)
            g.0[l] = filter[0]; g.1[l] = filter[1]; g.2[l] = filter[2]
            g.3[l] = filter[3]; g.4[l] = filter[4]; g.5[l] = filter[5]
            g.6[l] = filter[6]; g.7[l] = filter[7]; g.8[l] = filter[8]
        }
        // Row a of t = G g ([4, 3]) gives row a of U = t G^T: (t0, t1, t2) G^T at planes 4a ..< 4a + 4.
        @inline(__always) func row(_ out: UnsafeMutablePointer<T>, _ t0: SIMD16<T>, _ t1: SIMD16<T>, _ t2: SIMD16<T>) {
            lanes.store(t0, out)
            lanes.store(half * (t0 + t1 + t2), out + plane)
            lanes.store(half * (t0 - t1 + t2), out + 2 * plane)
            lanes.store(t2, out + 3 * plane)
        }
        row(u, g.0, g.1, g.2)
        row(u + 4 * plane, half * (g.0 + g.3 + g.6), half * (g.1 + g.4 + g.7), half * (g.2 + g.5 + g.8))
        row(u + 8 * plane, half * (g.0 - g.3 + g.6), half * (g.1 - g.4 + g.7), half * (g.2 - g.5 + g.8))
        row(u + 12 * plane, g.6, g.7, g.8)
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

/// band[r][p + j] = (B^T d)[r] at image column j, d the 4 image rows under row of tiles `ty`
/// (`zeros` for rows outside the image); the band's padding columns are left as they are.
/// image: `[H, W]`; band: `[4, bandStride]`.
@inline(__always)
private func fillInputBand<T: Scalar>(_ band: UnsafeMutablePointer<T>, image: UnsafePointer<T>, rowOfTiles ty: Int,
                                      _ tiling: WinogradTiling, zeros: UnsafeMutablePointer<T>) {
    let g = tiling.geometry, width = g.width, bs = tiling.bandStride, wholeVectors = width / 8 * 8
    let top = 2 * ty - g.padding
    let r0 = top >= 0 && top < g.height ? image + top * width : UnsafePointer(zeros)
    let r1 = top + 1 >= 0 && top + 1 < g.height ? image + (top + 1) * width : UnsafePointer(zeros)
    let r2 = top + 2 >= 0 && top + 2 < g.height ? image + (top + 2) * width : UnsafePointer(zeros)
    let r3 = top + 3 >= 0 && top + 3 < g.height ? image + (top + 3) * width : UnsafePointer(zeros)
    let d0 = band + g.padding, d1 = d0 + bs, d2 = d0 + 2 * bs, d3 = d0 + 3 * bs
    for j in stride(from: 0, to: wholeVectors, by: 8) {
        let a = load8(r0 + j), b = load8(r1 + j), c = load8(r2 + j), d = load8(r3 + j)
        store(a - c, d0 + j); store(b + c, d1 + j); store(c - b, d2 + j); store(b - d, d3 + j)
    }
    for j in wholeVectors..<width {
        let a = r0[j], b = r1[j], c = r2[j], d = r3[j]
        d0[j] = a - c; d1[j] = b + c; d2[j] = c - b; d3[j] = b - d
    }
}

/// V[ξ] = B^T d B for every input patch of `images` images.
/// x: `[images, C, H, W]`; v: `[16, C, images * tilesPerImage]` (+ slack).
/// `only`: the channels to compute (default all), so that threads can share the pass, each with
/// its own `scratch`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func winogradTransformInput<T: Scalar>(_ x: UnsafePointer<T>, _ v: UnsafeMutablePointer<T>, images: Int,
                                              _ tiling: WinogradTiling, scratch: UnsafeMutablePointer<T>,
                                              only range: Range<Int>? = nil) {
    if tiling.pairsRows {
        winogradTransformInput(x, v, images: images, tiling, scratch: scratch, only: range, rowsPerVector: TwoRowsOfTiles.self)
    } else {
        winogradTransformInput(x, v, images: images, tiling, scratch: scratch, only: range, rowsPerVector: OneRowOfTiles.self)
    }
}

private func winogradTransformInput<T: Scalar, Rows: RowsOfTiles>(_ x: UnsafePointer<T>, _ v: UnsafeMutablePointer<T>, images: Int,
                                                                   _ tiling: WinogradTiling, scratch: UnsafeMutablePointer<T>,
                                                                   only range: Range<Int>?, rowsPerVector _: Rows.Type) {
    let pair = Rows.count
    let g = tiling.geometry
    let tw = tiling.tilesWide, tpi = tiling.tilesPerImage, bs = tiling.bandStride
    let tiles = images * tpi, ps = tiling.transformedStride(channels: g.channels, images: images)
    let width = g.width, th = tiling.tilesHigh
    // Two sets of `pair` bands, band[r][j] = B^T over padded image rows 2ty - p + r at column
    // j - p (zero outside the image): one set is filled for the next rows of tiles while the other
    // is read, so that no load waits on the stores just made. `zeros` stands for rows outside the
    // image. An odd last row of tiles, paired, is paired with itself (its copy lands on tiles
    // written later, or is cut at the channel's end).
    let sets = (scratch, scratch + 4 * pair * bs), zeros = scratch + 8 * pair * bs
    scratch.update(repeating: 0, count: 8 * pair * bs + width)
    @inline(__always) func fill(_ set: UnsafeMutablePointer<T>, rowsFrom ty: Int, of image: UnsafePointer<T>) {
        for r in 0..<pair { fillInputBand(set + 4 * r * bs, image: image, rowOfTiles: min(ty + r, th - 1), tiling, zeros: zeros) }
    }
    /// V of 8 tiles from columns `first` = 0, 1 and `second` = 2, 3 of each (lane pairs of SIMD16).
    @inline(__always) func transform(_ first: SIMD16<T>, _ second: SIMD16<T>, _ out: UnsafeMutablePointer<T>, lanes: Int) {
        let e0 = first.evenHalf, o0 = first.oddHalf, e1 = second.evenHalf, o1 = second.oddHalf
        store(e0 - e1, out, lanes: lanes)
        store(o0 + e1, out + ps, lanes: lanes)
        store(e1 - o0, out + 2 * ps, lanes: lanes)
        store(o0 - o1, out + 3 * ps, lanes: lanes)
    }
    let channels = range ?? 0..<g.channels, plane = g.height * width
    let groups = (th + pair - 1) / pair, prefetchedPerGroup = (plane + groups - 1) / groups
    for c in channels {
        for n in 0..<images {
            let image = x + (n * g.channels + c) * plane
            // The plane after this one, asked for a slice per row of tiles: each plane starts a
            // new stream (a new page for 32 x 32 maps), where the hardware prefetcher starts late.
            let nextPlane = n + 1 < images ? image + g.channels * plane : c + 1 < channels.upperBound ? x + (c + 1) * plane : nil
            fill(sets.0, rowsFrom: 0, of: image)
            for (group, ty) in stride(from: 0, to: th, by: pair).enumerated() {
                let set = group % 2 == 0 ? sets.0 : sets.1
                if let nextPlane {
                    let first = group * prefetchedPerGroup
                    prefetch(nextPlane + first, count: max(0, min(prefetchedPerGroup, plane - first)))
                }
                if ty + pair < th { fill(group % 2 == 0 ? sets.1 : sets.0, rowsFrom: ty + pair, of: image) }
                // B over each row's columns: tile tx reads columns 2tx ..< 2tx + 4.
                let left = tiles - n * tpi - ty * tw
                for a in 0..<4 {
                    let row = set + a * bs
                    let out = v + 4 * a * ps + c * tiles + n * tpi + ty * tw
                    if pair == 2 {
                        // Lanes 0 ..< 4 from row of tiles ty, 4 ..< 8 from ty + 1 (the next band).
                        let next = row + 4 * bs
                        transform(SIMD16(lowHalf: load8(row), highHalf: load8(next)),
                                  SIMD16(lowHalf: load8(row + 2), highHalf: load8(next + 2)), out, lanes: min(8, left))
                        continue
                    }
                    // A nested function rather than a closure: the closure was compiled as a call per vector.
                    @inline(__always) func transformRow(_ tx: Int, lanes: Int) {
                        transform(load16(row + 2 * tx), load16(row + 2 * tx + 2), out + tx, lanes: lanes)
                    }
                    forEachVector(of: tw, tilesLeftInChannel: left, transformRow)
                }
            }
        }
    }
}

/// dx = B dV B^T summed back onto the images: the adjoint of `winogradTransformInput`.
/// dv: `[16, C, images * tilesPerImage]` (+ slack); dx: `[images, C, H, W]`, overwritten.
/// `only`: the channels to compute (default all), so that threads can share the pass, each with
/// its own `scratch`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func winogradInputGradient<T: Scalar>(_ dv: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, images: Int,
                                             _ tiling: WinogradTiling, scratch: UnsafeMutablePointer<T>,
                                             only range: Range<Int>? = nil) {
    if tiling.pairsRows {
        winogradInputGradient(dv, dx, images: images, tiling, scratch: scratch, only: range, rowsPerVector: TwoRowsOfTiles.self)
    } else {
        winogradInputGradient(dv, dx, images: images, tiling, scratch: scratch, only: range, rowsPerVector: OneRowOfTiles.self)
    }
}

private func winogradInputGradient<T: Scalar, Rows: RowsOfTiles>(_ dv: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, images: Int,
                                                                  _ tiling: WinogradTiling, scratch: UnsafeMutablePointer<T>,
                                                                  only range: Range<Int>?, rowsPerVector _: Rows.Type) {
    let pair = Rows.count
    let g = tiling.geometry
    let tw = tiling.tilesWide, tpi = tiling.tilesPerImage, bs = tiling.bandStride
    let tiles = images * tpi, ps = tiling.transformedStride(channels: g.channels, images: images)
    let th = tiling.tilesHigh
    // rows[r][a][s][1 + tx]: column s of tile tx's row pass over tile row a, for the r-th row of
    // tiles of a vector; rows[r][a][s][0] and rows[r][a][s][1 + tw] stay zero. All four tile rows
    // pass before any is combined, and two bands alternate (one summed onto the image while the
    // next is built), so that no load waits on the stores just made.
    let rowStride = tiling.lanes + 16
    let bands = (scratch, scratch + 4 * bs), rows = scratch + 8 * bs
    rows.update(repeating: 0, count: pair * 16 * rowStride)
    // Every image row lies under a row of tiles, so each is first set by `addInputBand`: the rows
    // reached, -p ..< 2 * tilesHigh + 2 - p, hold 0 ..< H since 2 * tilesHigh >= OH = H + 2p - 2.
    assert(2 * th + 2 - g.padding >= g.height)
    /// The row pass of the vectors from row of tiles ty on (`pair` rows of tiles, the second's
    /// lanes, when paired, from the next row's dV, or the slack past an odd last row, unused).
    @inline(__always) func passRows(_ source: UnsafePointer<T>, _ ty: Int) {
        for a in 0..<4 {
            // B^T's columns over tile row a: w[s] = sum over b of dV[a][b] B^T[b][s].
            let source = source + 4 * a * ps + ty * tw
            let w = rows + 4 * a * rowStride + 1
            let w0 = w, w1 = w + rowStride, w2 = w + 2 * rowStride, w3 = w + 3 * rowStride
            for tx in stride(from: 0, to: tw, by: 8) {
                let d0 = load8(source + tx), d1 = load8(source + ps + tx)
                let d2 = load8(source + 2 * ps + tx), d3 = load8(source + 3 * ps + tx)
                let s0 = d0, s1 = d1 - d2 + d3, s2 = d1 + d2 - d0, s3 = -d3
                store(s0, w0 + tx); store(s1, w1 + tx); store(s2, w2 + tx); store(s3, w3 + tx)
                if pair == 2 {
                    // Lanes 4 ..< 8: the next row of tiles' (tx is 0: a row holds 4 tiles).
                    let next = 16 * rowStride + tx
                    store(s0.highHalf, w0 + next); store(s1.highHalf, w1 + next)
                    store(s2.highHalf, w2 + next); store(s3.highHalf, w3 + next)
                }
            }
            for r in 0..<pair {
                for s in 0..<4 { w[r * 16 * rowStride + s * rowStride + tw] = 0 }
            }
        }
    }
    for c in range ?? 0..<g.channels {
        for n in 0..<images {
            let image = dx + (n * g.channels + c) * g.height * g.width
            for ty in stride(from: 0, to: th, by: pair) {
                passRows(dv + c * tiles + n * tpi, ty)
                for r in 0..<min(pair, th - ty) {
                    // Row of tiles ty + r's band from its row pass; the band before summed onto the image.
                    let ty = ty + r, rows = rows + r * 16 * rowStride
                    let band = ty % 2 == 0 ? bands.0 : bands.1
                    for a in 0..<4 {
                        // Column 2k takes s = 0 of tile k and s = 2 of tile k - 1; column 2k + 1, s = 1 and s = 3.
                        let w = rows + 4 * a * rowStride
                        let row = band + a * bs
                        for k in stride(from: 0, through: tw, by: 8) {
                            let even = load8(w + 1 + k) + load8(w + 2 * rowStride + k)
                            let odd = load8(w + rowStride + 1 + k) + load8(w + 3 * rowStride + k)
                            store(interleave(even, odd), row + 2 * k)
                        }
                    }
                    // B over the band's rows, up to the last column the image reaches (p + W - 1 <= 2 tw + 1).
                    let b0 = band, b1 = band + bs, b2 = band + 2 * bs, b3 = band + 3 * bs
                    for j in stride(from: 0, to: 2 * tw + 2, by: 8) {
                        let e0 = load8(b0 + j), e1 = load8(b1 + j), e2 = load8(b2 + j), e3 = load8(b3 + j)
                        store(e1 - e2 + e3, b1 + j); store(e1 + e2 - e0, b2 + j); store(-e3, b3 + j)
                    }
                    if ty > 0 { addInputBand(ty % 2 == 0 ? bands.1 : bands.0, onto: image, rowOfTiles: ty - 1, tiling) }
                }
            }
            addInputBand((th - 1) % 2 == 0 ? bands.0 : bands.1, onto: image, rowOfTiles: th - 1, tiling)
        }
    }
}

/// Image rows 2ty - p + r += band[r][p ..< p + W], for the rows inside the image: the last step of
/// `winogradInputGradient`. Rows r = 2, 3 (and 0, 1 of the first row of tiles) are the first to
/// reach their image row, which is set to 0 + band (the sum onto zeros, bitwise, -0 included)
/// rather than zeroed beforehand and read back. band: `[4, bandStride]`; image: `[H, W]`.
@inline(__always)
private func addInputBand<T: Scalar>(_ band: UnsafePointer<T>, onto image: UnsafeMutablePointer<T>, rowOfTiles ty: Int,
                                     _ tiling: WinogradTiling) {
    let g = tiling.geometry, wholeVectors = g.width / 8 * 8
    for r in 0..<4 {
        let iy = 2 * ty - g.padding + r
        guard iy >= 0 && iy < g.height else { continue }
        let target = image + iy * g.width, row = band + r * tiling.bandStride + g.padding
        if r >= 2 || ty == 0 {
            let zero = SIMD8<T>()
            for j in stride(from: 0, to: wholeVectors, by: 8) { store(zero + load8(row + j), target + j) }
            for j in wholeVectors..<g.width { target[j] = 0 + row[j] }
        } else {
            for j in stride(from: 0, to: wholeVectors, by: 8) { store(load8(target + j) + load8(row + j), target + j) }
            for j in wholeVectors..<g.width { target[j] += row[j] }
        }
    }
}

/// y = A^T M[ξ] A for every tile: the convolution's outputs.
/// m: `[16, O, images * tilesPerImage]` (+ slack); y: `[images, O, OH, OW]`.
/// `only`: the channels to compute (default all), so that threads can share the pass, each with
/// its own `scratch`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func winogradTransformOutput<T: Scalar>(_ m: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, images: Int,
                                               _ tiling: WinogradTiling, scratch: UnsafeMutablePointer<T>,
                                               only range: Range<Int>? = nil) {
    let g = tiling.geometry
    let o = tiling.outChannels, tw = tiling.tilesWide, tpi = tiling.tilesPerImage
    let tiles = images * tpi, ps = tiling.transformedStride(channels: o, images: images)
    let oh = g.outHeight, ow = g.outWidth, pair = tiling.rowsPerVector, inPlace = tiling.outputRowsInPlace
    // The even and odd output rows of a vector's rows of tiles: row 2(ty + r) + 1 at bottom + 2 tw r,
    // copied to the output after; or the output rows themselves.
    var top = scratch, bottom = top + tiling.bandStride
    for c in range ?? 0..<o {
        for n in 0..<images {
            let plane = y + (n * o + c) * oh * ow
            for ty in stride(from: 0, to: tiling.tilesHigh, by: pair) {
                if inPlace { (top, bottom) = (plane + 2 * ty * ow, plane + (2 * ty + 1) * ow) }
                let src = m + c * tiles + n * tpi + ty * tw
                for tx in stride(from: 0, to: tw, by: 8) {
                    @inline(__always) func m(_ a: Int, _ b: Int) -> SIMD8<T> { load8(src + (4 * a + b) * ps + tx) }
                    // A^T over rows: s0[b] = m0b + m1b + m2b, s1[b] = m1b - m2b - m3b.
                    let s00 = m(0, 0) + m(1, 0) + m(2, 0), s01 = m(0, 1) + m(1, 1) + m(2, 1)
                    let s02 = m(0, 2) + m(1, 2) + m(2, 2), s03 = m(0, 3) + m(1, 3) + m(2, 3)
                    let s10 = m(1, 0) - m(2, 0) - m(3, 0), s11 = m(1, 1) - m(2, 1) - m(3, 1)
                    let s12 = m(1, 2) - m(2, 2) - m(3, 2), s13 = m(1, 3) - m(2, 3) - m(3, 3)
                    store(interleave(s00 + s01 + s02, s01 - s02 - s03), top + 2 * tx)
                    store(interleave(s10 + s11 + s12, s11 - s12 - s13), bottom + 2 * tx)
                }
                if inPlace { continue }
                for r in 0..<pair {
                    let oy = 2 * (ty + r)
                    if oy < oh { (plane + oy * ow).update(from: top + 2 * tw * r, count: ow) }
                    if oy + 1 < oh { (plane + (oy + 1) * ow).update(from: bottom + 2 * tw * r, count: ow) }
                }
            }
        }
    }
}

/// dM[ξ] = A dY A^T for every tile: the adjoint of `winogradTransformOutput`.
/// dy: `[images, O, OH, OW]`; dm: `[16, O, images * tilesPerImage]` (+ slack).
/// `only`: the channels to compute (default all), so that threads can share the pass, each with
/// its own `scratch`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func winogradOutputGradient<T: Scalar>(_ dy: UnsafePointer<T>, _ dm: UnsafeMutablePointer<T>, images: Int,
                                              _ tiling: WinogradTiling, scratch: UnsafeMutablePointer<T>,
                                              only range: Range<Int>? = nil) {
    let g = tiling.geometry
    let o = tiling.outChannels, tw = tiling.tilesWide, tpi = tiling.tilesPerImage
    let tiles = images * tpi, ps = tiling.transformedStride(channels: o, images: images)
    let oh = g.outHeight, ow = g.outWidth, pair = tiling.rowsPerVector, inPlace = tiling.outputRowsInPlace
    // The even and odd output rows of a vector's rows of tiles (row 2(ty + r) + 1 at
    // bottom + 2 tw r), zero past the image's last row and column; or the rows themselves.
    let rows = scratch
    rows.update(repeating: 0, count: 2 * tiling.bandStride)
    var top = UnsafePointer(rows), bottom = top + tiling.bandStride
    for c in range ?? 0..<o {
        for n in 0..<images {
            let plane = dy + (n * o + c) * oh * ow
            for ty in stride(from: 0, to: tiling.tilesHigh, by: pair) {
                @inline(__always) func copy(row oy: Int, to row: UnsafeMutablePointer<T>) {
                    if oy < oh {
                        row.update(from: plane + oy * ow, count: ow)
                    } else {
                        row.update(repeating: 0, count: ow)
                    }
                }
                if inPlace {
                    (top, bottom) = (plane + 2 * ty * ow, plane + (2 * ty + 1) * ow)
                } else {
                    for r in 0..<pair {
                        copy(row: 2 * (ty + r), to: rows + 2 * tw * r)
                        copy(row: 2 * (ty + r) + 1, to: rows + tiling.bandStride + 2 * tw * r)
                    }
                }
                let out = dm + c * tiles + n * tpi + ty * tw
                @inline(__always) func transform(_ tx: Int, lanes: Int) {
                    let upper = load16(top + 2 * tx), lower = load16(bottom + 2 * tx)
                    let y00 = upper.evenHalf, y01 = upper.oddHalf, y10 = lower.evenHalf, y11 = lower.oddHalf
                    // q = A dY: [4, 2]; dM = q A^T: [4, 4].
                    @inline(__always) func put(_ a: Int, _ q0: SIMD8<T>, _ q1: SIMD8<T>) {
                        let row = out + 4 * a * ps + tx
                        store(q0, row, lanes: lanes); store(q0 + q1, row + ps, lanes: lanes)
                        store(q0 - q1, row + 2 * ps, lanes: lanes); store(-q1, row + 3 * ps, lanes: lanes)
                    }
                    put(0, y00, y01)
                    put(1, y00 + y10, y01 + y11)
                    put(2, y00 - y10, y01 - y11)
                    put(3, -y10, -y11)
                }
                forEachVector(of: tw, tilesLeftInChannel: tiles - n * tpi - ty * tw, transform)
            }
        }
    }
}
