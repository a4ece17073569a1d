/// A weight matrix op(W) `[K, N]` that multiplies a batch of rows at every time step of a pass:
/// packed once per pass for `panelProduct` where that beats BLAS (Float on AVX-512 builds, see
/// `PanelProduct.swift`), else handed to BLAS as it is.
final class RepeatedOperand<Element: Scalar> {
    let k: Int
    let n: Int
    /// Whether W is given as `[N, K]` (op(W) = W^T) rather than `[K, N]`.
    let transposed: Bool
    /// op(W) in panels, when the products run `panelProduct`.
    private let packed: Buffer<Float>?
    private var weights: UnsafePointer<Element>?

    /// `panels`: pack for `panelProduct` rather than call BLAS (Float only; Double always calls BLAS).
    init(k: Int, n: Int, transposed: Bool, panels: Bool) {
        self.k = k
        self.n = n
        self.transposed = transposed
        packed = panels && Element.self == Float.self ? Buffer(count: packedPanelsCount(k: k, n: n)) : nil
    }

    /// Takes W (`[N, K]` when transposed, else `[K, N]`, rows contiguous) for the products until
    /// the next call; W must not change in between.
    func prepare(_ w: UnsafePointer<Element>) {
        weights = w
        if let packed {
            w.withMemoryRebound(to: Float.self, capacity: k * n) {
                packPanels($0, ldb: transposed ? k : n, transposed: transposed, k: k, n: n, into: packed.pointer)
            }
        }
    }

    /// c[m, n] = a[m, k] op(W) + (accumulate ? c : 0); a and c with row strides lda and ldc. With
    /// `k0`, a's first k0 columns are zero and their terms are left out (`panelProduct`).
    func multiply(m: Int, _ a: UnsafePointer<Element>, lda: Int, into c: UnsafeMutablePointer<Element>, ldc: Int,
                  accumulate: Bool, fromRow k0: Int = 0) {
        guard let weights else { preconditionFailure("RepeatedOperand.multiply before prepare") }
        precondition(k0 < k, "RepeatedOperand.multiply: nothing left of k = \(k) from row \(k0)")
        if let packed {
            a.withMemoryRebound(to: Float.self, capacity: (m - 1) * lda + k) { a in
                c.withMemoryRebound(to: Float.self, capacity: (m - 1) * ldc + n) { c in
                    panelProduct(m: m, n: n, k: k, a: a, lda: lda, packed: packed.pointer, c: c, ldc: ldc, accumulate: accumulate,
                                 fromRow: k0)
                }
            }
        } else {
            Element.gemm(transA: false, transB: transposed, m: m, n: n, k: k - k0, alpha: 1, a: a + k0, lda: lda,
                         b: weights + (transposed ? k0 : k0 * n), ldb: transposed ? k : n, beta: accumulate ? 1 : 0, c: c, ldc: ldc)
        }
    }
}
