/// Content IDs (docs/architecture.md §3): sha256 over the canonical JSON of what produced
/// an object. Equal IDs mean equal outputs.
///
/// - stage ID = sha256(canonical { "type", "options", "base": previous stage ID
///   (absent for the first stage), "inputs": { name → input ID } }), plus
///   "devices" and "mounts" when the stage has any.
/// - input ID = sha256(canonical { "type", "origin", "references": [ID…] }),
///   pipeline references replaced by that pipeline's ID; reference options are
///   included as "options" when present.
/// - pipeline ID = ID of its last stage; an empty pipeline has the ID of
///   canonical { "pipeline": name }.
public struct ContentIDs: Sendable {
    /// Pipeline name → pipeline ID.
    public private(set) var pipelines: [String: String] = [:]
    /// Pipeline name → the ID after each of its stages, in order.
    public private(set) var stages: [String: [String]] = [:]

    public init(_ manifest: BuildManifest) throws(ManifestError) {
        for (pi, pipeline) in manifest.pipelines.enumerated() {
            var base: String? = nil
            var ids: [String] = []
            for (si, stage) in pipeline.stages.enumerated() {
                var inputs: [String: JSONValue] = [:]
                for (name, input) in stage.inputs {
                    inputs[name] = .string(try inputID(input, path: "pipelines[\(pi)].stages[\(si)].inputs.\(name)"))
                }
                var o: [String: JSONValue] = [
                    "type": .string(stage.type),
                    "options": .object(stage.options),
                    "inputs": .object(inputs),
                ]
                if let base { o["base"] = .string(base) }
                if !stage.devices.isEmpty { o["devices"] = .object(stage.devices.mapValues { $0.json() }) }
                if !stage.mounts.isEmpty { o["mounts"] = .array(stage.mounts.map { $0.json() }) }
                let id = CanonicalJSON.sha256Hex(.object(o))
                ids.append(id)
                base = id
            }
            stages[pipeline.name] = ids
            pipelines[pipeline.name] = ids.last ?? CanonicalJSON.sha256Hex(.object(["pipeline": .string(pipeline.name)]))
        }
    }

    private func inputID(_ input: Input, path: String) throws(ManifestError) -> String {
        var refs: [JSONValue] = []
        for ref in input.references {
            var id = ref
            if input.origin == Input.pipelineOrigin {
                let name = ref.hasPrefix("name:") ? String(ref.dropFirst(5)) : ref
                guard let pid = pipelines[name] else { throw .danglingReference(path: path, reference: ref) }
                id = pid
            }
            if let opts = input.referenceOptions[ref] {
                refs.append(.object(["id": .string(id), "options": opts]))
            } else {
                refs.append(.string(id))
            }
        }
        return CanonicalJSON.sha256Hex(
            .object([
                "type": .string(input.type), "origin": .string(input.origin), "references": .array(refs),
            ]))
    }
}
