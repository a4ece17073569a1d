import CBLAS
import Foundation

/// One BLAS thread per worker when several share the machine under mpirun; all cores for a lone process.
public func configureBLASThreads(worldSize: Int) {
    if worldSize > 1 { openblas_set_num_threads(1) }
}

/// OpenBLAS kernels that make full use of a CPU with the given features.
///
/// Debian's OpenBLAS 0.3.21 does not recognise some recent processors and falls back to generic
/// kernels (`Prescott`: about 5 times slower for sgemm on an AVX-512 Xeon). It reads
/// `OPENBLAS_CORETYPE` only when it loads, so the fix is to set it and start again.
public enum BLASKernels {
    static let avx512Cores: Set<String> = ["SkylakeX", "Cooperlake", "SapphireRapids"]
    static let avx2Cores: Set<String> = avx512Cores.union(["Haswell", "Zen"])

    /// The core type to ask for, or nil when `current` already suits a CPU with `flags`.
    public static func betterCore(current: String, cpuFlags flags: Set<String>) -> String? {
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(flags.contains) {
            return avx512Cores.contains(current) ? nil : "SkylakeX"
        }
        if flags.contains("avx2") && flags.contains("fma") {
            return avx2Cores.contains(current) ? nil : "Haswell"
        }
        return nil
    }

    /// The kernels OpenBLAS chose, e.g. `Cooperlake`.
    public static var current: String { String(cString: openblas_get_corename()) }

    static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// Restarts the process with faster kernels when OpenBLAS picked slow ones and the user did not
    /// choose (`OPENBLAS_CORETYPE` unset). Call first thing, before MPI starts: the process keeps
    /// its PID, so this works under mpirun too.
    public static func selectFastKernels() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["OPENBLAS_CORETYPE"] == nil, environment["COHORT_BLAS_REEXEC"] == nil,
              let core = betterCore(current: current, cpuFlags: cpuFlags()) else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv("COHORT_BLAS_REEXEC", "1", 1)
        var arguments = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &arguments)
        // execv returns only on failure: carry on with the slower kernels.
    }
}
