/// The header dictionary of a NumPy `.npy` file, a Python literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), }`.
///
/// Read by a small scanner that accepts exactly that grammar: string keys, and values that are
/// strings, `True`/`False` or tuples of non-negative integers. Anything else is a reason (a
/// message) rather than a crash, since the bytes come from a user's file.
public struct NumPyHeader: Sendable, Equatable {
    public var descr: String
    public var fortranOrder: Bool
    public var shape: [Int]

    public init(descr: String, fortranOrder: Bool, shape: [Int]) {
        self.descr = descr; self.fortranOrder = fortranOrder; self.shape = shape
    }

    /// Parses the dictionary `text`; the error says what is wrong with it, without the file's name.
    public init(parsing text: [UInt8]) throws(NumPyHeaderError) {
        var scanner = Scanner(bytes: text)
        var descr: String?, fortran: Bool?, shape: [Int]?
        try scanner.expect(UInt8(ascii: "{"))
        while true {
            scanner.skipSpace()
            if scanner.take(UInt8(ascii: "}")) { break }
            let key = try scanner.string()
            try scanner.expect(UInt8(ascii: ":"))
            scanner.skipSpace()
            switch key {
            case "descr":
                guard scanner.peek != UInt8(ascii: "[") else { throw NumPyHeaderError("a structured dtype (a list of fields) is not supported") }
                descr = try scanner.string()
            case "fortran_order": fortran = try scanner.boolean()
            case "shape": shape = try scanner.tuple()
            default: throw NumPyHeaderError("unknown header key '\(key)'")
            }
            scanner.skipSpace()
            if scanner.take(UInt8(ascii: ",")) { continue }
            try scanner.expect(UInt8(ascii: "}"))
            break
        }
        scanner.skipSpace()
        guard scanner.atEnd else { throw NumPyHeaderError("text after the header dictionary") }
        guard let descr else { throw NumPyHeaderError("the header has no 'descr' (dtype)") }
        guard let fortran else { throw NumPyHeaderError("the header has no 'fortran_order'") }
        guard let shape else { throw NumPyHeaderError("the header has no 'shape'") }
        self.init(descr: descr, fortranOrder: fortran, shape: shape)
    }

    private struct Scanner {
        let bytes: [UInt8]
        var at = 0

        var atEnd: Bool { at >= bytes.count }
        var peek: UInt8? { atEnd ? nil : bytes[at] }

        mutating func skipSpace() {
            while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { at += 1 }
        }

        mutating func take(_ c: UInt8) -> Bool {
            guard peek == c else { return false }
            at += 1
            return true
        }

        mutating func expect(_ c: UInt8) throws(NumPyHeaderError) {
            skipSpace()
            guard take(c) else { throw NumPyHeaderError("malformed header: expected '\(Character(Unicode.Scalar(c)))' at byte \(at)") }
        }

        mutating func string() throws(NumPyHeaderError) -> String {
            skipSpace()
            guard let quote = peek, quote == UInt8(ascii: "'") || quote == UInt8(ascii: "\"") else {
                throw NumPyHeaderError("malformed header: expected a quoted string at byte \(at)")
            }
            at += 1
            let start = at
            while let c = peek, c != quote { at += 1 }
            guard !atEnd else { throw NumPyHeaderError("malformed header: unterminated string") }
            let text = String(decoding: bytes[start..<at], as: UTF8.self)
            at += 1
            return text
        }

        mutating func boolean() throws(NumPyHeaderError) -> Bool {
            for (word, value) in [("True", true), ("False", false)] where bytes[at...].starts(with: word.utf8) {
                at += word.utf8.count
                return value
            }
            throw NumPyHeaderError("malformed header: fortran_order must be True or False")
        }

        /// `()`, `(5,)` or `(5, 3, 32, 32)`; Python 2 headers may write `5L`.
        mutating func tuple() throws(NumPyHeaderError) -> [Int] {
            try expect(UInt8(ascii: "("))
            var values: [Int] = []
            while true {
                skipSpace()
                if take(UInt8(ascii: ")")) { return values }
                var value = 0, digits = 0
                while let c = peek, (0x30...0x39).contains(c) {
                    guard digits < 18 else { throw NumPyHeaderError("a dimension of the shape is too large") }
                    value = value * 10 + Int(c - 0x30)
                    digits += 1
                    at += 1
                }
                guard digits > 0 else { throw NumPyHeaderError("malformed header: the shape must be a tuple of non-negative integers") }
                _ = take(UInt8(ascii: "L"))
                values.append(value)
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                try expect(UInt8(ascii: ")"))
                return values
            }
        }
    }
}

/// What is wrong with a `.npy` header.
public struct NumPyHeaderError: Error, Equatable {
    public let reason: String
    init(_ reason: String) { self.reason = reason }
}
