import CBLAS
import Foundation

/// How the recurrent layers multiply by W_hh at each time step.
public enum RecurrentProductKernel: String, Sendable {
    case panels, blas

    /// The environment variable that overrides the choice (`panels`, `blas` or `auto`), for
    /// measuring one against the other and for running the tests through both.
    public static let environmentVariable = "COHORT_RECURRENT_PRODUCT"

    /// `panels` where the project's own products run by default (`ownProductsByDefault`), unless
    /// the environment says otherwise. Where OpenBLAS itself runs on several threads (a program of
    /// the library's own), BLAS: `panelProduct` runs on the calling thread (`cohort bench lstm` on
    /// two cores of a Xeon family 6 model 207 with OpenBLAS on both, medians of 5 alternating runs,
    /// BLAS 6,010 images/s against panels 5,370; one core: panels 7,433 against BLAS 5,882).
    static func automatic() throws -> RecurrentProductKernel {
        try choosesOwnProduct(environmentVariable, own: panels.rawValue) ? .panels : .blas
    }
}

/// How a Winograd convolution multiplies its transformed tiles: the forward's M = U V and the input
/// gradient's U^T dM, per plane.
public enum WinogradProductKernel: String, Sendable {
    case streamed, blas

    /// The environment variable that overrides the choice (`streamed`, `blas` or `auto`).
    public static let environmentVariable = "COHORT_WINOGRAD_PRODUCT"

    /// `streamed` (`streamedProduct`) where the project's own products run by default, unless the
    /// environment says otherwise. `benchmarks/pair -r 6 -s 30`, one core each, Zen 4 with
    /// OpenBLAS's `Haswell` kernels: resnet20 1.08 and 1.09, resnetish 1.09; cnn 0.99 (its 7 x 7
    /// tiles a plane take BLAS, see `Conv2D.smallProduct`).
    static func automatic() throws -> WinogradProductKernel {
        try choosesOwnProduct(environmentVariable, own: streamed.rawValue) ? .streamed : .blas
    }
}

/// Whether the project's own products replace BLAS unless told otherwise: on AVX-512 builds
/// (`COHORT_AVX512`, where their SIMD16 tiles are one register each) with BLAS on one thread (a
/// worker under mpirun, a lone process with a `ThreadTeam`, whose threads each run their own
/// products, or one core).
func ownProductsByDefault() -> Bool {
    #if COHORT_AVX512
    return openblas_get_num_threads() == 1
    #else
    return false
    #endif
}

/// Reads `variable` (`own`, `blas` or `auto`, the default): whether to run the project's own product.
func choosesOwnProduct(_ variable: String, own: String) throws -> Bool {
    switch ProcessInfo.processInfo.environment[variable] ?? "auto" {
    case "auto": return ownProductsByDefault()
    case own: return true
    case "blas": return false
    case let other: throw CohortError("\(variable)=\(other): expected \(own), blas or auto")
    }
}
