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
              cohort eval configs/mnist-cnn.yaml --checkpoint auto --json
              cohort bench cnn --json
            """,
        subcommands: [Train.self, Eval.self, Bench.self])
}

/// The exit status of a run that a signal stopped after writing its checkpoint (EX_TEMPFAIL: try again).
let interruptedExitStatus: Int32 = 75

/// Runs a command body with MPI started and exits with the status it returns.
///
/// An error is printed as one line, `error: ...`, and ends the whole job with status 1. When every
/// worker meets the same error (a bad config), rank 0's message is the one shown: other ranks give
/// it a moment to print and end the job before they speak for themselves.
func runWorker(_ body: (MPICommunicator) throws -> Int32) -> Never {
    let communicator = MPICommunicator()
    configureBLASThreads(worldSize: communicator.worldSize)
    do {
        let status = try body(communicator)
        communicator.finalize()
        exit(status)
    } catch {
        let message = (error as? CohortError)?.message ?? String(describing: error)
        if communicator.worldSize > 1 && communicator.rank != 0 { sleep(2) }
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        if communicator.worldSize > 1 { communicator.abort(code: 1) }
        communicator.finalize()
        exit(1)
    }
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

func printLine(_ line: String) {
    print(line)
    fflush(stdout)
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
