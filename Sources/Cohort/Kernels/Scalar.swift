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
