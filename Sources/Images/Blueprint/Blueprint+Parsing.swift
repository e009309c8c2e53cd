import Foundation
import Manifest
import TOMLKit

// Reading a blueprint file: TOML or JSON text into the document that
// `BlueprintReader` checks key by key. Which keys exist, and which osbuild
// keys are rejected and why, is `BlueprintKeys`; `docs/blueprint.md` is the
// user's reference.
extension Blueprint {
    /// Reads a blueprint file; `.json` files (or text starting with `{`) are
    /// JSON, anything else TOML. Errors name `path` as given.
    package static func load(path: String) throws(BlueprintError) -> Blueprint {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
            throw BlueprintError(file: path, keyPath: "", problem: .invalid(reason: "the file \(reason); give the path of a blueprint (.toml or .json)"))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw BlueprintError(file: path, keyPath: "", problem: .syntax(format: "UTF-8 text", reason: "the file contains bytes that are not UTF-8"))
        }
        let isJSON = path.lowercased().hasSuffix(".json")
            || (!path.lowercased().hasSuffix(".toml") && text.drop(while: \.isWhitespace).first == "{")
        return isJSON ? try parse(json: text, file: path) : try parse(toml: text, file: path)
    }

    /// Parses a TOML blueprint.
    package static func parse(toml text: String, file: String = "blueprint.toml") throws(BlueprintError) -> Blueprint {
        do { try TOMLPreflight.check(text) } catch {
            throw BlueprintError(file: file, keyPath: "", line: error.line, problem: .syntax(format: "TOML", reason: error.reason))
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw BlueprintError(file: file, keyPath: "", line: error.source.begin.line,
                                 problem: .syntax(format: "TOML", reason: "\(error.description) (column \(error.source.begin.column))"))
        } catch {
            throw BlueprintError(file: file, keyPath: "", problem: .syntax(format: "TOML", reason: "\(error)"))
        }
        let origin = BlueprintOrigin(file: file, lines: TOMLLineIndex.lines(of: text))
        return try BlueprintReader(origin: origin, format: .toml).blueprint(JSONValue(toml: table))
    }

    /// Parses a JSON blueprint.
    package static func parse(json text: String, file: String = "blueprint.json") throws(BlueprintError) -> Blueprint {
        let value: JSONValue
        do {
            value = try JSONValue.parse(Data(text.utf8))
        } catch {
            let (reason, line) = Self.jsonProblem(text)
            throw BlueprintError(file: file, keyPath: "", line: line, problem: .syntax(format: "JSON", reason: reason))
        }
        return try BlueprintReader(origin: BlueprintOrigin(file: file), format: .json).blueprint(value)
    }

    /// JSONDecoder's errors carry no position; JSONSerialization's say "around character N".
    private static func jsonProblem(_ text: String) -> (String, Int?) {
        do {
            _ = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            return ("the document is not a JSON object", nil)
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            guard let range = detail.range(of: "character "),
                  let offset = Int(detail[range.upperBound...].prefix(while: \.isNumber)) else { return (detail, nil) }
            let before = text.utf8.prefix(offset)
            let line = before.filter { $0 == UInt8(ascii: "\n") }.count + 1
            return (detail, line)
        }
    }
}

extension JSONValue {
    /// A TOML document as a JSON value. TOML dates and times, which no
    /// blueprint key takes, become `null` and are reported as dates.
    init(toml table: TOMLTable) {
        var o: [String: JSONValue] = [:]
        for key in table.keys {
            if let v = table[key] { o[key] = JSONValue(tomlValue: v.tomlValue) }
        }
        self = .object(o)
    }

    init(tomlValue v: TOMLValue) {
        switch v.type {
        case .table: self = v.table.map { JSONValue(toml: $0) } ?? .object([:])
        case .array: self = .array((v.array ?? TOMLArray()).map { JSONValue(tomlValue: $0.tomlValue) })
        case .string: self = .string(v.string ?? "")
        case .int: self = .int(Int64(v.int ?? 0))
        case .double: self = .double(v.double ?? 0)
        case .bool: self = .bool(v.bool ?? false)
        case .date, .time, .dateTime: self = .null
        }
    }
}
