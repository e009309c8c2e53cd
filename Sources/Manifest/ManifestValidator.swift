/// What validation needs to know about stages; the stage registry provides it.
public protocol StageSchemas: Sendable {
    /// All known stage types.
    var knownStageTypes: [String] { get }
    /// Throws `ManifestError.invalidOptions` with a JSON path when the options
    /// do not match the stage's schema. Only called for known types.
    func validateOptions(type: String, options: [String: JSONValue], path: String) throws(ManifestError)
    /// The inputs a stage takes, by name; any other input is refused. Only called for known types.
    func declaredInputs(type: String) -> [String: InputKind]
}

extension BuildManifest {
    /// Semantic validation: sources fetched only over http(s), stage types and
    /// options, only the inputs each stage declares, pipeline references in
    /// order and without cycles, every source checksum declared.
    public func validate(stages schemas: any StageSchemas) throws(ManifestError) {
        try validateSources()
        let known = Set(schemas.knownStageTypes)
        var seen: [String: Int] = [:]
        let declared = Set(sources.values.flatMap { $0.items.keys })
        for (pi, p) in pipelines.enumerated() {
            if seen[p.name] != nil { throw .duplicatePipeline(path: "pipelines[\(pi)].name", name: p.name) }
            seen[p.name] = pi
        }
        try checkCycles()
        var earlier = Set<String>()
        for (pi, p) in pipelines.enumerated() {
            let path = "pipelines[\(pi)]"
            if let build = p.build {
                let name = build.hasPrefix("name:") ? String(build.dropFirst(5)) : build
                guard earlier.contains(name) else { throw .danglingReference(path: "\(path).build", reference: build) }
            }
            for (si, s) in p.stages.enumerated() {
                let sp = "\(path).stages[\(si)]"
                guard known.contains(s.type) else {
                    throw .unknownStageType(path: "\(sp).type", type: s.type, known: schemas.knownStageTypes)
                }
                try schemas.validateOptions(type: s.type, options: s.options, path: "\(sp).options")
                let declaredInputs = schemas.declaredInputs(type: s.type)
                for name in s.inputs.keys.sorted() {
                    let input = s.inputs[name]!
                    guard let kind = declaredInputs[name] else {
                        throw .undeclaredInput(path: "\(sp).inputs.\(name)", stage: s.type, declared: declaredInputs.keys.sorted())
                    }
                    guard kind.accepts(input) else {
                        throw .invalidValue(path: "\(sp).inputs.\(name)", reason: "\(s.type) takes \(kind) here, not type \(input.type) with origin \(input.origin) and \(input.references.count) reference(s)")
                    }
                    for ref in input.references {
                        if input.origin == Input.pipelineOrigin {
                            let target = ref.hasPrefix("name:") ? String(ref.dropFirst(5)) : ref
                            guard earlier.contains(target) else {
                                throw .danglingReference(path: "\(sp).inputs.\(name).references", reference: ref)
                            }
                        } else {
                            guard Checksum.isValid(ref) else {
                                throw .invalidValue(path: "\(sp).inputs.\(name).references", reason: "\"\(ref)\" is not a sha256:<hex> checksum")
                            }
                            guard declared.contains(ref) else {
                                throw .missingSource(path: "\(sp).inputs.\(name).references", checksum: ref)
                            }
                        }
                    }
                }
            }
            earlier.insert(p.name)
        }
    }

    /// Every source is an `org.osbuild.curl` item with an http(s) URL: curl
    /// gets nothing else (no `file://`, no value it would read as an option).
    private func validateSources() throws(ManifestError) {
        for type in sources.keys.sorted() {
            guard type == SourceGroup.curl else {
                throw .invalidValue(path: "sources.\(type)", reason: "unknown source type; Kiln fetches sources only as \(SourceGroup.curl) items with http(s) URLs")
            }
            let items = sources[type]!.items
            for checksum in items.keys.sorted() {
                let url = items[checksum]!.url
                if let problem = SourceURL.problem(url) {
                    throw .invalidValue(path: "sources.\(type).items.\(checksum).url", reason: "\"\(TerminalText.safe(url))\" \(problem)")
                }
            }
        }
    }

    /// Pipelines a pipeline depends on (its build root and pipeline inputs).
    public func dependencies(of p: Pipeline) -> [String] {
        var deps: [String] = []
        if let b = p.build { deps.append(b.hasPrefix("name:") ? String(b.dropFirst(5)) : b) }
        for s in p.stages {
            for name in s.inputs.keys.sorted() { deps.append(contentsOf: s.inputs[name]!.pipelineNames) }
        }
        var seen = Set<String>()
        return deps.filter { seen.insert($0).inserted }
    }

    private func checkCycles() throws(ManifestError) {
        let byName = Dictionary(pipelines.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var stack: [String] = []
        func visit(_ name: String) throws(ManifestError) {
            if state[name] == 2 { return }
            if state[name] == 1 {
                let start = stack.firstIndex(of: name) ?? 0
                throw .cycle(pipelines: Array(stack[start...]) + [name])
            }
            guard let p = byName[name] else { return }
            state[name] = 1
            stack.append(name)
            for d in dependencies(of: p) { try visit(d) }
            stack.removeLast()
            state[name] = 2
        }
        for p in pipelines { try visit(p.name) }
    }

    /// The pipelines needed to produce `exports`, in dependency order.
    public func plan(exports: [String]) throws(ManifestError) -> [Pipeline] {
        var order: [Pipeline] = []
        var done = Set<String>()
        func add(_ name: String, from path: String) throws(ManifestError) {
            if done.contains(name) { return }
            guard let p = pipeline(named: name) else { throw .danglingReference(path: path, reference: name) }
            done.insert(name)
            for d in dependencies(of: p) { try add(d, from: "pipelines.\(name)") }
            order.append(p)
        }
        for e in exports { try add(e, from: "--export") }
        return order
    }
}
