import Yams

/// A YAML mapping read key by key, each value checked for its type and range.
///
/// Every message names the file and the key's dotted path (`optimizer.lr`) and, where YAML knows
/// it, the line. Keys that were never asked for are reported by `finish()`, so no typo is ignored.
struct YAMLTable {
    let file: String
    let path: String
    private let entries: [(key: String, value: Node)]
    private var readKeys: Set<String> = []
    let mark: Mark?

    init(_ node: Node, file: String, path: String) throws {
        self.file = file
        self.path = path
        mark = node.mark
        guard case .mapping(let mapping) = node else {
            throw YAMLTable.error(file, path, "expected a mapping of keys to values, got \(YAMLTable.describe(node))", node.mark)
        }
        var entries: [(String, Node)] = []
        for (key, value) in mapping {
            guard let name = key.string else {
                throw YAMLTable.error(file, path, "keys must be strings", key.mark)
            }
            if entries.contains(where: { $0.0 == name }) {
                throw YAMLTable.error(file, child(path, name), "duplicate key", key.mark)
            }
            if name == "<<" {
                throw YAMLTable.error(file, path.isEmpty ? "<<" : child(path, name), "YAML merge keys are not supported: write the keys out", key.mark)
            }
            entries.append((name, value))
        }
        self.entries = entries
    }

    var keys: [String] { entries.map(\.key) }

    func contains(_ key: String) -> Bool { entries.contains { $0.key == key } }

    mutating func node(_ key: String) -> Node? {
        guard let entry = entries.first(where: { $0.key == key }) else { return nil }
        readKeys.insert(key)
        if case .scalar = entry.value, entry.value.null != nil { return nil }
        return entry.value
    }

    /// Whether the key is given as null (which `node` reads as absent).
    mutating func isNull(_ key: String) -> Bool {
        guard let entry = entries.first(where: { $0.key == key }), case .scalar = entry.value else { return false }
        return entry.value.null != nil
    }

    mutating func table(_ key: String) throws -> YAMLTable? {
        guard let node = node(key) else { return nil }
        return try YAMLTable(node, file: file, path: child(path, key))
    }

    mutating func int(_ key: String, range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let node = node(key) else { return nil }
        guard case .scalar = node, let value = node.int else {
            if let text = YAMLTable.unquotedWholeNumber(node) {
                // Past Int's range: the key's own range says more than "64 bits" (a seed of 2^64 - 1 fits them).
                throw fail(key, range.map { "must be in \($0.lowerBound)...\($0.upperBound), got \(text)" } ?? "must fit in 64 bits, got \(text)", node.mark)
            }
            throw fail(key, "expected an integer, got \(YAMLTable.describe(node))", node.mark)
        }
        if let range, !range.contains(value) {
            throw fail(key, "must be \(YAMLTable.describe(range)), got \(value)", node.mark)
        }
        return value
    }

    /// The text of a plain (unquoted) scalar that is a whole number, which an integer key could not
    /// read: it is past 64 bits. A quoted `"16"` is a string, said as such by the caller.
    static func unquotedWholeNumber(_ node: Node) -> String? {
        guard case .scalar(let scalar) = node, scalar.style == .plain else { return nil }
        let text = scalar.string
        let digits = text.first == "-" || text.first == "+" ? text.dropFirst() : Substring(text)
        return !digits.isEmpty && digits.allSatisfy({ $0.isASCII && $0.isNumber }) ? text : nil
    }

    mutating func double(_ key: String, _ check: (Double) -> Bool = { _ in true }, expected: String = "") throws -> Double? {
        guard let node = node(key) else { return nil }
        guard case .scalar = node, let value = node.float ?? node.int.map(Double.init) else {
            throw fail(key, "expected a number, got \(YAMLTable.describe(node))", node.mark)
        }
        if !value.isFinite || !check(value) {
            let finite = value.isFinite || expected.hasPrefix("a ") ? "" : expected.isEmpty ? "a finite number" : "a finite number "
            throw fail(key, "must be \(finite)\(expected), got \(node.string ?? String(value))", node.mark)
        }
        return value
    }

    mutating func bool(_ key: String) throws -> Bool? {
        guard let node = node(key) else { return nil }
        guard case .scalar = node, let value = node.bool else {
            throw fail(key, "expected true or false, got \(YAMLTable.describe(node))", node.mark)
        }
        return value
    }

    mutating func string(_ key: String) throws -> String? {
        guard let node = node(key) else { return nil }
        guard case .scalar(let scalar) = node else {
            throw fail(key, "expected a string, got \(YAMLTable.describe(node))", node.mark)
        }
        return scalar.string
    }

