import ArgumentParser
import Cohort

/// `--set key.path=value`, repeatable, for every command that reads a config.
struct ConfigOverrides: ParsableArguments {
    @Option(name: .customLong("set"),
            help: ArgumentHelp("Override a config value, checked like the file (repeatable): e.g. optimizer.lr=0.1, model.layers[11].dropout.p=0.3.",
                               valueName: "key.path=value"))
    var values: [String] = []

    func validate() throws {
        for value in values {
            do { _ = try ConfigOverride(value) } catch let error as CohortError { throw ValidationError(error.message) }
        }
    }

    /// The overrides, in the order given (a later one wins).
    var parsed: [ConfigOverride] { values.compactMap { try? ConfigOverride($0) } }

    /// `--set a=1 --set b=2` as typed, for messages that show how to run again.
    var commandLine: String { values.map { " --set '\($0)'" }.joined() }
}
