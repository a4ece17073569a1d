/// A matrix product for a right-hand side that is multiplied many times between changes: the
/// recurrent weights, by every time step's batch of hidden states (M = batch, N = G*H or H).
///
/// BLAS packs its operands into cache-sized panels on every call; for these small products that
/// copy costs as much as the arithmetic (sgemm 32 x 512 x 128 on one core of an AVX-512 Xeon:
/// 52 µs through OpenBLAS, 28 µs here on a matrix packed once). So the matrix is packed once per
/// pass (`packPanels`) and each step runs `panelProduct` on it: 8 x 32 tiles of the result held in
/// 16 registers of 16 floats, each element one chain of fused multiply-adds over k in order. An
/// element therefore does not depend on how many rows the product has or where its row falls, so
/// a sample's result is the same whatever the batch is split into (the world-size invariance).
///
/// The same tiles serve `streamedProduct`, for products whose left operand is small (a Winograd
/// plane's channels) and whose right one is wide and read once (its tiles): there, b is read where
/// it lies instead of being packed.
///
/// The tiles are SIMD16 vectors: one AVX-512 register each on builds for AVX-512, but four SSE or
/// two AVX2 registers elsewhere, where they run slower than BLAS; the layers use them by default
/// only on AVX-512 builds (`COHORT_AVX512`, set by Package.swift; `ownProductsByDefault`).

/// The columns of one packed panel, two SIMD16 vectors.
let panelWidth = 32

/// Floats a matrix of k rows and n columns takes when packed: whole panels, the last padded.
func packedPanelsCount(k: Int, n: Int) -> Int { (n + panelWidth - 1) / panelWidth * panelWidth * k }

/// Packs B `[K, N]` (row-major, row stride ldb) into panels of 32 columns: panel p holds rows
/// 0..<K of columns 32p..<32p+32, each row's 32 values contiguous; columns past N are zero.
/// With `transposed`, the matrix given is B^T `[N, K]` (row stride ldb) and B is packed.
/// packed: `packedPanelsCount(k:n:)` floats.
@inline(never)
func packPanels(_ b: UnsafePointer<Float>, ldb: Int, transposed: Bool, k: Int, n: Int, into packed: UnsafeMutablePointer<Float>) {
    let panels = (n + panelWidth - 1) / panelWidth
    for p in 0..<panels {
        let panel = packed + p * k * panelWidth
        let first = p * panelWidth, width = min(panelWidth, n - first)
        if transposed {
            // Column j of the panel is row first + j of B^T: read along it, write with a stride of 32.
            for j in 0..<width {
                let row = b + (first + j) * ldb
                for kk in 0..<k { panel[kk * panelWidth + j] = row[kk] }
            }
        } else {
            for kk in 0..<k {
                (panel + kk * panelWidth).update(from: b + kk * ldb + first, count: width)
            }
        }
        if width < panelWidth {
            for kk in 0..<k { (panel + kk * panelWidth + width).update(repeating: 0, count: panelWidth - width) }
        }
    }
}

/// c[m, n] = a[m, k0 ..< k] B[k0 ..< k, n] + (accumulate ? c[m, n] : 0), B `[K, N]` packed by
/// `packPanels`: the terms of the first `k0` rows left out (where a's columns are known to be zero,
/// which leaves every element bitwise as the whole product gives it: each chain of fused
/// multiply-adds starts at +0 and stays there over them). a: row stride lda; c: row stride ldc.
@inline(never)
func panelProduct(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, packed: UnsafePointer<Float>,
                  c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, fromRow k0: Int = 0) {
    let panels = (n + panelWidth - 1) / panelWidth
    for p in 0..<panels {
        let first = p * panelWidth, width = min(panelWidth, n - first)
        var row = 0
        while row < m {
            productTile(rows: min(8, m - row), width: width, k: k - k0, a: a + row * lda + k0, rowStride: lda, stepStride: 1,
                        b: packed + (p * k + k0) * panelWidth, bStride: panelWidth, c: c + row * ldc + first, ldc: ldc,
                        accumulate: accumulate)
            row += 8
        }
    }
}

/// c[m, n] = op(a)[m, k] b[k, n], with op(a) = a `[M, K]` or, `transposedA`, a^T for a `[K, M]`;
/// row-major, row strides lda, ldb, ldc. For a small a (M and K of a few dozen: channels) and a wide
/// b (N: pixels or tiles), where BLAS's copy of b into panels costs as much as the products: b's
/// rows are read where they are, 32 columns at a time, while those k x 32 values stay in L1 for
/// every row of a.
///
/// Reads b's rows in whole panels of 32 values: up to 31 past column n, which must be readable
/// (and are never stored). Each element is one chain of fused multiply-adds over k in order.
@inline(never)
func streamedProduct(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, transposedA: Bool,
                     b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let panels = (n + panelWidth - 1) / panelWidth
    for p in 0..<panels {
        let first = p * panelWidth, width = min(panelWidth, n - first)
        var row = 0
        while row < m {
            productTile(rows: min(8, m - row), width: width, k: k, a: transposedA ? a + row : a + row * lda,
                        rowStride: transposedA ? 1 : lda, stepStride: transposedA ? lda : 1,
                        b: b + first, bStride: ldb, c: c + row * ldc + first, ldc: ldc, accumulate: false)
            row += 8
        }
    }
}

