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

    /// Stride 1 with "same" padding, output as large as the input: then row (c, ki, kj) of the
    /// column matrix is channel c's plane shifted by (ki - p) W + (kj - p), apart from its borders.
    var keepsSize: Bool { stride == 1 && outHeight == height && outWidth == width }

    /// The output rows `first..<end` whose input row `oy - padding + ki` lies inside the image (stride 1).
    @inline(__always)
    func validOutputRows(_ ki: Int) -> (first: Int, end: Int) {
        let first = min(max(padding - ki, 0), outHeight)
        return (first, max(first, min(outHeight, height + padding - ki)))
    }

    /// The part of a plane, in output positions, from the first valid row and column to the last
    /// (with the border columns between); empty when no position is valid.
    @inline(__always)
    func validSpan(firstRow: Int, endRow: Int, first: Int, end: Int) -> (start: Int, stop: Int) {
        guard endRow > firstRow, end > first else { return (0, 0) }
        return (firstRow * outWidth + first, (endRow - 1) * outWidth + end)
    }

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
/// `only`: the channels to unfold (default all), so that threads can share an image.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func im2col<T: Scalar>(_ x: UnsafePointer<T>, _ cols: UnsafeMutablePointer<T>, _ g: WindowGeometry, only range: Range<Int>? = nil) {
    let channels = range ?? 0..<g.channels
    if g.keepsSize { return im2colKeepingSize(x, cols, g, channels) }
    let oh = g.outHeight, ow = g.outWidth, k = g.kernel
    var row = channels.lowerBound * k * k
    for c in channels {
        let plane = x + c * g.height * g.width
        // The next plane, read nine times over from the cache rather than once from memory, each
        // of its rows a short stream the hardware prefetcher takes up late.
        if c + 1 < channels.upperBound { prefetch(plane + g.height * g.width, count: g.height * g.width) }
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
                    } else if g.stride == 2 {
                        gatherEvenElements(src, into: line, first..<max(first, end))
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
/// cols: `[C*K*K, OH*OW]`, used as workspace: its entries that fall in the padding may be zeroed.
/// dx: `[C, H, W]`, overwritten. `only`: the channels to fold (default all), as in `im2col`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
public func col2im<T: Scalar>(_ cols: UnsafeMutablePointer<T>, _ dx: UnsafeMutablePointer<T>, _ g: WindowGeometry, only range: Range<Int>? = nil) {
    let channels = range ?? 0..<g.channels
    let plane = g.height * g.width
    (dx + channels.lowerBound * plane).update(repeating: 0, count: channels.count * plane)
    if g.keepsSize { return col2imKeepingSize(cols, dx, g, channels) }
    let oh = g.outHeight, ow = g.outWidth, k = g.kernel
    var row = channels.lowerBound * k * k
    for c in channels {
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
                    if g.stride == 2 {
                        addToEvenElements(line, of: dst, first..<max(first, end))
                    } else {
                        for ox in first..<max(first, end) { dst[ox * g.stride] += line[ox] }
                    }
                }
                row += 1
            }
        }
    }
}

/// line[i] = src[2i] for i in `range`, in vectors of 8 that read `src[2i ..< 2i + 15]` and no
/// further (a stride-2 row of ResNet-20's downsampling convolutions: 4 % of a worker's samples
/// element by element on a Zen 5). The last vector overlaps the one before rather than falling
/// back to single elements.
@inline(__always)
private func gatherEvenElements<T: Scalar>(_ src: UnsafePointer<T>, into line: UnsafeMutablePointer<T>, _ range: Range<Int>) {
    guard range.count >= 8 else {
        for i in range { line[i] = src[2 * i] }
        return
    }
    @inline(__always) func vector(_ i: Int) {
        let a = UnsafeRawPointer(src + 2 * i).loadUnaligned(as: SIMD8<T>.self)
        let b = UnsafeRawPointer(src + 2 * i + 7).loadUnaligned(as: SIMD8<T>.self)
        UnsafeMutableRawPointer(line + i).storeBytes(of: SIMD8(a[0], a[2], a[4], a[6], b[1], b[3], b[5], b[7]), as: SIMD8<T>.self)
    }
    var i = range.lowerBound
    while i + 8 <= range.upperBound {
        vector(i)
        i += 8
    }
    if i < range.upperBound { vector(range.upperBound - 8) }
}

