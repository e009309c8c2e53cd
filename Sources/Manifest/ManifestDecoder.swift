/// Decodes a manifest from JSON by hand so that every error carries its JSON path.
struct ManifestDecoder {
    let file: String

    func manifest(_ json: JSONValue) throws(ManifestError) -> BuildManifest {
        let o = try object(json, "$")
        try onlyKeys(o, ["version", "pipelines", "sources", "metadata"], "$")
        guard let version = o["version"] else { throw .invalidValue(path: "version", reason: "missing; add \"version\": \"2\"") }
        guard case .string(let v) = version else { throw .invalidValue(path: "version", reason: "must be the string \"2\"") }
        guard v == "2" else { throw .unsupportedVersion(path: "version", found: v) }
        var pipelines: [Pipeline] = []
        for (i, p) in try array(o["pipelines"] ?? .array([]), "pipelines").enumerated() {
            pipelines.append(try pipeline(p, path: "pipelines[\(i)]"))
        }
        var sources: [String: SourceGroup] = [:]
        if let s = o["sources"] {
            for (type, group) in try object(s, "sources") {
                sources[type] = try sourceGroup(group, path: "sources.\(type)")
            }
        }
        var m = BuildManifest(pipelines: pipelines, sources: sources)
        m.version = v
        return m
    }

    func pipeline(_ json: JSONValue, path: String) throws(ManifestError) -> Pipeline {
        let o = try object(json, path)
        try onlyKeys(o, ["name", "build", "runner", "stages", "source-epoch"], path)
        let name = try string(o["name"], "\(path).name")
        let build = try o["build"].map { v throws(ManifestError) in try string(v, "\(path).build") }
        let runner = try o["runner"].map { v throws(ManifestError) in try string(v, "\(path).runner") }
        var stages: [ManifestStage] = []
        for (i, s) in try array(o["stages"] ?? .array([]), "\(path).stages").enumerated() {
            stages.append(try stage(s, path: "\(path).stages[\(i)]"))
        }
        return Pipeline(name: name, build: build, runner: runner, stages: stages)
    }

    func stage(_ json: JSONValue, path: String) throws(ManifestError) -> ManifestStage {
        let o = try object(json, path)
        try onlyKeys(o, ["type", "options", "inputs", "devices", "mounts"], path)
        let type = try string(o["type"], "\(path).type")
        let options = try object(o["options"] ?? .object([:]), "\(path).options")
        var inputs: [String: Input] = [:]
        for (name, v) in try object(o["inputs"] ?? .object([:]), "\(path).inputs") {
            inputs[name] = try input(v, path: "\(path).inputs.\(name)")
        }
        var devices: [String: Device] = [:]
        for (name, v) in try object(o["devices"] ?? .object([:]), "\(path).devices") {
            let d = try object(v, "\(path).devices.\(name)")
            try onlyKeys(d, ["type", "parent", "options"], "\(path).devices.\(name)")
            devices[name] = Device(
                type: try string(d["type"], "\(path).devices.\(name).type"),
                parent: try d["parent"].map { v throws(ManifestError) in try string(v, "\(path).devices.\(name).parent") },
                options: try object(d["options"] ?? .object([:]), "\(path).devices.\(name).options"))
        }
        var mounts: [Mount] = []
        for (i, v) in try array(o["mounts"] ?? .array([]), "\(path).mounts").enumerated() {
            let p = "\(path).mounts[\(i)]"
            let m = try object(v, p)
            try onlyKeys(m, ["name", "type", "source", "target", "options", "partition"], p)
            mounts.append(Mount(
                name: try string(m["name"], "\(p).name"), type: try string(m["type"], "\(p).type"),
                source: try string(m["source"], "\(p).source"), target: try string(m["target"], "\(p).target"),
                options: try object(m["options"] ?? .object([:]), "\(p).options")))
        }
        return ManifestStage(type: type, options: options, inputs: inputs, devices: devices, mounts: mounts)
    }