/// One tile of a product: `rows` <= 8 rows of the left operand times 32 columns of b, into `rows`
/// rows and `width` <= 32 columns of c. Element kk of row r of the left operand is at
/// a[r * rowStride + kk * stepStride]; row kk of b at b + kk * bStride (a packed panel, or a
/// matrix's rows). Missing rows repeat row 0 and are not stored.
@inline(__always)
private func productTile(rows: Int, width: Int, k: Int, a: UnsafePointer<Float>, rowStride: Int, stepStride: Int,
                         b: UnsafePointer<Float>, bStride: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
    typealias V = SIMD16<Float>
    let a0 = a, a1 = rows > 1 ? a + rowStride : a, a2 = rows > 2 ? a + 2 * rowStride : a
    let a3 = rows > 3 ? a + 3 * rowStride : a, a4 = rows > 4 ? a + 4 * rowStride : a
    let a5 = rows > 5 ? a + 5 * rowStride : a, a6 = rows > 6 ? a + 6 * rowStride : a
    let a7 = rows > 7 ? a + 7 * rowStride : a
    var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V()
    var c40 = V(), c41 = V(), c50 = V(), c51 = V(), c60 = V(), c61 = V(), c70 = V(), c71 = V()
    var bRow = UnsafeRawPointer(b)
    var step = 0
    for _ in 0..<k {
        let b0 = bRow.loadUnaligned(as: V.self), b1 = bRow.loadUnaligned(fromByteOffset: 64, as: V.self)
        bRow += 4 * bStride
        var x = V(repeating: a0[step]); c00.addProduct(x, b0); c01.addProduct(x, b1)
        x = V(repeating: a1[step]); c10.addProduct(x, b0); c11.addProduct(x, b1)
        x = V(repeating: a2[step]); c20.addProduct(x, b0); c21.addProduct(x, b1)
        x = V(repeating: a3[step]); c30.addProduct(x, b0); c31.addProduct(x, b1)
        x = V(repeating: a4[step]); c40.addProduct(x, b0); c41.addProduct(x, b1)
        x = V(repeating: a5[step]); c50.addProduct(x, b0); c51.addProduct(x, b1)
        x = V(repeating: a6[step]); c60.addProduct(x, b0); c61.addProduct(x, b1)
        x = V(repeating: a7[step]); c70.addProduct(x, b0); c71.addProduct(x, b1)
        step += stepStride
    }
    storeTileRow(c00, c01, c, width: width, accumulate: accumulate)
    if rows > 1 { storeTileRow(c10, c11, c + ldc, width: width, accumulate: accumulate) }
    if rows > 2 { storeTileRow(c20, c21, c + 2 * ldc, width: width, accumulate: accumulate) }
    if rows > 3 { storeTileRow(c30, c31, c + 3 * ldc, width: width, accumulate: accumulate) }
    if rows > 4 { storeTileRow(c40, c41, c + 4 * ldc, width: width, accumulate: accumulate) }
    if rows > 5 { storeTileRow(c50, c51, c + 5 * ldc, width: width, accumulate: accumulate) }
    if rows > 6 { storeTileRow(c60, c61, c + 6 * ldc, width: width, accumulate: accumulate) }
    if rows > 7 { storeTileRow(c70, c71, c + 7 * ldc, width: width, accumulate: accumulate) }
}

/// c[0..<width] = (low, high)[0..<width] (+ c[0..<width] when accumulating).
@inline(__always)
private func storeTileRow(_ low: SIMD16<Float>, _ high: SIMD16<Float>, _ c: UnsafeMutablePointer<Float>, width: Int, accumulate: Bool) {
    let out = UnsafeMutableRawPointer(c)
    if width == panelWidth {
        var l = low, h = high
        if accumulate {
            l += out.loadUnaligned(as: SIMD16<Float>.self)
            h += out.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
        }
        out.storeBytes(of: l, as: SIMD16<Float>.self)
        out.storeBytes(of: h, toByteOffset: 64, as: SIMD16<Float>.self)
        return
    }
    for j in 0..<width {
        let value = j < 16 ? low[j] : high[j - 16]
        c[j] = accumulate ? value + c[j] : value
    }
}
