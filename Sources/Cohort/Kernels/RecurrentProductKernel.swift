import CBLAS
import Foundation

/// How the recurrent layers multiply by W_hh at each time step.
public enum RecurrentProductKernel: String, Sendable {
    case panels, blas

    /// The environment variable that overrides the choice (`panels`, `blas` or `auto`), for
    /// measuring one against the other and for running the tests through both.
    public static let environmentVariable = "COHORT_RECURRENT_PRODUCT"

    /// `panels` on AVX-512 builds where BLAS runs on one thread (a worker under mpirun, a lone
    /// process with a `ThreadTeam`, whose threads each run their share of the samples, or one
    /// core), unless the environment says otherwise. Where OpenBLAS itself runs on several threads
    /// (a program of the library's own), BLAS: `panelProduct` runs on the calling thread (`cohort
    /// bench lstm` on two cores of a Xeon family 6 model 207 with OpenBLAS on both, medians of 5
    /// alternating runs, BLAS 6,010 images/s against panels 5,370; one core: panels 7,433 against
    /// BLAS 5,882).
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
