import ArgumentParser
import Cohort
import Foundation

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
    var commandLine: String { values.map { " --set \(shellQuoted($0))" }.joined() }
}

/// `text` as one word of a POSIX shell's command line: as it is where it has nothing a shell would
/// read otherwise, else in single quotes (a quote inside as `'\''`).
func shellQuoted(_ text: String) -> String {
    let plain = !text.isEmpty && text.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_-./=:,+@%".unicodeScalars.contains($0)) }
    return plain ? text : "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
}
