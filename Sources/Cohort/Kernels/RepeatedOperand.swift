import CBLAS
import Foundation

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

    /// c[m, n] = a[m, k] op(W) + (accumulate ? c : 0); a and c with row strides lda and ldc.
    func multiply(m: Int, _ a: UnsafePointer<Element>, lda: Int, into c: UnsafeMutablePointer<Element>, ldc: Int,
                  accumulate: Bool) {
        guard let weights else { preconditionFailure("RepeatedOperand.multiply before prepare") }
        if let packed {
            a.withMemoryRebound(to: Float.self, capacity: (m - 1) * lda + k) { a in
                c.withMemoryRebound(to: Float.self, capacity: (m - 1) * ldc + n) { c in
                    panelProduct(m: m, n: n, k: k, a: a, lda: lda, packed: packed.pointer, c: c, ldc: ldc, accumulate: accumulate)
                }
            }
        } else {
            Element.gemm(transA: false, transB: transposed, m: m, n: n, k: k, alpha: 1, a: a, lda: lda,
                         b: weights, ldb: transposed ? k : n, beta: accumulate ? 1 : 0, c: c, ldc: ldc)
        }
    }
}

/// How the recurrent layers multiply by W_hh at each time step.
public enum RecurrentProductKernel: String, Sendable {
    case panels, blas

    /// The environment variable that overrides the choice (`panels`, `blas` or `auto`), for
    /// measuring one against the other and for running the tests through both.
    public static let environmentVariable = "COHORT_RECURRENT_PRODUCT"

    /// `panels` on AVX-512 builds where BLAS runs on one thread (a worker under mpirun, or one
    /// core), unless the environment says otherwise. `panelProduct` runs on the calling thread, so
    /// a lone process whose BLAS spreads over several cores keeps BLAS: `cohort bench lstm` on
    /// two cores of a Xeon family 6 model 207, medians of 5 alternating runs, BLAS 6,010 images/s
    /// against panels 5,370 (one core: panels 7,433 against BLAS 5,882).
    static func automatic() throws -> RecurrentProductKernel {
        switch ProcessInfo.processInfo.environment[environmentVariable] ?? "auto" {
        case "auto":
            #if COHORT_AVX512
            return openblas_get_num_threads() == 1 ? .panels : .blas
            #else
            return .blas
            #endif
        case "panels": return .panels
        case "blas": return .blas
        case let other: throw CohortError("\(environmentVariable)=\(other): expected panels, blas or auto")
        }
    }
}
