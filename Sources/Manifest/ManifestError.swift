/// Why a manifest was rejected. Every case names where (a JSON path such as
/// `pipelines[1].stages[3].options.hostname`) and what to do about it.
public enum ManifestError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file is not JSON at all.
    case invalidJSON(file: String, reason: String)
    /// A value has the wrong type or shape.
    case invalidValue(path: String, reason: String)
    /// Only manifest version "2" is understood.
    case unsupportedVersion(path: String, found: String)
    /// A stage type that the stage registry does not know.
    case unknownStageType(path: String, type: String, known: [String])
    /// A `name:<pipeline>` reference to a pipeline that does not exist or comes later.
    case danglingReference(path: String, reference: String)
    /// Two pipelines with one name.
    case duplicatePipeline(path: String, name: String)
    /// Pipelines that reference each other in a loop.
    case cycle(pipelines: [String])
    /// A stage input names a checksum that no source declares.
    case missingSource(path: String, checksum: String)
    /// Stage options that do not match the stage's schema.
    case invalidOptions(path: String, reason: String)
    /// A stage input the stage does not take.
    case undeclaredInput(path: String, stage: String, declared: [String])

    public var description: String {
        switch self {
        case .invalidJSON(let file, let reason):
            "\(file): not valid JSON: \(reason)"
        case .invalidValue(let path, let reason):
            "\(path): \(reason)"
        case .unsupportedVersion(let path, let found):
            "\(path): manifest version \"\(found)\" is not supported; Kiln reads osbuild manifest version \"2\""
        case .unknownStageType(let path, let type, let known):
            "\(path): unknown stage type \"\(type)\"" + Self.suggestion(type, known)
        case .danglingReference(let path, let reference):
            "\(path): \"\(reference)\" does not name an earlier pipeline of this manifest"
        case .duplicatePipeline(let path, let name):
            "\(path): a pipeline named \"\(name)\" already exists; pipeline names must be unique"
        case .cycle(let pipelines):
            "pipelines: reference cycle \(pipelines.joined(separator: " → "))"
        case .missingSource(let path, let checksum):
            "\(path): \(checksum) is not declared in any source under \"sources\"; add it to org.osbuild.curl items"
        case .invalidOptions(let path, let reason):
            "\(path): \(reason)"
        case .undeclaredInput(let path, let stage, let declared):
            "\(path): \(stage) takes " + (declared.isEmpty ? "no inputs" : "only the inputs \(declared.map { "\"\($0)\"" }.joined(separator: ", "))") + "; remove this one"
        }
    }

    private static func suggestion(_ type: String, _ known: [String]) -> String {
        let tail = type.split(separator: ".").last.map(String.init) ?? type
        if let close = known.first(where: { $0.hasSuffix("." + tail) }) {
            return "; did you mean \"\(close)\"?"
        }
        return known.isEmpty ? "" : "; run `kiln stages` to list the known types"
    }
}
