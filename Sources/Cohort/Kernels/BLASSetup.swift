import CBLAS
import CPosix
import Synchronization
import Foundation

/// One thread per worker when several share the machine under mpirun. A lone process runs a
/// `ThreadTeam` of as many threads as OpenBLAS would have used (one per core it may run on, or
/// OPENBLAS_NUM_THREADS), never more than the cores it may run on: the team's threads spin while
/// they wait for each other, which threads sharing a core would turn into whole time slices lost.
/// Each thread is bound to a CPU of its own (6 alternating runs each on 2 cores, medians: lstm
/// 9,316 -> 10,072 images/s, mlp 28,186 -> 28,986, resnet20 413 -> 436; the slowest runs rose
/// most). OpenBLAS itself then runs on one.
public func configureBLASThreads(worldSize: Int) {
    let allowed = Int(cohort_allowed_cpus())
    let threads = min(Int(openblas_get_num_threads()), allowed > 0 ? allowed : ProcessInfo.processInfo.activeProcessorCount)
    openblas_set_num_threads(1)
    if worldSize == 1 && threads > 1 && ThreadTeam.current == nil {
        ThreadTeam.current = ThreadTeam(size: threads, bind: true)
    }
}

/// The address space a process takes to start, before any work: OpenBLAS's threads map their
/// workspace as the library loads and MPI's start maps its own (PMIx's segments; a lone process
/// forks a daemon). Measured (this project's Zen 5, 2 cores): a lone `cohort train` at 450-530 MB
/// once MPI has started, a worker of `mpirun -np 2` at about 340 MB; a lone process started under
/// `ulimit -v 400000` printed pages of PMIx errors, under 250000 it hung.
let addressSpaceToStart = 450.0 * 1_048_576

/// The error for a `ulimit -v` too tight to start under, checked first thing (OpenBLAS's threads
/// retry their mmap forever under it, and the process then hangs even on its way out, its exit
/// waiting for them); nil without a limit or under a wider one, which the exact checks after
/// MPI's start measure against (`reserveBLASWorkspace`, `MemoryBudget`).
public func addressSpaceTooSmallToStart() -> String? {
    guard let limit = addressSpaceLimit(), limit < addressSpaceToStart else { return nil }
    return String(format: "ulimit -v allows this process %.0f MB of address space, and starting MPI and OpenBLAS takes about %.0f MB before any work; raise the limit",
                  limit / 1_048_576, addressSpaceToStart / 1_048_576)
}

/// The address space OpenBLAS maps for one thread's workspace, with margin (131 MB measured).
let blasBufferBytes = 160.0 * 1_048_576

/// Has OpenBLAS map its workspace now, on every thread that will call it, once `ulimit -v` is
/// seen to leave room for it. OpenBLAS maps its buffer at a thread's first product (131 MB more
/// VmSize after one 64 x 64 product with the `Haswell` kernels on this project's Zen 4), and when
/// the address space cannot take it, it retries mmap forever: a run under a tight limit spun at
/// 100 % of a core instead of failing. Mapped here, the buffer is also in the VmSize that every
/// later memory check (`MemoryBudget`) subtracts from the limit.
public func reserveBLASWorkspace() throws {
    let threads = ThreadTeam.current?.size ?? 1
    let needed = Double(threads) * blasBufferBytes
    if let left = addressSpaceLeft(), left < needed {
        throw CohortError(String(format: "ulimit -v leaves this process %.0f MB of address space, and OpenBLAS maps about %.0f MB of workspace (%d thread%@); raise the limit",
                                 left / 1_048_576, needed / 1_048_576, threads, threads == 1 ? "" : "s"))
    }
    let side = 64
    let a = [Float](repeating: 1, count: side * side)
    func product() {
        var c = [Float](repeating: 0, count: side * side)
        Float.blasGemm(transA: false, transB: false, m: side, n: side, k: side, alpha: 1, a: a, lda: side, b: a, ldb: side,
                       beta: 0, c: &c, ldc: side)
    }
    guard let team = ThreadTeam.current else { return product() }
    // OpenBLAS lends a thread the buffer another has given back, so products one after the other
    // may map fewer buffers than the team's overlapping products later need (a ResNet-110's eval
    // under ulimit -v 1000000 spun in OpenBLAS's mmap retries at its first convolution; with the
    // products held to start together it ran). Each member waits until all are in.
    let started = Atomic<Int>(0)
    team.run { _ in
        started.add(1, ordering: .sequentiallyConsistent)
        while started.load(ordering: .sequentiallyConsistent) < team.size { cohort_spin_pause() }
        for _ in 0..<20 { product() }
    }
}

