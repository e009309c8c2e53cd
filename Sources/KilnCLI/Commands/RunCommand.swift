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

    @Flag(help: "One JSON object per line: {\"type\", \"placement\", \"file\"}.") var json = false

    func run() async throws {
        let registry = StageRegistry.standard
        for type in registry.knownStageTypes {
            let entry = registry.entries[type]!
            if json {
                let line: [String: String] = ["type": type, "placement": entry.placement.rawValue, "file": entry.sourceFile]
                let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("\(type)\t\(entry.placement.rawValue)\t\(entry.sourceFile)")
            }
        }
    }
}
