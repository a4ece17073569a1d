import ArgumentParser
import Cohort
import Foundation

@main
struct CohortCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cohort",
        abstract: "A data-parallel deep-learning trainer for CPUs: one process, or N workers under mpirun.",
        discussion: """
            Examples:
              cohort train                                   # the default CNN on the bundled MNIST subset
              cohort train configs/mnist-cnn.yaml --resume auto
              mpirun -np 2 cohort train configs/mnist-cnn.yaml
              cohort train configs/mnist-cnn.yaml --set train.epochs=5
              cohort eval configs/mnist-cnn.yaml --checkpoint auto --json
              cohort predict configs/mnist-cnn.yaml images.idx --output p.csv
              cohort inspect configs/mnist-cnn.yaml          # pictures of what it learned
              cohort check configs/mnist-cnn.yaml            # the debug mode
              cohort bench cnn --json
            """,
        subcommands: [Train.self, Eval.self, Predict.self, Inspect.self, Check.self, Bench.self])

    static func main() {
        StopSignal.hold()
        // A closed pipe is an error that the writer reports (`printResult`), not a signal that ends the process.
        signal(SIGPIPE, SIG_IGN)
        BLASKernels.selectFastKernels()
        holdStandardDescriptors()
        refuseAddressSpaceTooSmallToStart()
        refuseArgumentsThatAreNotUTF8()
        var command: ParsableCommand
        do {
            command = try parseAsRoot(nil)
        } catch {
            exitRefusingArguments(error)
        }
        // `train` takes the held stop signals once it can stop cleanly (`StopSignal.install`).
        if !(command is Train) { StopSignal.release() }
        do {
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    /// One line and exit status 1 under a `ulimit -v` too tight to start under. `_exit`: OpenBLAS's
    /// threads may be retrying their mmap already, and `exit` would wait for them forever.
    private static func refuseAddressSpaceTooSmallToStart() {
        guard let message = addressSpaceTooSmallToStart() else { return }
        if LauncherEnvironment.rank == 0 { printError("error: \(message)") }
        _exit(1)
    }

    /// Swift reads the command line as UTF-8, replacing what is not: a file name in another encoding
    /// would name another file (`--output` would write to it). One line, exit status 64.
    private static func refuseArgumentsThatAreNotUTF8() {
        for index in stride(from: 1, to: Int(CommandLine.argc), by: 1) {
            guard let argument = CommandLine.unsafeArgv[index], String(validatingCString: argument) == nil else { continue }
            if LauncherEnvironment.rank == 0 {
                printError("error: argument \(index) ('\(String(decoding: UnsafeRawBufferPointer(start: argument, count: strlen(argument)), as: UTF8.self))') is not valid UTF-8; Cohort takes its arguments, file names too, in UTF-8")
            }
            Foundation.exit(64)
        }
    }

    /// Help and `--version` as ArgumentParser prints them; a refused command line as every other
    /// error, one line on standard error (`error: ...`, with where to find the usage), exit status 64.
    private static func exitRefusingArguments(_ error: Error) -> Never {
        guard exitCode(for: error) != .success else { exit(withError: error) }
        let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
        // ArgumentParser's last line names the command's help: "  See 'cohort train --help' for more information."
        let help = fullMessage(for: error).components(separatedBy: "See '").dropFirst().last?.prefix { $0 != "'" }
        // Every worker under mpirun reads the same command line: the first one alone says what is wrong.
        if LauncherEnvironment.rank == 0 {
            printError("error: \(message)\(help.map { " (see '\($0)')" } ?? "")")
        }
        Foundation.exit(exitCode(for: error).rawValue)
    }
}

/// The exit status of a run that a signal stopped after writing its checkpoint (EX_TEMPFAIL: try again).
let interruptedExitStatus: Int32 = 75

/// Runs a command body with MPI started and exits with the status it returns.
///
/// An error is printed as one line, `error: ...`, and the job exits with status 1. An error during
/// set-up (before the workers' `agreeOnSetup`) is usually met by every worker alike: the workers
/// agree on it and the lowest failing rank alone prints it. An error after set-up ends the whole
/// job at once through MPI_Abort, since the other workers may be waiting in a collective; one that
/// every worker meets alike (`CohortError.sameOnEveryWorker`) is printed by rank 0 alone.
func runWorker(_ body: (MPICommunicator) throws -> Int32) -> Never {
    let communicator = MPICommunicator()
    announceStart(communicator)
    configureBLASThreads(worldSize: communicator.worldSize)
    do {
        try communicator.checkEnvironment()
        try reserveBLASWorkspace()
        let status = try body(communicator)
        communicator.finalize()
        exit(status)
    } catch let peer as PeerSetupFailure {
        _ = peer
        communicator.finalize()
        exit(1)
    } catch {
        let message = (error as? CohortError)?.message ?? String(describing: error)
        if communicator.worldSize > 1 && !communicator.setupAgreed {
            let failing = (try? communicator.agreeOnSetup(failed: true)) ?? [communicator.rank]
            if failing.first == communicator.rank { printError("error: \(message)") }
            communicator.finalize()
            exit(1)
        }
        let sameOnEveryWorker = (error as? CohortError)?.sameOnEveryWorker ?? false
        if !sameOnEveryWorker || communicator.isCoordinator { printError("error: \(message)") }
        if communicator.worldSize > 1 { communicator.abort(code: 1) }
        communicator.finalize()
        exit(1)
    }
}

/// Tells the launch scripts (`run_mpirun` in launch/common.sh) that every worker has started (every
/// host's daemon answered mpirun): rank 0 writes the line the script asked for in
/// `COHORT_START_LINE` to standard error, where the script reads it and keeps it out of what it prints.
func announceStart(_ communicator: MPICommunicator) {
    guard communicator.isCoordinator, let line = ProcessInfo.processInfo.environment["COHORT_START_LINE"], !line.isEmpty else { return }
    printError(line)
}

/// The config to use when none is given: `configs/mnist-cnn.yaml` in the current directory, or in
/// the project the binary was built in.
func defaultConfigPath() -> String {
    let name = "configs/mnist-cnn.yaml"
    if FileManager.default.fileExists(atPath: name) { return name }
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
    }
    while directory.path != "/" {
        let candidate = directory.appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: candidate.path) { return candidate.path }
        directory.deleteLastPathComponent()
    }
    return name
}

