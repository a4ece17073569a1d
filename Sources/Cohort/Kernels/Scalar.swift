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
}

@inline(__always)
private func cblasTranspose(_ transposed: Bool) -> CBLAS_TRANSPOSE {
    transposed ? CblasTrans : CblasNoTrans
}

extension Float: Scalar {
    public static func gemm(
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