    func input(_ json: JSONValue, path: String) throws(ManifestError) -> Input {
        let o = try object(json, path)
        try onlyKeys(o, ["type", "origin", "references", "options"], path)
        let type = try string(o["type"], "\(path).type")
        let origin = try string(o["origin"], "\(path).origin")
        guard origin == Input.sourceOrigin || origin == Input.pipelineOrigin else {
            throw .invalidValue(path: "\(path).origin", reason: "must be \"\(Input.sourceOrigin)\" or \"\(Input.pipelineOrigin)\", not \"\(origin)\"")
        }
        var refs: [String] = []
        var refOptions: [String: JSONValue] = [:]
        switch o["references"] {
        case .array(let a)?:
            for (i, r) in a.enumerated() {
                switch r {
                case .string(let s): refs.append(s)
                case .object(let ro):
                    let id = try string(ro["id"], "\(path).references[\(i)].id")
                    refs.append(id)
                    if let opts = ro["options"] { refOptions[id] = opts }
                default:
                    throw .invalidValue(path: "\(path).references[\(i)]", reason: "must be a string or an object with \"id\"")
                }
            }
        case .object(let ro)?:
            // osbuild's object form: {id: options}; order by id for determinism.
            for id in ro.keys.sorted() {
                refs.append(id)
                if let opts = ro[id], opts != .object([:]) { refOptions[id] = opts }
            }
        case nil:
            throw .invalidValue(path: "\(path).references", reason: "missing")
        case let other?:
            throw .invalidValue(path: "\(path).references", reason: "must be an array or object, found \(other.typeName)")
        }
        return Input(type: type, origin: origin, references: refs, referenceOptions: refOptions)
    }

    func sourceGroup(_ json: JSONValue, path: String) throws(ManifestError) -> SourceGroup {
        let o = try object(json, path)
        var items: [String: SourceItem] = [:]
        for (checksum, item) in try object(o["items"] ?? .object([:]), "\(path).items") {
            let p = "\(path).items.\(checksum)"
            guard Checksum.isValid(checksum) else {
                throw .invalidValue(path: p, reason: "not a checksum of the form sha256:<64 hex digits>")
            }
            switch item {
            case .string(let url): items[checksum] = SourceItem(url: url)
            case .object(let io):
                try onlyKeys(io, ["url"], p)
                items[checksum] = SourceItem(url: try string(io["url"], "\(p).url"))
            default: throw .invalidValue(path: p, reason: "must be a URL string or an object with \"url\"")
            }
        }
        return SourceGroup(items: items)
    }

    // MARK: helpers

    func object(_ v: JSONValue?, _ path: String) throws(ManifestError) -> [String: JSONValue] {
        guard case .object(let o)? = v else {
            throw .invalidValue(path: path, reason: v == nil ? "missing" : "must be an object, found \(v!.typeName)")
        }
        return o
    }

    func array(_ v: JSONValue, _ path: String) throws(ManifestError) -> [JSONValue] {
        guard case .array(let a) = v else { throw .invalidValue(path: path, reason: "must be an array, found \(v.typeName)") }
        return a
    }

    func string(_ v: JSONValue?, _ path: String) throws(ManifestError) -> String {
        guard case .string(let s)? = v else {
            throw .invalidValue(path: path, reason: v == nil ? "missing" : "must be a string, found \(v!.typeName)")
        }
        return s
    }

    func onlyKeys(_ o: [String: JSONValue], _ allowed: Set<String>, _ path: String) throws(ManifestError) {
        for key in o.keys.sorted() where !allowed.contains(key) {
            throw .invalidValue(path: path == "$" ? key : "\(path).\(key)",
                                reason: "unknown key; expected one of \(allowed.sorted().joined(separator: ", "))")
        }
    }
}

/// `sha256:<hex>` checksums.
public enum Checksum {
    public static func isValid(_ s: String) -> Bool {
        guard s.hasPrefix("sha256:") else { return false }
        let hex = s.dropFirst(7)
        return hex.count == 64 && hex.allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }

    public static func hex(_ s: String) -> String { String(s.dropFirst(7)) }
}