    /// A file or directory name: a string, not empty.
    mutating func path(_ key: String) throws -> String? {
        guard let path = try string(key) else { return nil }
        guard !path.isEmpty else { throw fail(key, "expected a path, got an empty string", node(key)?.mark) }
        return path
    }

    mutating func intList(_ key: String) throws -> [Int]? {
        guard let node = node(key) else { return nil }
        guard case .sequence(let sequence) = node else {
            throw fail(key, "expected a list of integers, got \(YAMLTable.describe(node))", node.mark)
        }
        return try sequence.map { element in
            guard let value = element.int else {
                throw fail(key, "expected a list of integers, got \(YAMLTable.describe(element)) in it", element.mark)
            }
            return value
        }
    }

    /// A square window's side (`kernel_size`, `stride`, `padding`): one integer, or two equal ones
    /// as PyTorch writes them (`kernel_size=(3, 3)`); a rectangle is an error saying so.
    mutating func side(_ key: String, range: ClosedRange<Int>) throws -> Int? {
        guard let node = node(key), case .sequence(let items) = node else { return try int(key, range: range) }
        if let huge = items.first(where: { $0.int == nil }).flatMap(YAMLTable.unquotedWholeNumber) {
            throw fail(key, "must be \(YAMLTable.describe(range)), got \(huge)", node.mark)
        }
        let sides = try intList(key) ?? []
        guard sides.count == 2 else {
            throw fail(key, "expected one integer or two equal ones, got a list of \(items.count)", node.mark)
        }
        guard sides[0] == sides[1] else {
            throw fail(key, "\(Cohort.describe(sides)) is a rectangle; Cohort's windows are square: give one integer", node.mark)
        }
        guard range.contains(sides[0]) else { throw fail(key, "must be \(YAMLTable.describe(range)), got \(sides[0])", node.mark) }
        return sides[0]
    }

    mutating func doubleList(_ key: String) throws -> [Double]? {
        guard let node = node(key) else { return nil }
        guard case .sequence(let sequence) = node else {
            throw fail(key, "expected a list of numbers, got \(YAMLTable.describe(node))", node.mark)
        }
        return try sequence.map { element in
            guard case .scalar = element, let value = element.float ?? element.int.map(Double.init), value.isFinite else {
                let finite = element.float.map { !$0.isFinite } == true ? "finite " : ""
                throw fail(key, "expected a list of \(finite)numbers, got \(YAMLTable.describe(element)) in it", element.mark)
            }
            return value
        }
    }

    /// Reports the first key that nobody read.
    func finish() throws {
        if let unknown = entries.first(where: { !readKeys.contains($0.key) }) {
            throw YAMLTable.error(file, child(path, unknown.key), "unknown key", unknown.value.mark)
        }
    }

    /// Every key the table may hold, where its reader states them up front: then a required key's
    /// absence is reported after any key outside them (`learning_rate` given for `lr` is a
    /// misspelling, not a missing learning rate). nil: `finish()` alone finds unknown keys.
    var accepted: Set<String>?

    /// A required key that is absent, or, first, a key outside `accepted`.
    func missing(_ key: String, _ what: String) -> CohortError {
        if let accepted, let stranger = entries.first(where: { !accepted.contains($0.key) }) {
            return YAMLTable.error(file, child(path, stranger.key), "unknown key", stranger.value.mark)
        }
        return YAMLTable.error(file, child(path, key), "missing: \(what)", nil)
    }

    func fail(_ key: String, _ message: String, _ mark: Mark? = nil) -> CohortError {
        YAMLTable.error(file, child(path, key), message, mark ?? self.mark)
    }

    static func error(_ file: String, _ path: String, _ message: String, _ mark: Mark?) -> CohortError {
        let line = mark.map { " (line \($0.line))" } ?? ""
        return CohortError("\(file): \(path.isEmpty ? "top level" : path): \(message)\(line)")
    }

    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar):
            // A number in quotes is a string in YAML: say why '0.1' is not a number.
            let quoted = scalar.style == .singleQuoted || scalar.style == .doubleQuoted
            return quoted ? "the quoted string '\(scalar.string)'" : "'\(scalar.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    static func describe(_ range: ClosedRange<Int>) -> String {
        if range.upperBound == Int.max { return ">= \(range.lowerBound)" }
        return "in \(range.lowerBound)...\(range.upperBound)"
    }
}

func child(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
