import Foundation

/// Checks a TOML document's shape before toml++ (through TOMLKit) parses it.
///
/// toml++ guards some of its parser's invariants with `assert`, and those
/// asserts are compiled into Kiln's builds: `name = "x"` followed by
/// `[[\a]]` aborted the process (exit 134), a daemon's `--config` file too.
/// Every key toml++ will read (in a `[table]` or `[[array]]` header, before
/// an `=`, inside an inline table) is checked here against TOML's key
/// grammar, so that the parser only ever sees keys it can take. The scan also
/// bounds what made toml++ slow or deep: the document's size, the parts of a
/// dotted key and the nesting of arrays and inline tables.
package enum TOMLPreflight {
    package static let maxBytes = 1 << 20
    package static let maxKeyParts = 32
    package static let maxNesting = 32

    /// What is wrong and on which line (1-based).
    package struct Problem: Error, Equatable, CustomStringConvertible {
        package let line: Int
        package let reason: String
        package var description: String { "line \(line): \(reason)" }
    }

    package static func check(_ text: String) throws(Problem) {
        var scanner = Scanner(Array(text.utf8))
        guard scanner.bytes.count <= maxBytes else {
            throw Problem(line: 1, reason: "the file is \(scanner.bytes.count) bytes; at most \(maxBytes) are read")
        }
        try scanner.document()
    }

    struct Scanner {
        let bytes: [UInt8]
        var i = 0
        var line = 1
        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { i >= bytes.count }
        var current: UInt8? { i < bytes.count ? bytes[i] : nil }
        func peek(_ offset: Int) -> UInt8? { i + offset < bytes.count ? bytes[i + offset] : nil }

        func fail(_ reason: String) -> Problem { Problem(line: line, reason: reason) }

        mutating func advance() {
            if bytes[i] == UInt8(ascii: "\n") { line += 1 }
            i += 1
        }

        mutating func skipBlanks() {
            while let c = current, c == 0x20 || c == 0x09 { i += 1 }
        }

        /// Blanks, newlines and comments (inside arrays).
        mutating func skipBlanksNewlinesComments() {
            while let c = current {
                if c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { advance() }
                else if c == UInt8(ascii: "#") { skipComment() }
                else { return }
            }
        }

        mutating func skipComment() {
            while let c = current, c != 0x0A { i += 1 }
        }

        static func isBare(_ c: UInt8) -> Bool {
            (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39)
                || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
        }

        mutating func document() throws(Problem) {
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }  // a UTF-8 byte order mark
            while !atEnd {
                skipBlanks()
                guard let c = current else { return }
                switch c {
                case 0x0A, 0x0D: advance()
                case UInt8(ascii: "#"): skipComment()
                case UInt8(ascii: "["):
                    i += 1
                    let array = current == UInt8(ascii: "[")
                    if array { i += 1 }
                    try key(until: UInt8(ascii: "]"))
                    guard current == UInt8(ascii: "]") else { throw fail("a table header ends with ]") }
                    i += 1
                    if array {
                        guard current == UInt8(ascii: "]") else { throw fail("an array-of-tables header ends with ]]") }
                        i += 1
                    }
                    try endOfLine()
                default:
                    try keyValue(depth: 0)
                    try endOfLine()
                }
            }
        }

        mutating func endOfLine() throws(Problem) {
            skipBlanks()
            guard let c = current else { return }
            if c == UInt8(ascii: "#") { skipComment(); return }
            guard c == 0x0A || (c == 0x0D && peek(1) == 0x0A) else {
                throw fail("unexpected text after a value or header; put one key = value or [table] on each line")
            }
        }

        /// A dotted key, up to (not including) `end` (`=` or `]`).
        mutating func key(until end: UInt8) throws(Problem) {
            var parts = 0
            while true {
                skipBlanks()
                guard let c = current else { throw fail("the file ends inside a key") }
                if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                    try singleLineString(quote: c, inKey: true)
                } else if Self.isBare(c) {
                    while let b = current, Self.isBare(b) { i += 1 }
                } else {
                    throw fail("a key is made of letters, digits, - and _, or is quoted (\"…\"); found \(Self.show(c))")
                }
                parts += 1
                guard parts <= maxKeyParts else { throw fail("a key has more than \(maxKeyParts) dotted parts") }
                skipBlanks()
                guard let next = current else { throw fail("the file ends inside a key") }
                if next == UInt8(ascii: ".") { i += 1; continue }
                guard next == end else {
                    throw fail("expected \(Self.show(end)) after the key, found \(Self.show(next))")
                }
                return
            }
        }

        mutating func keyValue(depth: Int) throws(Problem) {
            try key(until: UInt8(ascii: "="))
            i += 1
            skipBlanks()
            try value(depth: depth)
        }

        mutating func value(depth: Int) throws(Problem) {
            guard depth < maxNesting else { throw fail("arrays and inline tables nest deeper than \(maxNesting) levels") }
            guard let c = current else { throw fail("a key has no value") }
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                if peek(1) == c && peek(2) == c { try multiLineString(quote: c) } else { try singleLineString(quote: c, inKey: false) }
            case UInt8(ascii: "["):
                let start = line
                i += 1
                while true {
                    skipBlanksNewlinesComments()
                    guard let b = current else { throw Problem(line: start, reason: "the array that starts here does not end") }
                    if b == UInt8(ascii: "]") { i += 1; return }
                    try value(depth: depth + 1)
                    skipBlanksNewlinesComments()
                    if current == UInt8(ascii: ",") { i += 1; continue }
                    guard current == UInt8(ascii: "]") else { throw fail("array elements are separated by commas") }
                }
            case UInt8(ascii: "{"):
                i += 1
                skipBlanks()
                if current == UInt8(ascii: "}") { i += 1; return }
                while true {
                    skipBlanks()
                    try keyValue(depth: depth + 1)
                    skipBlanks()
                    guard let b = current else { throw fail("the file ends inside an inline table") }
                    if b == UInt8(ascii: "}") { i += 1; return }
                    guard b == UInt8(ascii: ",") else { throw fail("an inline table's entries are separated by commas, on one line") }
                    i += 1
                }
            default:
                // A number, date, boolean: up to the next delimiter; the parser checks its form.
                var length = 0
                while let b = current, b != 0x0A, b != 0x0D, b != UInt8(ascii: ","), b != UInt8(ascii: "]"),
                      b != UInt8(ascii: "}"), b != UInt8(ascii: "#") {
                    guard b >= 0x20 || b == 0x09 else { throw fail("a control character (\(Self.show(b))) in a value") }
                    i += 1
                    length += 1
                }
                if length == 0 { throw fail("a key has no value") }
                // Trailing blanks were taken in; a value with inner blanks (a date-time) is left to the parser.
            }
        }

        mutating func singleLineString(quote: UInt8, inKey: Bool) throws(Problem) {
            i += 1
            while true {
                guard let c = current, c != 0x0A else {
                    throw fail(inKey ? "a quoted key does not end on its line" : "a string does not end on its line; use \"\"\" for several lines")
                }
                if c == quote { i += 1; return }
                if c == 0x7F || (c < 0x20 && c != 0x09) {
                    throw fail("a control character (\(Self.show(c))) in a string; write it as an escape such as \\n or \\u0000")
                }
                if c == UInt8(ascii: "\\") && quote == UInt8(ascii: "\"") {
                    try refuseNULEscape()
                    i += 1
                    guard current != nil else { continue }
                }
                i += 1
            }
        }

        mutating func multiLineString(quote: UInt8) throws(Problem) {
            let start = line
            i += 3
            while true {
                guard let c = current else { throw Problem(line: start, reason: "the multi-line string that starts here does not end") }
                if c == quote && peek(1) == quote && peek(2) == quote {
                    i += 3
                    // Up to two more quotes belong to the string.
                    while current == quote { i += 1 }
                    return
                }
                if c == 0x7F || (c < 0x20 && c != 0x09 && c != 0x0A && c != 0x0D) {
                    throw fail("a control character (\(Self.show(c))) in a string; write it as an escape")
                }
                if c == UInt8(ascii: "\\") && quote == UInt8(ascii: "\"") {
                    try refuseNULEscape()
                    advance()
                    guard current != nil else { continue }
                }
                advance()
            }
        }

        /// At a backslash: `\u0000` or `\U00000000` reach Swift as a C string
        /// from toml++, cut at the NUL without a word.
        func refuseNULEscape() throws(Problem) {
            let rest = bytes[(i + 1)...].prefix(9)
            if rest.starts(with: Array("u0000".utf8)) || rest.starts(with: Array("U00000000".utf8)) {
                throw fail("a string contains a NUL character (\\u0000), which would cut the value short; remove it")
            }
        }

        static func show(_ c: UInt8) -> String {
            c >= 0x21 && c < 0x7F ? "\"\(Character(Unicode.Scalar(c)))\"" : String(format: "byte 0x%02X", c)
        }
    }
}
