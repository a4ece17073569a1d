import Foundation

nonisolated(unsafe) private var receivedStopSignal: Int32 = 0
nonisolated(unsafe) private var receivedAt = timespec()

/// SIGTERM (a scheduler's pre-emption), SIGINT (Ctrl-C), SIGHUP (a closed terminal or ssh session)
/// and SIGUSR1 (what the launch scripts send mpirun, which hands it to every worker without ending
/// the job; a scheduler's warning) ask the run to stop cleanly: the flag travels with the next
/// step's allreduce so that all workers stop at the same step, and the coordinator writes a
/// checkpoint. A second signal ends the process at once, but not the same one again within a
/// second: Slurm ending a job at its time limit signals each task twice at once (through srun and
/// directly), which had ended the workers before their checkpoint.
public enum StopSignal {
    public static func install() {
        for number in [SIGTERM, SIGINT, SIGHUP, SIGUSR1] {
            signal(number) { number in
                var now = timespec()
                clock_gettime(CLOCK_MONOTONIC, &now)
                if receivedStopSignal != 0 {
                    let elapsed = Double(now.tv_sec - receivedAt.tv_sec) + Double(now.tv_nsec - receivedAt.tv_nsec) / 1e9
                    if number == receivedStopSignal && elapsed < 1 { return }
                    _exit(128 + number)
                }
                receivedAt = now
                receivedStopSignal = number
            }
        }
    }

    /// The signal received, or 0.
    public static var received: Int32 { receivedStopSignal }

    public static func name(_ number: Int32) -> String {
        switch number {
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        case SIGHUP: return "SIGHUP"
        case SIGUSR1: return "SIGUSR1"
        default: return "signal \(number)"
        }
    }
}
