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

/// Runs a command body with MPI started, printing any error as one line and exiting 1.
func runWorker(_ body: (MPICommunicator) throws -> Void) -> Never {
    let communicator = MPICommunicator()
    configureBLASThreads(worldSize: communicator.worldSize)
    do {
        try body(communicator)
        communicator.finalize()
        exit(0)
    } catch {
        let message = (error as? CohortError)?.message ?? String(describing: error)
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
