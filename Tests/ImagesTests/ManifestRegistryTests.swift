import Foundation
import KilnTestSupport
import Manifest
import Stages
import Testing

@testable import Images

/// Every manifest Kiln generates is one its own executor takes (issue 16):
/// for each distro, architecture and image type, with each example
/// blueprint and the composer-shaped fixtures, the generated manifest passes
/// the stage registry's validation (stage types, options, inputs, sources),
/// the check `kiln run` and a submit make before anything runs.
@Suite struct ManifestRegistryTests {
    static let blueprints = [
        "examples/blueprints/base.toml", "examples/blueprints/demo.toml", "examples/blueprints/kitchen-sink.toml",
        "Tests/ImagesTests/Fixtures/full.toml", "Tests/ImagesTests/Fixtures/filesystems.toml",
    ]

    @Test(arguments: blueprints)
    func everyGeneratedManifestValidatesAgainstTheRegistry(_ file: String) async throws {
        let blueprint = try Blueprint.load(path: Fixtures.repository.appendingPathComponent(file).path)
        var generated = 0
        var refused: [String] = []
        for distro in Distro.all {
            for arch in Architecture.allCases {
                for type in ImageType.allCases where type.architectures.contains(arch) {
                    let what = "\(file) \(distro.name) \(arch.rawValue) \(type.rawValue)"
                    let request = ImageRequest(blueprint: blueprint, distro: distro, architecture: arch, imageType: type)
                    let manifest: BuildManifest
                    do {
                        manifest = try await ManifestGenerator(resolver: FixedPackages(extra: ["openssh-server", "nftables", "locales"]))
                            .manifest(for: request)
                    } catch let error as BlueprintError {
                        // A combination the blueprint itself rules out (a layout too big for a type, say) is refused as bad input.
                        refused.append("\(what): \(error)")
                        continue
                    }
                    do {
                        try manifest.validate(stages: StageRegistry.standard)
                        generated += 1
                    } catch {
                        Issue.record("\(what): the generated manifest does not validate: \(error)")
                    }
                    // And it survives its own JSON: what a submit sends is what validates.
                    let again = try BuildManifest.decode(manifest.encoded())
                    #expect(throws: Never.self, "\(what) after a round trip") { try again.validate(stages: StageRegistry.standard) }
                }
            }
        }
        let total = Distro.all.count * ImageType.allCases.reduce(0) { $0 + $1.architectures.count }
        #expect(generated + refused.count == total)
        #expect(refused.isEmpty, "every example fits every type; refused: \(refused)")
    }
}

/// docs/stages.md and the registry agree: every stage type Kiln runs is
/// documented in the section of its placement, and nothing else is.
@Suite struct StagesDocumentTests {
    @Test func docsStagesListsExactlyTheRegistrysTypesWhereTheyRun() throws {
        let doc = try String(contentsOf: Fixtures.repository.appendingPathComponent("docs/stages.md"), encoding: .utf8)
        var section: Placement?
        var documented: [String: Placement] = [:]
        for line in doc.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("## ") { section = line.hasPrefix("## Tree stages") ? .tree : line.hasPrefix("## Assembly stages") ? .assembly : nil }
            guard let section, line.hasPrefix("| `"), let type = line.split(separator: "`").dropFirst().first.map(String.init) else { continue }
            documented[type] = section
        }
        let registry = StageRegistry.standard
        for type in registry.knownStageTypes {
            #expect(documented[type] == registry.placement(of: type), "\(type): docs/stages.md says \(documented[type].map { "\($0)" } ?? "nothing")")
        }
        for type in documented.keys.sorted() where registry.placement(of: type) == nil {
            Issue.record("docs/stages.md documents \(type), which Kiln does not have")
        }
    }

    /// `kiln stages` names each type's file: that file exists and is where the stage of that type is
    /// declared (its type name is its options' `stageType`, Sources/StageOptions).
    @Test func everyStageNamesTheFileThatDeclaresIt() throws {
        let stages = StageRegistry.treeStages + StageRegistry.assemblyStages
        for (type, entry) in StageRegistry.standard.entries.sorted(by: { $0.key < $1.key }) {
            #expect(entry.sourceFile.hasPrefix("Sources/Stages/"), "\(type): \(entry.sourceFile)")
            let url = Fixtures.repository.appendingPathComponent(entry.sourceFile)
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                Issue.record("\(type): \(entry.sourceFile) does not exist")
                continue
            }
            let names = stages.filter { $0.type == type }.map { String(describing: $0) }
            #expect(names.count == 1, "\(type): \(names)")
            for name in names {
                #expect(
                    text.contains("struct \(name): Stage {") && text.contains("static let type = Options.stageType"),
                    "\(type) (\(name)) is not declared in \(entry.sourceFile)")
            }
        }
    }

    /// What a script reads: `kiln stages --json` lists every type once, with
    /// its placement and its file; the plain listing has a line for each.
    @Test func kilnStagesListsTheRegistry() async throws {
        let kiln = BuiltProducts.kiln
        try #require(FileManager.default.isExecutableFile(atPath: kiln), "build kiln first: swift build")
        let registry = StageRegistry.standard
        let json = try await runChild(kiln, ["stages", "--json"])
        #expect(json.status == 0, "\(json.errors)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: String]])
        #expect(rows.map { $0["type"] ?? "" } == registry.knownStageTypes)
        for row in rows {
            let entry = try #require(registry.entries[row["type"] ?? ""])
            #expect(row["placement"] == entry.placement.rawValue && row["source"] == entry.sourceFile, "\(row)")
        }
        let plain = try await runChild(kiln, ["stages"])
        #expect(plain.status == 0)
        #expect(plain.output.split(separator: "\n").map { String($0.split(separator: "\t").first ?? "") } == registry.knownStageTypes)
    }
}
