import Foundation
import Manifest

/// All stage types Kiln knows, with their placement and option schemas.
package struct StageRegistry: StageSchemas, Sendable {
    package struct Entry: Sendable {
        package let type: String
        package let placement: Placement
        package let sourceFile: String
        package let checkpoint: Bool
        package let inputs: [String: InputKind]
        let decode: @Sendable ([String: JSONValue], String) throws(ManifestError) -> any Sendable
        let run: @Sendable (any Sendable, StageContext) async throws -> Void
    }

    package let entries: [String: Entry]

    package init(_ stages: [any Stage.Type]) {
        var e: [String: Entry] = [:]
        for s in stages { e[s.type] = Self.entry(s) }
        entries = e
    }

    /// Every stage Kiln ships.
    package static let standard = StageRegistry(treeStages + assemblyStages)

    package var knownStageTypes: [String] { entries.keys.sorted() }

    package func placement(of type: String) -> Placement? { entries[type]?.placement }

    package func declaredInputs(type: String) -> [String: InputKind] { entries[type]?.inputs ?? [:] }

    package func validateOptions(type: String, options: [String: JSONValue], path: String) throws(ManifestError) {
        guard let entry = entries[type] else { return }
        _ = try entry.decode(options, path)
    }

    /// Decodes the options and runs the stage.
    package func run(_ stage: ManifestStage, in context: StageContext, path: String) async throws {
        guard let entry = entries[stage.type] else {
            throw ManifestError.unknownStageType(path: path, type: stage.type, known: knownStageTypes)
        }
        let options = try entry.decode(stage.options, path + ".options")
        try await entry.run(options, context)
    }

    private static func entry<S: Stage>(_ s: S.Type) -> Entry {
        Entry(
            type: S.type, placement: S.placement, sourceFile: S.sourceFile, checkpoint: S.checkpoint, inputs: S.inputs,
            decode: { options, path throws(ManifestError) in try StrictOptions.decode(S.Options.self, options, path: path) },
            run: { options, context in try await S().run(options as! S.Options, in: context) })
    }
}

/// Decodes stage options and rejects keys the schema does not have.
package enum StrictOptions {
    package static func decode<O: Codable>(_ type: O.Type, _ options: [String: JSONValue], path: String) throws(ManifestError) -> O {
        let value: O
        do {
            // The hand-written canonical encoder, not JSONEncoder: this runs for every stage of every submit.
            value = try JSONDecoder().decode(O.self, from: Data(CanonicalJSON.encode(.object(options)).utf8))
        } catch let error as DecodingError {
            throw describe(error, path)
        } catch {
            throw .invalidOptions(path: path, reason: "\(error)")
        }
        // Unknown keys: everything the input has must survive a round trip.
        if let back = try? JSONValue(encoding: value) {
            try unknownKeys(JSONValue.object(options), back, path)
        }
        return value
    }

    private static func unknownKeys(_ given: JSONValue, _ known: JSONValue, _ path: String) throws(ManifestError) {
        switch (given, known) {
        case (.object(let g), .object(let k)):
            for key in g.keys.sorted() {
                guard let kv = k[key] else {
                    let allowed = k.keys.sorted().joined(separator: ", ")
                    throw .invalidOptions(path: "\(path).\(key)", reason: "unknown option" + (allowed.isEmpty ? "" : "; known here: \(allowed)"))
                }
                try unknownKeys(g[key]!, kv, "\(path).\(key)")
            }
        case (.array(let g), .array(let k)) where g.count == k.count:
            for i in g.indices { try unknownKeys(g[i], k[i], "\(path)[\(i)]") }
        default: return
        }
    }

    private static func describe(_ error: DecodingError, _ base: String) -> ManifestError {
        func join(_ path: [CodingKey]) -> String {
            var s = base
            for k in path {
                if let i = k.intValue { s += "[\(i)]" } else { s += ".\(k.stringValue)" }
            }
            return s
        }
        switch error {
        case .keyNotFound(let key, let ctx):
            return .invalidOptions(path: join(ctx.codingPath + [key]), reason: "required option is missing")
        case .typeMismatch(let type, let ctx):
            return .invalidOptions(path: join(ctx.codingPath), reason: "expected \(typeName(type))")
        case .valueNotFound(let type, let ctx):
            return .invalidOptions(path: join(ctx.codingPath), reason: "expected \(typeName(type)), found null")
        case .dataCorrupted(let ctx):
            return .invalidOptions(path: join(ctx.codingPath), reason: ctx.debugDescription)
        @unknown default:
            return .invalidOptions(path: base, reason: "\(error)")
        }
    }

    private static func typeName(_ t: Any.Type) -> String {
        switch t {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type, is UInt64.Type, is Int32.Type, is UInt32.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        default:
            String(describing: t).hasPrefix("Array") ? "an array" : (String(describing: t).hasPrefix("Dictionary") ? "an object" : "a \(t)")
        }
    }
}
