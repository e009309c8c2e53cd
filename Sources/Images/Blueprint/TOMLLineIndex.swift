import Foundation

/// Finds the line of each key in TOML text, so errors can say `blueprint.toml:12`.
/// Key paths use the reader's form: `customizations.user[1].groups`. This is a
/// scan for headers and `key =` lines, not a second parser: keys inside inline
/// tables are found only as their enclosing key.
package enum TOMLLineIndex {
    package static func lines(of text: String) -> [String: Int] {
        var result: [String: Int] = [:]
        var arrayCounts: [String: Int] = [:]  // plain dotted path of an array of tables → elements so far
        var current = ""
        var openString: String? = nil  // the delimiter of a multi-line string being skipped

        func record(_ path: String, _ line: Int) {
            if result[path] == nil { result[path] = line }
        }
        // `a.b.c` → `a.b[2].c` when `a.b` is an array of tables.
        func indexed(_ keys: [String]) -> String {
            var plain = ""
            var out = ""
            for k in keys {
                plain = plain.isEmpty ? k : "\(plain).\(k)"
                out = out.isEmpty ? k : "\(out).\(k)"
                if let n = arrayCounts[plain], n > 0 { out += "[\(n - 1)]" }
            }
            return out
        }

        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNo = i + 1
            let line = raw.trimmingLeadingWhitespace()
            if let delim = openString {
                if line.contains(delim) { openString = nil }
                continue
            }
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[[") {
                guard let end = line.range(of: "]]") else { continue }
                let keys = splitKey(line[line.index(line.startIndex, offsetBy: 2)..<end.lowerBound])
                let plain = keys.joined(separator: ".")
                arrayCounts[plain, default: 0] += 1
                // A new element starts its own nested arrays: the second partition's first
                // logical volume is partitions[1].logical_volumes[0].
                for nested in arrayCounts.keys where nested.hasPrefix(plain + ".") { arrayCounts[nested] = nil }
                current = indexed(keys)
                record(plain, lineNo)
                for n in 1...max(1, keys.count) { record(indexed(Array(keys.prefix(n))), lineNo) }
            } else if line.hasPrefix("[") {
                guard let end = line.firstIndex(of: "]") else { continue }
                let keys = splitKey(line[line.index(after: line.startIndex)..<end])
                current = indexed(keys)
                for n in 1...max(1, keys.count) { record(indexed(Array(keys.prefix(n))), lineNo) }
            } else if let eq = equalsIndex(line) {
                let keys = splitKey(line[..<eq])
                guard !keys.isEmpty else { continue }
                for n in 1...keys.count {
                    let k = keys.prefix(n).joined(separator: ".")
                    record(current.isEmpty ? k : "\(current).\(k)", lineNo)
                }
                let value = line[line.index(after: eq)...]
                for delim in ["\"\"\"", "'''"] where value.contains(delim) {
                    if value.components(separatedBy: delim).count == 2 { openString = delim }
                }
            }
        }
        return result
    }

    /// `a . "b.c" . d` → ["a", "b.c", "d"].
    static func splitKey(_ s: Substring) -> [String] {
        var keys: [String] = []
        var cur = ""
        var quote: Character? = nil
        for c in s {
            if let q = quote {
                if c == q { quote = nil } else { cur.append(c) }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "." {
                keys.append(cur.trimmingCharacters(in: .whitespaces))
                cur = ""
            } else {
                cur.append(c)
            }
        }
        keys.append(cur.trimmingCharacters(in: .whitespaces))
        return keys.filter { !$0.isEmpty }
    }

    /// The `=` that separates a key from its value (not one inside a quoted key).
    static func equalsIndex(_ s: Substring) -> Substring.Index? {
        var quote: Character? = nil
        for i in s.indices {
            let c = s[i]
            if let q = quote { if c == q { quote = nil } } else if c == "\"" || c == "'" { quote = c } else if c == "=" { return i }
        }
        return nil
    }
}

extension Substring {
    fileprivate func trimmingLeadingWhitespace() -> Substring { drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }) }
}
