import Foundation
import Manifest
import Stages
import Testing

/// Stage types used only to exercise validation against a real registry.
private struct TestInstall: Stage {
    static let type = "org.test.install"
    static let sourceFile = StageSource.path()
    static let placement = Placement.tree
    static let inputs: [String: InputKind] = ["packages": .sourceFiles]
    struct Options: Codable { let architecture: String }
    func run(_ options: Options, in context: StageContext) async throws {}
}

private struct TestHostname: Stage {
    static let type = "org.test.hostname"
    static let sourceFile = StageSource.path()
    static let placement = Placement.tree
    struct Options: Codable { let hostname: String }
    func run(_ options: Options, in context: StageContext) async throws {}
}

private struct TestDisk: Stage {
    static let type = "org.test.disk"
    static let sourceFile = StageSource.path()
    static let placement = Placement.assembly
    static let inputs: [String: InputKind] = ["tree": .pipelineTree]
    struct Options: Codable {
        let size: UInt64
        let label: String?
        let partitions: [Part]?
    }
    struct Part: Codable { let start: Int }
    func run(_ options: Options, in context: StageContext) async throws {}
}

@Suite struct ValidationTests {
    let registry = StageRegistry([TestInstall.self, TestHostname.self, TestDisk.self])

    func manifest(_ edit: (inout JSONValue) -> Void = { _ in }) throws -> BuildManifest {
        let url = Bundle.module.url(forResource: "small", withExtension: "json", subdirectory: "Fixtures")!
        var json = try JSONValue.parse(Data(contentsOf: url))
        edit(&json)
        return try BuildManifest.decode(json, file: "small.json")
    }

    func error(_ edit: (inout JSONValue) -> Void) -> String? {
        do {
            try manifest(edit).validate(stages: registry)
            return nil
        } catch {
            return String(describing: error)
        }
    }

    @Test func validManifestPasses() throws {
        try manifest().validate(stages: registry)
    }

    @Test func unknownStageTypeNamesThePath() {
        let e = error { j in j.set(["pipelines", 0, "stages", 1, "type"], "org.osbuild.hostnme") }
        #expect(e == #"pipelines[0].stages[1].type: unknown stage type "org.osbuild.hostnme"; run `kiln stages` to list the known types"#)
    }

    @Test func optionsOfTheWrongTypeNameTheOption() {
        let e = error { j in j.set(["pipelines", 0, "stages", 1, "options", "hostname"], 42) }
        #expect(e == "pipelines[0].stages[1].options.hostname: expected a string")
    }

    @Test func missingRequiredOption() {
        let e = error { j in j.set(["pipelines", 0, "stages", 1, "options"], [:]) }
        #expect(e == "pipelines[0].stages[1].options.hostname: required option is missing")
    }

    @Test func unknownOptionIsRejected() {
        let e = error { j in j.set(["pipelines", 0, "stages", 1, "options", "hostnam"], "x") }
        #expect(e?.hasPrefix("pipelines[0].stages[1].options.hostnam: unknown option") == true)
    }

    @Test func undeclaredInputIsRejected() {
        let e = error { j in
            j.set(
                ["pipelines", 0, "stages", 1, "inputs"],
                [
                    "files": [
                        "type": "org.osbuild.files", "origin": "org.osbuild.source",
                        "references": [.string("sha256:" + String(repeating: "0", count: 63) + "1")],
                    ]
                ])
        }
        #expect(e == "pipelines[0].stages[1].inputs.files: org.test.hostname takes no inputs; remove this one")
    }

    @Test func inputOfTheWrongKindIsRejected() {
        let e = error { j in j.set(["pipelines", 1, "stages", 0, "inputs", "tree", "type"], "org.osbuild.files") }
        #expect(e?.hasPrefix("pipelines[1].stages[0].inputs.tree: org.test.disk takes one pipeline's tree") == true)
    }

    @Test func nestedOptionErrorsCarryTheirIndex() {
        let e = error { j in j.set(["pipelines", 1, "stages", 0, "options", "partitions"], [["start": 1], ["start": "x"]]) }
        #expect(e == "pipelines[1].stages[0].options.partitions[1].start: expected an integer")
    }

    @Test func danglingPipelineReference() {
        let e = error { j in j.set(["pipelines", 1, "stages", 0, "inputs", "tree", "references"], ["name:tree"]) }
        #expect(e == #"pipelines[1].stages[0].inputs.tree.references: "name:tree" does not name an earlier pipeline of this manifest"#)
    }

    @Test func cycleIsReported() {
        let e = error { j in
            j.set(
                ["pipelines", 0, "stages", 0, "inputs", "other"],
                ["type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": ["name:image"]])
        }
        #expect(e == "pipelines: reference cycle os → image → os")
    }

    @Test func undeclaredSource() {
        let e = error { j in j.set(["sources"], [:]) }
        #expect(
            e
                == "pipelines[0].stages[0].inputs.packages.references: sha256:0000000000000000000000000000000000000000000000000000000000000001 is not declared in any source under \"sources\"; add it to org.osbuild.curl items"
        )
    }

    @Test func wrongVersionAndShape() {
        #expect(error { j in j.set(["version"], "1") }?.contains("version \"1\" is not supported") == true)
        #expect(error { j in j.set(["pipelines", 0, "stages"], "nope") } == "pipelines[0].stages: must be an array, found string")
        #expect(error { j in j.set(["pipelines", 0, "colour"], "red") }?.hasPrefix("pipelines[0].colour: unknown key") == true)
    }

    @Test func duplicatePipelineNames() {
        let e = error { j in j.set(["pipelines", 1, "name"], "os") }
        #expect(e?.contains("a pipeline named \"os\" already exists") == true)
    }

    @Test func notJSONAtAll() {
        #expect(throws: ManifestError.self) { try BuildManifest.decode(Data("{".utf8), file: "broken.json") }
    }
}

extension JSONValue {
    /// Sets the value at a path of keys (String) and indexes (Int), for tests.
    mutating func set(_ path: [Any], _ value: JSONValue) {
        guard let head = path.first else {
            self = value
            return
        }
        let rest = Array(path.dropFirst())
        switch (self, head) {
        case (.object(var o), let k as String):
            var child = o[k] ?? .null
            child.set(rest, value)
            o[k] = child
            self = .object(o)
        case (.array(var a), let i as Int):
            a[i].set(rest, value)
            self = .array(a)
        default:
            self = value
        }
    }
}
