import Foundation

/// An osbuild manifest, version "2": pipelines of stages plus content-addressed
/// sources. It is the whole recipe of a build.
public struct BuildManifest: Sendable, Hashable, Codable {
    public var version: String
    public var pipelines: [Pipeline]
    public var sources: [String: SourceGroup]

    public init(pipelines: [Pipeline], sources: [String: SourceGroup] = [:]) {
        self.version = "2"
        self.pipelines = pipelines
        self.sources = sources
    }

    public init(from decoder: Decoder) throws {
        self = try BuildManifest.decode(try JSONValue(from: decoder))
    }

    public func pipeline(named name: String) -> Pipeline? {
        pipelines.first { $0.name == name }
    }

    /// Parses and structurally decodes a manifest; call `validate` for the semantic checks.
    public static func decode(_ data: Data, file: String = "manifest") throws(ManifestError) -> BuildManifest {
        let json: JSONValue
        do { json = try JSONValue.parse(data) } catch {
            throw .invalidJSON(file: file, reason: "\(error)")
        }
        return try decode(json, file: file)
    }

    public static func decode(_ json: JSONValue, file: String = "manifest") throws(ManifestError) -> BuildManifest {
        try ManifestDecoder(file: file).manifest(json)
    }

    /// The manifest as JSON: canonical encoding, or pretty-printed with sorted keys.
    public func json() -> JSONValue {
        var o: [String: JSONValue] = ["version": .string(version), "pipelines": .array(pipelines.map { $0.json() })]
        if !sources.isEmpty {
            o["sources"] = .object(sources.mapValues { $0.json() })
        }
        return .object(o)
    }

    public func encoded(pretty: Bool = true) -> Data {
        if !pretty { return Data(CanonicalJSON.encode(json()).utf8) }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? enc.encode(json())) ?? Data()
    }

    public func encode(to encoder: Encoder) throws { try json().encode(to: encoder) }
}

/// One pipeline: an ordered list of stages producing one tree.
public struct Pipeline: Sendable, Hashable {
    public var name: String
    /// `name:<pipeline>` of the build root, if any. Kiln runs host tools, so this is informational.
    public var build: String?
    public var runner: String?
    public var stages: [ManifestStage]

    public init(name: String, build: String? = nil, runner: String? = nil, stages: [ManifestStage]) {
        self.name = name
        self.build = build
        self.runner = runner
        self.stages = stages
    }

    public func json() -> JSONValue {
        var o: [String: JSONValue] = ["name": .string(name), "stages": .array(stages.map { $0.json() })]
        if let build { o["build"] = .string(build) }
        if let runner { o["runner"] = .string(runner) }
        return .object(o)
    }
}

/// One step with JSON options and named inputs, devices and mounts.
public struct ManifestStage: Sendable, Hashable {
    public var type: String
    public var options: [String: JSONValue]
    public var inputs: [String: Input]
    public var devices: [String: Device]
    public var mounts: [Mount]

    public init(
        type: String, options: [String: JSONValue] = [:], inputs: [String: Input] = [:],
        devices: [String: Device] = [:], mounts: [Mount] = []
    ) {
        self.type = type
        self.options = options
        self.inputs = inputs
        self.devices = devices
        self.mounts = mounts
    }

    /// A stage whose options are built from an `Encodable` value.
    public init<O: Encodable>(
        type: String, encoding options: O, inputs: [String: Input] = [:],
        devices: [String: Device] = [:], mounts: [Mount] = []
    ) {
        let json = (try? JSONValue(encoding: options))?.objectValue ?? [:]
        self.init(type: type, options: json, inputs: inputs, devices: devices, mounts: mounts)
    }

    public func json() -> JSONValue {
        var o: [String: JSONValue] = ["type": .string(type)]
        if !options.isEmpty { o["options"] = .object(options) }
        if !inputs.isEmpty { o["inputs"] = .object(inputs.mapValues { $0.json() }) }
        if !devices.isEmpty { o["devices"] = .object(devices.mapValues { $0.json() }) }
        if !mounts.isEmpty { o["mounts"] = .array(mounts.map { $0.json() }) }
        return .object(o)
    }
}

/// A named stage input: source files or the tree of another pipeline.
public struct Input: Sendable, Hashable {
    public static let sourceOrigin = "org.osbuild.source"
    public static let pipelineOrigin = "org.osbuild.pipeline"

    public var type: String
    public var origin: String
    /// Referenced IDs in order: `sha256:…` checksums, or `name:<pipeline>`.
    public var references: [String]
    /// Per-reference options, when the manifest gives any.
    public var referenceOptions: [String: JSONValue]

