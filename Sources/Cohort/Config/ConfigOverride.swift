import Yams

/// One `--set key.path=value` of the command line: a value put into the config's YAML tree before
/// the tree is checked, so that it is validated exactly as if it were in the file.
///
/// The path is keys joined by dots, with `[i]` for an item of a list (`model.layers[2].dropout.p`);
/// the value is YAML: a scalar (`0.3`, `true`, `adam`), a flow list (`[1, 28, 28]`) or a flow
/// mapping (`{name: step, step_size: 100}`). Keys that do not exist yet are added (the check then
/// rejects those the config does not know); a list item must exist.
public struct ConfigOverride: Sendable, Equatable, CustomStringConvertible {
    public enum Component: Sendable, Equatable {
        case key(String)
        case index(Int)
    }

    public let path: [Component]
    /// The value as YAML text.
    public let value: String
    /// `key.path=value` as given.
    public let description: String

    /// Parses `key.path=value`; a malformed path is an error that quotes it.
    public init(_ text: String) throws {
        guard let equals = text.firstIndex(of: "=") else {
            throw CohortError("--set \(text): expected key.path=value")
        }
        // Messages quote it on their one line: line breaks in a value are shown escaped.
        description = text.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
        value = String(text[text.index(after: equals)...])
        path = try ConfigOverride.parsePath(String(text[..<equals]), whole: text)
        // The tree is built one level per part, recursively: no config key lies this deep.
        guard path.count <= ConfigOverride.deepestPath else {
            throw CohortError("--set \(description.prefix(40))...: a key path of \(path.count) parts; no config key lies deeper than \(ConfigOverride.deepestPath)")
        }
    }

    static let deepestPath = 64

    /// The path as the config's messages write it: `model.layers[2].dropout.p`.
    public var pathDescription: String { ConfigOverride.describe(path) }

    static func describe<C: Collection>(_ components: C) -> String where C.Element == Component {
        var result = ""
        for component in components {
            switch component {
            case .key(let key): result += result.isEmpty ? key : ".\(key)"
            case .index(let index): result += "[\(index)]"
            }
        }
        return result
    }

    private static func parsePath(_ path: String, whole: String) throws -> [Component] {
        var components: [Component] = []
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            var rest = Substring(part)
            let key = rest.prefix { $0 != "[" }
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw CohortError("--set \(whole): '\(path)' is not a key path (keys joined by dots, [i] for list items, e.g. model.layers[2].dropout.p)")
            }
            components.append(.key(String(key)))
            rest = rest.dropFirst(key.count)
            while !rest.isEmpty {
                guard rest.first == "[", let close = rest.firstIndex(of: "]"),
                      let index = Int(rest[rest.index(after: rest.startIndex)..<close]), index >= 0 else {
                    throw CohortError("--set \(whole): '\(path)' is not a key path (a list item is [i] with i >= 0)")
                }
                components.append(.index(index))
                rest = rest[rest.index(after: close)...]
            }
        }
        return components
    }

    /// `root` with the value put at the path; `file` names the config in messages.
    func apply(to root: Node, file: String) throws -> Node {
        let parsed: Node?
        do {
            parsed = try Yams.compose(yaml: value)
        } catch {
            throw CohortError("\(file): \(pathDescription): --set \(description): the value is not valid YAML")
        }
        let value = ConfigOverride.withoutMarks(parsed ?? Node(""))
        return try insert(value, into: root, at: path[...], file: file)
    }

    private func insert(_ value: Node, into node: Node?, at path: ArraySlice<Component>, file: String) throws -> Node {
        guard let component = path.first else { return value }
        let here = ConfigOverride.describe(self.path[..<path.startIndex])
        let place = here.isEmpty ? "top level" : here
        switch component {
        case .key(let key):
            var pairs: [(Node, Node)] = []
            var tag = Tag.implicit, style = Node.Mapping.Style.any, mark: Mark?
            switch node {
            case .mapping(let mapping)?:
                pairs = mapping.map { ($0.key, $0.value) }
                (tag, style, mark) = (mapping.tag, mapping.style, mapping.mark)
            case nil:
                break
            case let other? where other.null != nil:
                break
            case let other?:
                throw CohortError("\(file): \(place): --set \(description): \(place) is \(YAMLTable.describe(other)), not a mapping with keys")
            }
            if let position = pairs.firstIndex(where: { $0.0.string == key }) {
                pairs[position].1 = try insert(value, into: pairs[position].1, at: path.dropFirst(), file: file)
            } else {
                pairs.append((Node(key), try insert(value, into: nil, at: path.dropFirst(), file: file)))
            }
            return .mapping(Node.Mapping(pairs, tag, style, mark))
        case .index(let index):
            guard case .sequence(var sequence)? = node else {
                let what = node.map { YAMLTable.describe($0) } ?? "absent"
                throw CohortError("\(file): \(place): --set \(description): \(place) is \(what), not a list")
            }
            guard index < sequence.count else {
                throw CohortError("\(file): \(place)[\(index)]: --set \(description): no such item (the list has \(sequence.count), from [0])")
            }
            sequence[index] = try insert(value, into: sequence[index], at: path.dropFirst(), file: file)
            return .sequence(sequence)
        }
    }

    /// The value's positions are in the command line, not in the file: drop them, so that no
    /// message quotes a misleading line.
    private static func withoutMarks(_ node: Node) -> Node {
        switch node {
        case .scalar(var scalar):
            scalar.mark = nil
            return .scalar(scalar)
        case .sequence(let sequence):
            return .sequence(Node.Sequence(sequence.map(withoutMarks), sequence.tag, sequence.style, nil))
        case .mapping(let mapping):
            return .mapping(Node.Mapping(mapping.map { (withoutMarks($0.key), withoutMarks($0.value)) }, mapping.tag, mapping.style, nil))
        case .alias:
            return node
        }
    }
}
