import ArgumentParser
import Cohort
import Foundation

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The debug mode: check a config's model before training it (one process).",
        discussion: """
            Three reports on the model of CONFIG, from the weights training would
            start from:
              1. a gradient check in Double on a few training samples: each
                 layer's backward against central differences of its forward, and
                 each parameter's gradient of the loss end to end; it names the
                 layer whose gradient is wrong;
              2. per-layer statistics of the first training steps (Float, the
                 trainer's own step): mean and standard deviation of each layer's
                 output and gradient, dead ReLUs, and flags for vanishing
                 activations and vanishing or exploding gradients;
              3. the first layer where a value becomes NaN or infinite.
            Exits with status 1 and a last line 'error: ...' when a gradient is
            wrong or a value is not finite. `cohort train --debug` runs it too.

            Examples:
              cohort check configs/mnist-cnn.yaml
              cohort check configs/init-study/too-small.yaml --steps 1
              cohort check configs/mnist-mlp-sgd.yaml --set optimizer.lr=1e30
            """)

    @Argument(help: "The YAML config to check (default: configs/mnist-cnn.yaml).")
    var config: String?

    @OptionGroup var options: CheckOptions

    @OptionGroup var overrides: ConfigOverrides

    func run() throws {
        runCheck(path: config ?? defaultConfigPath(), options: options, overrides: overrides.parsed)
    }
}

/// The debug mode's own options, shared by `cohort check` and `cohort train --debug`.
struct CheckOptions: ParsableArguments {
    // Optional, so that `cohort train` can tell they were given without --debug.
    @Option(name: .customLong("samples"), parsing: .unconditional, help: "Training samples of the gradient check (default: 4).")
    var givenSamples: Int?

    @Option(name: .customLong("steps"), parsing: .unconditional, help: "Training steps to watch for statistics and NaN (default: 3).")
    var givenSteps: Int?

    @Option(name: .customLong("coordinates"), parsing: .unconditional, help: "Coordinates compared per tensor in the gradient check, 1 to 1000000 (default: 30); end to end, a model of more than 20 tensors shares 20 tensors' worth among them.")
    var givenCoordinates: Int?

    var samples: Int { givenSamples ?? 4 }
    var steps: Int { givenSteps ?? 3 }
    var coordinates: Int { givenCoordinates ?? 30 }
    var anyGiven: Bool { givenSamples != nil || givenSteps != nil || givenCoordinates != nil }

    func validate() throws {
        guard samples >= 1 else { throw ValidationError("--samples must be >= 1") }
        guard steps >= 1 else { throw ValidationError("--steps must be >= 1") }
        // More than any tensor is checked whole anyway; the bound keeps the counts' products in range.
        guard (1...1_000_000).contains(coordinates) else { throw ValidationError("--coordinates must be in 1...1000000") }
    }
}

/// Runs the debug mode on the config at `path` and exits: 0 when every check passed.
func runCheck(path: String, options: CheckOptions, overrides: [ConfigOverride]) -> Never {
    runWorker { communicator in
        guard communicator.worldSize == 1 else {
            throw CohortError("cohort check is the single-process debug mode: run it without mpirun (this job has \(communicator.worldSize) workers)")
        }
        let config = try ConfigLoader.load(path: path, overrides: overrides)
        try communicator.completeSetup()
        var checkOptions = ModelCheck.Options()
        checkOptions.samples = options.samples
        checkOptions.steps = options.steps
        checkOptions.gradient.coordinates = options.coordinates
        let model = try Model<Float>.built(from: config)
        printLine("check \(path): \(model.layers.count) layer\(model.layers.count == 1 ? "" : "s"), \(model.parameters.count) parameters, world=1")
        ModelSummary.lines(model).forEach(printLine)
        // On a terminal, a line that counts the gradient check's parts (it takes minutes on a deep network).
        let terminal = ProgressReporter.Terminal.standardOutput()
        let report: ModelCheck.Report
        do {
            report = try ModelCheck.run(config, options: checkOptions) { done, total in
                guard let terminal else { return }
                let line = "gradient check in Double: \(done) of \(total) (each parameter tensor end to end, then each layer)"
                terminal.write("\r" + line.prefix(terminal.columns - 1) + "\u{1B}[K")
            }
        } catch {
            terminal?.write("\r\u{1B}[K")  // before the error's line
            throw error
        }
        terminal?.write("\r\u{1B}[K")
        report.notes.forEach(printLine)
        if report.gradient.samples < options.samples {
            printLine("note: --samples \(options.samples): the training set has \(report.gradient.samples) samples, all of them checked")
        }
        for line in CheckReport.lines(report, coordinates: options.coordinates) { printLine(line) }
        if let failure = CheckReport.failure(report) { throw CohortError(failure) }
        return 0
    }
}
