import ArgumentParser
import Cohort
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time training steps of a canonical workload (cnn, mlp, lstm, resnetish, resnet20) on random data.",
        discussion: """
            `cohort bench gemm` instead measures single-precision GEMM (1024^3, best of 10) on this \
            machine, in GFLOP/s, with the BLAS kernels and threads in use: the ceiling of every workload.

            Examples:
              cohort bench cnn
              mpirun -np 2 cohort bench resnetish --steps 20 --json
              mpirun -np 2 cohort bench cnn --compress bf16
              OPENBLAS_NUM_THREADS=1 cohort bench gemm
            """)

    @Argument(help: "One of cnn, mlp, lstm, resnetish, resnet20; or gemm.")
    var workload: String

    // Unconditional: `--steps -1` is a wrong number of steps, not a missing one. Optional, so that
    // `gemm` can refuse what it does not use.
    @Option(parsing: .unconditional, help: "Timed steps after 5 warm-up steps (default: 30).")
    var steps: Int?

    @Option(parsing: .unconditional, help: "The global batch, split over the workers (default: 64).")
    var batch: Int?

    @Option(help: "How gradients travel between workers: none (float32, the default) or bf16 (bfloat16, summed in float32).")
    var compress: String?

    @Flag(inversion: .prefixedNo, help: "Sum gradients during backward, on a communication thread, where they travel as messages (--no-overlap: after it; default: during). Workers on one host sum float32 gradients through shared memory after backward either way.")
    var overlap: Bool?

    @Flag(help: "End with one JSON line.")
    var json = false

    func validate() throws {
        guard Workload(rawValue: workload) != nil || workload == "gemm" else {
            throw ValidationError("unknown workload '\(workload)' (expected one of \(Workload.allCases.map(\.rawValue).joined(separator: ", ")), or gemm)")
        }
        if workload == "gemm" {
            let unused = [("--steps", steps != nil), ("--batch", batch != nil), ("--compress", compress != nil),
                          (overlap == false ? "--no-overlap" : "--overlap", overlap != nil)].filter(\.1).map(\.0)
            guard unused.isEmpty else {
                throw ValidationError("\(unused.joined(separator: ", ")) \(unused.count == 1 ? "does" : "do") not apply to gemm (it times one 1024^3 product)")
            }
        }
        guard timedSteps >= 1 else { throw ValidationError("--steps must be >= 1") }
        guard globalBatch >= 1 else { throw ValidationError("--batch must be >= 1") }
        guard compression != nil else {
            throw ValidationError("--compress must be none or bf16, got '\(compress ?? "")'")
        }
    }

    private var timedSteps: Int { steps ?? 30 }
    private var globalBatch: Int { batch ?? 64 }
    private var compression: GradientCompression? { GradientCompression(rawValue: compress ?? "none") }

    func run() throws {
        if workload == "gemm" {
            let rate = Benchmark.gemmGigaflops(size: 1024, repeats: 10)
            printLine(String(format: "gemm size=1024 kernels=%@ GFLOP/s=%.1f", BLASKernels.current, rate))
            if json { printLine(String(format: "{\"workload\": \"gemm\", \"size\": 1024, \"gflops\": %.1f}", rate)) }
            return
        }
        runWorker { communicator in
            guard globalBatch >= communicator.worldSize else {
                throw CohortError("--batch \(globalBatch) cannot be shared by \(communicator.worldSize) workers")
            }
            let result = try Benchmark.run(Workload(rawValue: workload)!, steps: timedSteps, batch: globalBatch,
                                           compression: compression!, overlap: overlap ?? true, communicator: communicator,
                                           ready: communicator.completeSetup)
            guard communicator.isCoordinator else { return 0 }
            printLine(String(format: "%@ world=%d batch=%d images/s=%.1f ms/step=%.1f", result.workload, result.world,
                             result.batch, result.imagesPerSecond, result.millisecondsPerStep))
            if json {
                printLine(String(format: "{\"workload\": \"%@\", \"world\": %d, \"batch\": %d, \"images_per_sec\": %.1f, \"ms_per_step\": %.1f}",
                                 result.workload, result.world, result.batch, result.imagesPerSecond, result.millisecondsPerStep))
            }
            return 0
        }
    }
}