    public init(type: String, origin: String, references: [String], referenceOptions: [String: JSONValue] = [:]) {
        self.type = type
        self.origin = origin
        self.references = references
        self.referenceOptions = referenceOptions
    }

    /// Files from the source cache, by checksum (`org.osbuild.files`).
    public static func files(_ checksums: [String]) -> Input {
        Input(type: "org.osbuild.files", origin: sourceOrigin, references: checksums)
    }

    /// The tree of another pipeline (`org.osbuild.tree`).
    public static func tree(_ pipeline: String) -> Input {
        Input(type: "org.osbuild.tree", origin: pipelineOrigin, references: ["name:\(pipeline)"])
    }

    /// The reference option that names a file of a pipeline's tree.
    public static let fileOption = "file"

    /// One file of another pipeline's tree (`org.osbuild.files` of origin `org.osbuild.pipeline`).
    public static func pipelineFile(_ file: String, of pipeline: String) -> Input {
        Input(
            type: "org.osbuild.files", origin: pipelineOrigin, references: ["name:\(pipeline)"],
            referenceOptions: ["name:\(pipeline)": [fileOption: .string(file)]])
    }

    /// Names of the pipelines this input references.
    public var pipelineNames: [String] {
        guard origin == Input.pipelineOrigin else { return [] }
        return references.map { $0.hasPrefix("name:") ? String($0.dropFirst(5)) : $0 }
    }

    public func json() -> JSONValue {
        let refs: JSONValue
        if referenceOptions.isEmpty {
            refs = .array(references.map { .string($0) })
        } else {
            refs = .array(
                references.map { r in
                    var o: [String: JSONValue] = ["id": .string(r)]
                    if let opts = referenceOptions[r] { o["options"] = opts }
                    return .object(o)
                })
        }
        return .object(["type": .string(type), "origin": .string(origin), "references": refs])
    }
}

/// A device a stage works on (osbuild's `org.osbuild.loopback`: a region of a file).
public struct Device: Sendable, Hashable {
    /// The one device type Kiln has: a region of a file of the tree, in sectors.
    public static let loopbackType = "org.osbuild.loopback"

    /// The options of a loopback device: the file, and the region's first sector, length and sector size.
    public enum LoopbackOption {
        public static let filename = "filename"
        public static let start = "start"
        public static let size = "size"
        public static let sectorSize = "sector-size"
    }

    /// A loopback device over `size` sectors of `filename` from sector `start`.
    public static func loopback(filename: String, start: Int64, size: Int64) -> Device {
        Device(
            type: loopbackType,
            options: [
                LoopbackOption.filename: .string(filename), LoopbackOption.start: .int(start),
                LoopbackOption.size: .int(size),
            ])
    }

    public var type: String
    public var parent: String?
    public var options: [String: JSONValue]

    public init(type: String, parent: String? = nil, options: [String: JSONValue] = [:]) {
        self.type = type
        self.parent = parent
        self.options = options
    }

    public func json() -> JSONValue {
        var o: [String: JSONValue] = ["type": .string(type)]
        if let parent { o["parent"] = .string(parent) }
        if !options.isEmpty { o["options"] = .object(options) }
        return .object(o)
    }
}

/// A filesystem mount of a device for a stage.
public struct Mount: Sendable, Hashable {
    public var name: String
    public var type: String
    public var source: String
    public var target: String
    public var options: [String: JSONValue]

    public init(name: String, type: String, source: String, target: String, options: [String: JSONValue] = [:]) {
        self.name = name
        self.type = type
        self.source = source
        self.target = target
        self.options = options
    }

    public func json() -> JSONValue {
        var o: [String: JSONValue] = [
            "name": .string(name), "type": .string(type),
            "source": .string(source), "target": .string(target),
        ]
        if !options.isEmpty { o["options"] = .object(options) }
        return .object(o)
    }
}

/// A group of sources of one type, e.g. `org.osbuild.curl`: checksum → item.
public struct SourceGroup: Sendable, Hashable, Codable {
    /// The one source type Kiln fetches: files by URL with curl.
    public static let curl = "org.osbuild.curl"

    public var items: [String: SourceItem]

    public init(items: [String: SourceItem]) { self.items = items }

    public func json() -> JSONValue {
        .object(["items": .object(items.mapValues { $0.json() })])
    }

    public func encode(to encoder: Encoder) throws { try json().encode(to: encoder) }
    public init(from decoder: Decoder) throws {
        let v = try JSONValue(from: decoder)
        self = try ManifestDecoder(file: "manifest").sourceGroup(v, path: "sources")
    }
}

/// One content-addressed file: where to fetch it.
public struct SourceItem: Sendable, Hashable {
    public var url: String
    public init(url: String) { self.url = url }
    public func json() -> JSONValue { .object(["url": .string(url)]) }
}
