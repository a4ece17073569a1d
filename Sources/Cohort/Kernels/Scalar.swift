import CBLAS
import RealModule

/// The element type of tensors: `Float` for training, `Double` for the numeric gradient checks.
///
/// Every kernel and layer is generic over it, so the gradient checks run the very code that trains.
public protocol Scalar: Real, BinaryFloatingPoint, SIMDScalar, Sendable {
    /// Row-major `c[m, n] = alpha * op(a)[m, k] * op(b)[k, n] + beta * c[m, n]` through BLAS.
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

    /// e^v as plain arithmetic, so that loops over it vectorise (see `Exponential.swift`).
    static func vectorizableExp(_ v: Self) -> Self

    /// dy where y > 0, else 0, lane by lane: the gradient through a ReLU whose output is y. A
    /// requirement so that the comparison is the concrete type's (one vector compare): through
    /// `SIMD where Scalar: Comparable` it is a loop over the lanes.
    static func throughReLU(_ dy: SIMD8<Self>, output y: SIMD8<Self>) -> SIMD8<Self>
}

@inline(__always)
private func cblasTranspose(_ transposed: Bool) -> CBLAS_TRANSPOSE {
    transposed ? CblasTrans : CblasNoTrans
}

extension Float: Scalar {
    @inline(__always)
    public static func throughReLU(_ dy: SIMD8<Float>, output y: SIMD8<Float>) -> SIMD8<Float> {
        dy.replacing(with: 0, where: .!(y .> 0))
    }

    /// On a `ThreadTeam`, split among its threads (`splitAmongTeam`).
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        splitAmongTeam(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc) {
            m, n, a, b, c in
            blasGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                     b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    /// One OpenBLAS call, on as many threads as OpenBLAS is set to.
    @inline(__always)
    static func blasGemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, cblasTranspose(transA), cblasTranspose(transB),
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }
}

extension Double: Scalar {
    @inline(__always)
    public static func throughReLU(_ dy: SIMD8<Double>, output y: SIMD8<Double>) -> SIMD8<Double> {
        dy.replacing(with: 0, where: .!(y .> 0))
    }

    /// The C library's exp: Double runs the gradient checks, where accuracy matters and speed does not.
    @inline(__always)
    public static func vectorizableExp(_ v: Double) -> Double { exp(v) }

    /// On a `ThreadTeam`, split among its threads (`splitAmongTeam`).
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        splitAmongTeam(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc) {
            m, n, a, b, c in
            cblas_dgemm(CblasRowMajor, cblasTranspose(transA), cblasTranspose(transB),
                        blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                        beta, c, blasint(ldc))
        }
    }
}

/// Runs the product c[m, n] = op(a)[m, k] op(b)[k, n] (+ beta c) through `product`, which computes
/// a block of rows and columns given where they start: whole on the calling thread, or, on a
/// `ThreadTeam` and from `ThreadTeam.gemmMinimum` multiply-adds, split among the team's threads by
/// columns of c (by rows when c has fewer columns than rows), each part one single-threaded call.
@inline(__always)
private func splitAmongTeam<T>(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int,
    c: UnsafeMutablePointer<T>, ldc: Int,
    _ product: (_ m: Int, _ n: Int, _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ c: UnsafeMutablePointer<T>) -> Void
) {
    guard let team = ThreadTeam.current, !team.isRunning, m * n * k >= ThreadTeam.gemmMinimum else {
        return product(m, n, a, b, c)
    }
    if n >= m {
        team.run { member in
            let columns = team.share(of: n, member: member)
            guard !columns.isEmpty else { return }
            product(m, columns.count, a, b + (transB ? columns.lowerBound * ldb : columns.lowerBound), c + columns.lowerBound)
        }
    } else {
        team.run { member in
            let rows = team.share(of: m, member: member, granule: 4)
            guard !rows.isEmpty else { return }
            product(rows.count, n, a + (transA ? rows.lowerBound : rows.lowerBound * lda), b, c + rows.lowerBound * ldc)
        }
    }
}
