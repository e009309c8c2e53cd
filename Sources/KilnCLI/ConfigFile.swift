import Foundation
import Images
import Scheduler
import TOMLKit

/// `kiln scheduler` and `kiln agent` read their options from a TOML file as
/// well as from flags: `--config FILE`, else `/etc/kiln/scheduler.toml` or
/// `/etc/kiln/agent.toml` when it exists. Keys are the long option names
/// (`bind`, `max-attempts`, …). The file's entries become arguments placed
/// before the command line's, and only for options the command line does
/// not name, so a flag always wins. Relative paths are taken from the file's
/// directory. docs/operating.md has examples.
enum ConfigFile {
    /// `duration`: 90s, 30m, 36h, 7d (`keep` also takes "forever"); `gib`: a size in GiB, 0 or more.
    enum Kind { case text, number, integer, texts, path, duration, keep, gib }

    static let keys: [String: [String: Kind]] = [
        "scheduler": [
            "bind": .text, "state": .path, "key": .path, "allow": .path, "metrics": .text, "api": .text, "lease": .number,
            "max-attempts": .integer, "log-level": .text, "store": .path, "source-cache": .path, "logs": .path,
            "store-cap": .gib, "stream-max-compressed-gib": .number, "stream-max-extracted-gib": .number,
            "stream-max-entries": .integer, "stream-window-log-max": .integer, "store-free-reserve-gib": .number,
            "max-slots": .integer, "attempt-deadline": .duration, "stage-timeout": .duration,
            "keep-artifacts": .keep, "keep-history": .keep, "min-free-gib": .gib,
        ],
        "agent": [
            "scheduler": .text, "arch": .texts, "state": .path, "key": .path, "scheduler-key": .path, "slots": .integer,
            "name": .text, "metrics": .text, "log-level": .text, "store": .path, "source-cache": .path, "logs": .path,
            "store-cap": .gib, "min-free-gib": .gib,
        ],
    ]

    /// The arguments with the config file's entries put in; argv[0] excluded.
    static func expand(_ arguments: [String]) throws(ConfigFileError) -> [String] {
        guard let command = arguments.first, let known = keys[command] else { return arguments }
        var rest = Array(arguments.dropFirst())
        var file: String?
        if let i = rest.firstIndex(where: { $0 == "--config" || $0.hasPrefix("--config=") }) {
            if rest[i] == "--config" {
                guard i + 1 < rest.count else { throw ConfigFileError(file: "--config", line: nil, problem: "name a file") }
                file = rest[i + 1]
                rest.removeSubrange(i...(i + 1))
            } else {
                file = String(rest[i].dropFirst("--config=".count))
                rest.remove(at: i)
            }
            guard FileManager.default.fileExists(atPath: file!) else {
                throw ConfigFileError(file: file!, line: nil, problem: "no such file")
            }
        } else if FileManager.default.fileExists(atPath: "/etc/kiln/\(command).toml") {
            file = "/etc/kiln/\(command).toml"
        }
        guard let file else { return [command] + rest }
        let given = Set(
            rest.compactMap { a -> String? in
                guard a.hasPrefix("--") else { return nil }
                return String(a.dropFirst(2).split(separator: "=", maxSplits: 1).first ?? "")
            })
        return [command] + (try entries(file, command: command, known: known).filter { !given.contains($0.key) }.flatMap(\.args)) + rest
    }

    struct Entry {
        var key: String
        var args: [String]
    }

    static func entries(_ file: String, command: String, known: [String: Kind]) throws(ConfigFileError) -> [Entry] {
        let text: String
        do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
            throw ConfigFileError(file: file, line: nil, problem: "cannot read it: \(error.localizedDescription)")
        }
        do { try TOMLPreflight.check(text) } catch {
            throw ConfigFileError(file: file, line: error.line, problem: "not valid TOML: \(error.reason)")
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ConfigFileError(file: file, line: e.source.begin.line, problem: "not valid TOML: \(e.description)")
        } catch {
            throw ConfigFileError(file: file, line: nil, problem: "not valid TOML: \(error)")
        }
        let lines = TOMLLineIndex.lines(of: text)
        let base = (file as NSString).deletingLastPathComponent
        var out: [Entry] = []
        for (key, value) in table.sorted(by: { $0.0 < $1.0 }) {
            let line = lines[key]
            guard let kind = known[key] else {
                throw ConfigFileError(
                    file: file, line: line,
                    problem: "unknown key \"\(key)\" for kiln \(command); "
                        + "known keys: \(known.keys.sorted().joined(separator: ", "))")
            }
            func bad(_ wanted: String) -> ConfigFileError {
                ConfigFileError(file: file, line: line, problem: "\(key) must be \(wanted)")
            }
            switch kind {
            case .text, .path:
                guard let s = value.string, !s.isEmpty else { throw bad("a non-empty string") }
                let v = kind == .path && !s.hasPrefix("/") ? (base.isEmpty ? s : "\(base)/\(s)") : s
                out.append(Entry(key: key, args: ["--\(key)", v]))
            case .integer:
                guard let n = value.int else { throw bad("an integer") }
                out.append(Entry(key: key, args: ["--\(key)", "\(n)"]))
            case .number:
                guard let n = value.double ?? value.int.map(Double.init) else { throw bad("a number") }
                out.append(Entry(key: key, args: ["--\(key)", "\(n)"]))
            case .gib:
                guard let n = value.double ?? value.int.map(Double.init), n >= 0, n < 1e9 else {
                    throw bad("a size in GiB, 0 or more (such as 2 or 0.5)")
                }
                out.append(Entry(key: key, args: ["--\(key)", "\(n)"]))
            case .duration, .keep:
                let forever = kind == .keep ? "; or \"forever\"" : ""
                guard let s = value.string, (kind == .keep && s == "forever") || (Since.parse(s) ?? 0) >= 1000 else {
                    throw bad("a duration of at least 1s as a string, such as \"90m\", \"36h\" or \"7d\"\(forever)")
                }
                out.append(Entry(key: key, args: ["--\(key)", s]))
            case .texts:
                var strings: [String] = []
                if let one = value.string {
                    strings = [one]
                } else if let list = value.array {
                    for item in list {
                        guard let s = item.string else { throw bad("a string or an array of strings") }
                        strings.append(s)
                    }
                }
                guard !strings.isEmpty else { throw bad("a string or an array of strings") }
                out.append(Entry(key: key, args: strings.flatMap { ["--\(key)", $0] }))
            }
        }
        return out
    }
}

/// A config file kiln cannot use (exit code 2).
struct ConfigFileError: Error, CustomStringConvertible, BadInput {
    var file: String
    var line: Int?
    var problem: String
    var isBadInput: Bool { true }
    var description: String { "\(file)\(line.map { ":\($0)" } ?? ""): \(problem)" }
}