/// dst[2i] += line[i] for i in `range`, each sum as the element-wise loop's (the other elements
/// are stored back as they were), touching `dst[2i ..< 2i + 15]` only: the adjoint of
/// `gatherEvenElements`.
@inline(__always)
private func addToEvenElements<T: Scalar>(_ line: UnsafePointer<T>, of dst: UnsafeMutablePointer<T>, _ range: Range<Int>) {
    var i = range.lowerBound
    while i + 8 <= range.upperBound {
        let v = UnsafeRawPointer(line + i).loadUnaligned(as: SIMD8<T>.self)
        let p = UnsafeMutableRawPointer(dst + 2 * i), q = UnsafeMutableRawPointer(dst + 2 * i + 7)
        var a = p.loadUnaligned(as: SIMD8<T>.self), b = q.loadUnaligned(as: SIMD8<T>.self)
        a.evenHalf += v.lowHalf
        // b[0] is dst[2i + 7], stored unchanged with a; b's odd lanes are dst[2i + 8], dst[2i + 10], ...
        b.oddHalf += v.highHalf
        p.storeBytes(of: a, as: SIMD8<T>.self)
        q.storeBytes(of: b, as: SIMD8<T>.self)
        i += 8
    }
    for i in i..<range.upperBound { dst[2 * i] += line[i] }
}

/// `im2col` when the convolution keeps the size (`WindowGeometry.keepsSize`): each row of the
/// column matrix is one shifted copy of a plane, its wrapped-around border columns then zeroed,
/// rather than one short copy per output row.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func im2colKeepingSize<T: Scalar>(_ x: UnsafePointer<T>, _ cols: UnsafeMutablePointer<T>, _ g: WindowGeometry, _ channels: Range<Int>) {
    let w = g.width, plane = g.height * g.width, k = g.kernel, p = g.padding
    var row = channels.lowerBound * k * k
    for c in channels {
        let source = x + c * plane
        for ki in 0..<k {
            let (firstRow, endRow) = g.validOutputRows(ki)
            for kj in 0..<k {
                let out = cols + row * plane
                row += 1
                let (first, end) = g.validOutputColumns(kj)
                let shift = (ki - p) * w + (kj - p)
                let (start, stop) = g.validSpan(firstRow: firstRow, endRow: endRow, first: first, end: end)
                for s in 0..<start { out[s] = 0 }
                for s in start..<stop { out[s] = source[s + shift] }
                for s in stop..<plane { out[s] = 0 }
                zeroBorderColumns(out, g, rows: firstRow..<endRow, first: first, end: end)
            }
        }
    }
}

/// `col2im` when the convolution keeps the size: the padding entries of each row of cols are
/// zeroed, then the row is added to its plane in one shifted pass. dx: zeroed by the caller.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func col2imKeepingSize<T: Scalar>(_ cols: UnsafeMutablePointer<T>, _ dx: UnsafeMutablePointer<T>, _ g: WindowGeometry, _ channels: Range<Int>) {
    let w = g.width, plane = g.height * g.width, k = g.kernel, p = g.padding
    var row = channels.lowerBound * k * k
    for c in channels {
        let target = dx + c * plane
        for ki in 0..<k {
            let (firstRow, endRow) = g.validOutputRows(ki)
            for kj in 0..<k {
                let source = cols + row * plane
                row += 1
                let (first, end) = g.validOutputColumns(kj)
                let shift = (ki - p) * w + (kj - p)
                let (start, stop) = g.validSpan(firstRow: firstRow, endRow: endRow, first: first, end: end)
                zeroBorderColumns(source, g, rows: firstRow..<endRow, first: first, end: end)
                for s in start..<stop { target[s + shift] += source[s] }
            }
        }
    }
}

/// plane[oy, ox] = 0 for the rows given and the columns outside `first..<end`. plane: `[OH, OW]`.
/// Column by column: a row's border is one or two values, and a loop along it would become a
/// call to memset per row.
@inline(__always)
private func zeroBorderColumns<T: Scalar>(_ plane: UnsafeMutablePointer<T>, _ g: WindowGeometry, rows: Range<Int>,
                                          first: Int, end: Int) {
    let w = g.outWidth
    for ox in 0..<first { for oy in rows { plane[oy * w + ox] = 0 } }
    for ox in end..<max(end, w) { for oy in rows { plane[oy * w + ox] = 0 } }
}
