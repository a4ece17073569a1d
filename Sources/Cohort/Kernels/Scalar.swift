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

    /// On a `ThreadTeam`, a product of at least `ThreadTeam.gemmMinimum` multiply-adds is split
    /// among its threads by columns of c (or by rows when c has fewer columns than rows), each part
    /// one single-threaded OpenBLAS call.
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard let team = ThreadTeam.current, !team.isRunning, m * n * k >= ThreadTeam.gemmMinimum else {
            return blasGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                            b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
        if n >= m {
            team.run { member in
                let columns = team.share(of: n, member: member)
                guard !columns.isEmpty else { return }
                blasGemm(transA: transA, transB: transB, m: m, n: columns.count, k: k, alpha: alpha, a: a, lda: lda,
                         b: b + (transB ? columns.lowerBound * ldb : columns.lowerBound), ldb: ldb,
                         beta: beta, c: c + columns.lowerBound, ldc: ldc)
            }
        } else {
            team.run { member in
                let rows = team.share(of: m, member: member, granule: 4)
                guard !rows.isEmpty else { return }
                blasGemm(transA: transA, transB: transB, m: rows.count, n: n, k: k, alpha: alpha,
                         a: a + (transA ? rows.lowerBound : rows.lowerBound * lda), lda: lda,
                         b: b, ldb: ldb, beta: beta, c: c + rows.lowerBound * ldc, ldc: ldc)
            }
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

    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dgemm(CblasRowMajor, cblasTranspose(transA), cblasTranspose(transB),
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }
}
