import ArgumentParser
import Cohort
import Foundation

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model from a YAML config (default: configs/mnist-cnn.yaml).",
        discussion: """
            Examples:
              cohort train
              cohort train configs/mnist-cnn.yaml --resume auto
              mpirun -np 2 cohort train configs/mnist-cnn.yaml
              cohort train configs/mnist-cnn.yaml --set optimizer.lr=0.02
              cohort train configs/mnist-cnn.yaml --debug    # see cohort check --help
            """)

    @Argument(help: "The YAML config of the run.")
    var config: String?

    @Option(help: ArgumentHelp("Continue from the newest checkpoint under checkpoint.dir ('auto', or start fresh if there is none) or from a checkpoint directory.", valueName: "auto|DIR"))
    var resume: String?

    @OptionGroup var overrides: ConfigOverrides

    @Flag(help: "Run the debug mode (cohort check) on CONFIG instead of training.")
    var debug = false

    @OptionGroup(title: "Debug mode options (with --debug)") var checkOptions: CheckOptions

    func validate() throws {
        if debug && resume != nil { throw ValidationError("--debug checks the initial model: --resume does not apply") }
        if resume == "" { throw ValidationError("--resume: expected auto or a checkpoint directory, got an empty string") }
        if !debug && checkOptions.anyGiven {
            throw ValidationError("--samples, --steps and --coordinates are options of --debug (to train N steps: --set train.max_steps=N)")
        }
    }

    func run() throws {
        let path = config ?? defaultConfigPath()
        if debug {
            // The check is no run to stop cleanly: a signal during it ends it, as `cohort check`.
            StopSignal.release()
            runCheck(path: path, options: checkOptions, overrides: overrides.parsed)
        }
        let resumeMode: ResumeMode = switch resume {
        case nil: .fresh
        case "auto": .auto
        case let directory?: .directory(directory)
        }
        // Before anything else: a signal while the config and data load stops the run after its first step.
        StopSignal.install()
        runWorker { communicator in
            let config = try ConfigLoader.load(path: path, overrides: overrides.parsed)
            communicator.timeoutSeconds = config.distributed.timeoutSeconds
            let trainer = Trainer(config: config, communicator: communicator, log: printLine)
            trainer.terminal = .standardOutput()
            let summary = try trainer.run(resume: resumeMode)
            guard communicator.isCoordinator else { return summary.interrupted ? interruptedExitStatus : 0 }
            if summary.interrupted {
                let cause = summary.signal != 0 ? StopSignal.name(summary.signal) : "a signal to another worker"
                let command = continueCommand(worldSize: communicator.worldSize) + " \(shellQuoted(path))\(overrides.commandLine) --resume auto"
                printError("stopped at step \(summary.steps) by \(cause); checkpoint \(summary.checkpoint ?? "?"); continue with: \(command)")
                return interruptedExitStatus
            }
            return 0
        }
    }
}

/// How the user started this run, for the hint after a stop: the launch script's own command
/// (`COHORT_LAUNCH_COMMAND`, which `launch/local` and `launch/hosts` pass to the workers), else
/// `mpirun -np N cohort train` for several workers, else `cohort train`.
func continueCommand(worldSize: Int) -> String {
    if let launcher = ProcessInfo.processInfo.environment["COHORT_LAUNCH_COMMAND"], !launcher.isEmpty { return launcher }
    return worldSize > 1 ? "mpirun -np \(worldSize) cohort train" : "cohort train"
}
