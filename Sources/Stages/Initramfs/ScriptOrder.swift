import Foundation

/// The `ORDER` files mkinitramfs writes into each `/scripts/<phase>/`
/// directory: every executable script once, after the scripts named in its
/// `PREREQ`, read statically from the script instead of running it.
package enum ScriptOrder {
    /// Prerequisites a boot script or hook declares (`PREREQ="a b"`, or `echo "a b"` inside `prereqs()`).
    package static func prerequisites(of script: String) -> [String] {
        var inFunction = false
        for raw in script.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            for key in ["PREREQ=", "PREREQS="] where line.hasPrefix(key) {
                return words(String(line.dropFirst(key.count)))
            }
            if line.hasPrefix("prereqs()") || line.hasPrefix("prereqs ()") { inFunction = true; continue }
            if inFunction {
                if line.hasPrefix("echo ") && !line.contains("$") { return words(String(line.dropFirst(5))) }
                if line.hasPrefix("}") { inFunction = false }
            }
        }
        return []
    }

    private static func words(_ value: String) -> [String] {
        var v = value
        if let hash = v.firstIndex(of: "#") { v = String(v[..<hash]) }
        return v.trimmingCharacters(in: CharacterSet(charactersIn: "\"' ;")).split(whereSeparator: { $0 == " " || $0 == "\t" })
            .map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"'")) }.filter { !$0.isEmpty }
    }

    /// Topological order of `scripts` (name → prerequisites); ties broken by name, unknown prerequisites ignored.
    package static func order(_ scripts: [String: [String]]) -> [String] {
        var indegree: [String: Int] = [:], after: [String: [String]] = [:]
        for name in scripts.keys { indegree[name] = 0 }
        for (name, pre) in scripts {
            for p in Set(pre) where scripts[p] != nil && p != name {
                indegree[name, default: 0] += 1
                after[p, default: []].append(name)
            }
        }
        var ready = indegree.filter { $0.value == 0 }.map(\.key).sorted(by: byteOrder)
        var out: [String] = []
        while !ready.isEmpty {
            let n = ready.removeFirst()
            out.append(n)
            for m in after[n] ?? [] {
                indegree[m]! -= 1
                if indegree[m] == 0 { ready.append(m); ready.sort(by: byteOrder) }
            }
        }
        // A cycle: append the rest by name so that no script is lost (tsort warns and does the same).
        out += indegree.keys.filter { !out.contains($0) }.sorted(by: byteOrder)
        return out
    }

    /// The text of an `ORDER` file for `directory` (e.g. `/scripts/init-top`).
    package static func orderFile(directory: String, scripts: [String]) -> String {
        scripts.map { "\(directory)/\($0) \"$@\"\n[ -e /conf/param.conf ] && . /conf/param.conf\n" }.joined()
    }

    static func byteOrder(_ a: String, _ b: String) -> Bool { Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8)) }

    /// Whether mkinitramfs accepts `name` as a script or configuration file name.
    static func acceptable(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "._-".unicodeScalars.contains($0) }
    }
}