/// OpenBLAS kernels that make full use of a CPU with the given features.
///
/// Debian's OpenBLAS 0.3.21 does not recognise some recent processors and falls back to generic
/// kernels (`Prescott`: about 5 times slower for sgemm on an AVX-512 Xeon). It reads
/// `OPENBLAS_CORETYPE` only when it loads, so the fix is to set it and start again.
///
/// AMD's Zen 4 (family 25 with AVX-512) is the opposite case: OpenBLAS gives it its AVX-512
/// `Cooperlake` kernels, but Zen 4 runs 512-bit instructions as two 256-bit halves, and the AVX2
/// `Haswell` kernels, blocked for 8-float registers, are faster there. Measured on a 2-core Zen 4
/// (EPYC, family 25 model 17): sgemm 1024^3 on one core 110 against 101 GFLOP/s; the 32-channel
/// convolution products of resnetish's first block 85-94 against 53-73 GFLOP/s; `cohort bench
/// resnetish` per core 11 % faster, cnn, mlp and lstm 1-8 %. Zen 5 (family 26) executes AVX-512
/// at full width and keeps the AVX-512 kernels.
public enum BLASKernels {
    static let avx512Cores: Set<String> = ["SkylakeX", "Cooperlake", "SapphireRapids"]
    static let avx2Cores: Set<String> = avx512Cores.union(["Haswell", "Zen"])

    /// What chooses the kernels: the CPU's feature flags, vendor and family, from /proc/cpuinfo.
    public struct CPU: Sendable {
        public var flags: Set<String>
        public var vendor = ""
        public var family = 0

        public init(flags: Set<String>, vendor: String = "", family: Int = 0) {
            self.flags = flags; self.vendor = vendor; self.family = family
        }

        var hasAVX512: Bool { ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(flags.contains) }
        var hasAVX2: Bool { flags.contains("avx2") && flags.contains("fma") }
        /// Zen 4: AVX-512 on 256-bit units.
        var splitsAVX512: Bool { vendor == "AuthenticAMD" && family == 25 }
    }

    /// The core type to ask for, or nil when `current` already suits `cpu`.
    public static func betterCore(current: String, cpu: CPU) -> String? {
        if cpu.hasAVX512 && cpu.splitsAVX512 { return current == "Haswell" ? nil : "Haswell" }
        if cpu.hasAVX512 { return avx512Cores.contains(current) ? nil : "SkylakeX" }
        if cpu.hasAVX2 { return avx2Cores.contains(current) ? nil : "Haswell" }
        return nil
    }

    /// The kernels OpenBLAS chose, e.g. `Cooperlake`.
    public static var current: String { String(cString: openblas_get_corename()) }

    /// This machine's CPU, from /proc/cpuinfo (no flags where it cannot be read: nothing changes).
    static func thisCPU() -> CPU {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return CPU(flags: []) }
        // The first processor's entries: "key<tabs>: value" lines up to the first blank line.
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            fields[key] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return CPU(flags: Set((fields["flags"] ?? "").split(separator: " ").map(String.init)),
                   vendor: fields["vendor_id"] ?? "", family: Int(fields["cpu family"] ?? "") ?? 0)
    }

    /// Restarts the process with faster kernels when OpenBLAS picked slower ones and the user did not
    /// choose (`OPENBLAS_CORETYPE` unset). Call first thing, before MPI starts and before anything
    /// opens a file on a closed standard descriptor (the new process inherits the descriptors, and
    /// must see the closed ones closed): the process keeps its PID, so this works under mpirun too.
    /// The new process takes back the name the first had (`ps`, `pgrep -x cohort`; an exec of
    /// /proc/self/exe names it "exe"). No restart for a program started as the dynamic loader's
    /// argument: /proc/self/exe is then the loader.
    public static func selectFastKernels() {
        let environment = ProcessInfo.processInfo.environment
        if let name = environment[restartedNameVariable] {
            cohort_set_process_name(name)
            unsetenv(restartedNameVariable)
        }
        guard environment["OPENBLAS_CORETYPE"] == nil, environment["COHORT_BLAS_REEXEC"] == nil, cohort_started_by_loader() == 0,
              let core = betterCore(current: current, cpu: thisCPU()) else { return }
        var name = [CChar](repeating: 0, count: 16)
        cohort_process_name(&name)
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv("COHORT_BLAS_REEXEC", "1", 1)
        setenv(restartedNameVariable, name, 1)
        StopSignal.carryOverExec()
        // The arguments as the process got them: `CommandLine.arguments` has replaced what is not
        // UTF-8, and the new process would then take another file name than the one given.
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv returns only on failure: carry on with the slower kernels.
        StopSignal.stayAfterFailedExec()
        unsetenv(restartedNameVariable)
    }

    /// The environment variable that carries the process's name into the restarted one.
    static let restartedNameVariable = "COHORT_RESTARTED_AS"
}
