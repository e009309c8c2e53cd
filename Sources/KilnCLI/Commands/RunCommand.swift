import ArgumentParser
import Foundation
import Manifest
import Stages

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Execute a manifest locally and export pipelines.")

    @Argument(help: "The manifest (osbuild format, version 2).")
    var manifest: String

    @Option(name: .customLong("export"), help: "Pipeline to export (repeatable).")
    var exports: [String] = []

    @Option(name: .shortAndLong, help: "Directory that receives one subdirectory per exported pipeline.")
    var output: String

    @OptionGroup var stores: StoreOptions

    @Option(help: "How long one stage may run before it is stopped and the run fails (90s, 30m, 2h); default 1h.")
    var stageTimeout: String = "1h"

    func run() async throws {
        try await CLI.main {
            let stageMS = try CLI.durationMS(stageTimeout, option: "--stage-timeout")
            guard let data = FileManager.default.contents(atPath: manifest) else {
                throw CLIError.badInput("\(manifest): cannot read the file")
            }
            let m = try BuildManifest.decode(data, file: manifest)
            let exports = exports.isEmpty ? [m.pipelines.last?.name].compactMap { $0 } : exports
            var executor = try await stores.executor()
            executor.stageTimeout = .milliseconds(stageMS)
            let result = try await executor.run(m, exports: exports)
            for name in exports {
                let dest = "\(output)/\(name)"
                try await Export.copyTree(result.exports[name]!, to: dest)
                CLI.say("exported \(name) → \(dest)")
            }
            await stores.prune(executor)
        }
    }
}

struct StagesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stages",
        abstract: "List the stage types Kiln knows: type, placement (tree or assembly) and the source file that holds it.")

    @Flag(help: "Print JSON: an array of {\"type\", \"placement\", \"source\"}.") var json = false

    func run() async throws {
        let registry = StageRegistry.standard
        let entries = registry.knownStageTypes.map { registry.entries[$0]! }
        if json {
            print(
                CanonicalJSON.encode(
                    .array(
                        entries.map { e in
                            .object(["type": .string(e.type), "placement": .string(e.placement.rawValue), "source": .string(e.sourceFile)])
                        })))
            return
        }
        for e in entries {
            print("\(e.type)\t\(e.placement.rawValue)\t\(e.sourceFile)")
        }
    }
}
