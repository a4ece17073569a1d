import CPosix
import Foundation

nonisolated(unsafe) private var receivedStopSignal: Int32 = 0
nonisolated(unsafe) private var receivedAt = timespec()
/// The stop signals' dispositions when the process started (`StopSignal.numbers`' order).
nonisolated(unsafe) private var startingActions: [sigaction] = []

/// The thread that runs `main`, which holds the stop signals until the command takes them.
nonisolated(unsafe) private var mainThread: pthread_t?
/// Whether the process is about to replace its program (`StopSignal.carryOverExec`).
nonisolated(unsafe) private var replacingProgram = false

/// The clean stop's handler: notes the signal, or ends the process at a second one. Just before an
/// exec (on another thread: OpenBLAS's run before `main`), it leaves the signal pending on the main
/// thread instead, where the new program finds it.
private func takeStopSignal(_ number: Int32) {
    if replacingProgram, let mainThread {
        pthread_kill(mainThread, number)
        return
    }
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

/// SIGTERM (a scheduler's pre-emption), SIGINT (Ctrl-C), SIGHUP (a closed terminal or ssh session)
/// and SIGUSR1 (what the launch scripts send mpirun, which hands it to every worker without ending
/// the job; a scheduler's warning) ask the run to stop cleanly: the flag travels with the next
/// step's allreduce so that all workers stop at the same step, and the coordinator writes a
/// checkpoint. A second signal ends the process at once, but not the same one again within a
/// second: Slurm ending a job at its time limit signals each task twice at once (through srun and
/// directly), which had ended the workers before their checkpoint. SIGHUP stays ignored where it
/// was at start (`nohup`).
///
/// The handler takes the stop signals from the first instruction of `main` (`hold`), and the main
/// thread holds them (blocked, pending, through the restart for faster BLAS kernels too) until the
/// command says what a stop means: `train` stops after its first step (`install`), the others act
/// as the process would have at start (`release`: by default, end). A signal during start-up
/// (the restart, a worker's start under mpirun: 15-50 ms) had ended a run by the signal, with no
/// line and no exit status 75.
public enum StopSignal {
    static let numbers = [SIGTERM, SIGINT, SIGHUP, SIGUSR1]

    /// First thing in `main`.
    public static func hold() {
        mainThread = pthread_self()
        startingActions = numbers.map { number in
            var action = sigaction()
            sigaction(number, nil, &action)
            return action
        }
        setHandlers()
        mask(SIG_BLOCK)
    }

    /// For `train`: a stop signal from now on, or one taken or held since start, stops the run cleanly.
    public static func install() {
        setHandlers()
        mask(SIG_UNBLOCK)
    }

    /// For the other commands: the dispositions of start again, and a stop signal taken since
    /// start acts as it would have then.
    public static func release() {
        for (index, number) in numbers.enumerated() where index < startingActions.count {
            sigaction(number, &startingActions[index], nil)
        }
        mask(SIG_UNBLOCK)
        if receivedStopSignal != 0 { raise(receivedStopSignal) }
    }

    /// Just before an exec, which resets the handler, on the main thread: a signal taken since
    /// start, or one that comes until the exec, is left pending (held) for the new program.
    public static func carryOverExec() {
        replacingProgram = true
        if receivedStopSignal != 0 { raise(receivedStopSignal) }
    }

    /// After an exec that failed: signals are taken here again (one held for the new program is
    /// taken when the command installs or releases).
    static func stayAfterFailedExec() {
        replacingProgram = false
    }

    private static func setHandlers() {
        for number in numbers where !(number == SIGHUP && wasIgnoredAtStart(SIGHUP)) {
            signal(number, takeStopSignal)
        }
    }

    private static func wasIgnoredAtStart(_ number: Int32) -> Bool {
        guard let index = numbers.firstIndex(of: number), index < startingActions.count else { return false }
        var action = startingActions[index]
        return withUnsafePointer(to: &action) { cohort_action_ignores($0) != 0 }
    }

    private static func mask(_ how: Int32) {
        var set = sigset_t()
        sigemptyset(&set)
        for number in numbers { sigaddset(&set, number) }
        sigprocmask(how, &set, nil)
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
