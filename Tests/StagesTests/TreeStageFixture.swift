import Foundation
import Logging
@testable import Stages

/// A temporary tree and a `StageContext` on it, for tree-stage tests.
struct TreeStageFixture {
    let root: String
    let tree: String
    let context: StageContext

    init(inputs: [String: StageInput] = [:], stageType: String = "test") throws {
        root = NSTemporaryDirectory() + "kiln-tree-test-\(UUID().uuidString)"
        tree = root + "/tree"
        let scratch = root + "/scratch"
        for d in [tree, scratch] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        let logger = Logger(label: "kiln.test.\(stageType)")
        let commands = CommandRunner(logPath: root + "/stage.log", logger: logger)
        context = StageContext(tree: tree, inputs: inputs, devices: [:], scratch: scratch,
                               logger: logger, commands: commands, stageType: stageType)
    }

    /// Writes a file into the tree.
    func write(_ path: String, _ content: String, mode: Int = 0o644) throws {
        try TreeFiles.write(content, to: path, in: tree, mode: mode)
    }

    func read(_ path: String) -> String? { try? TreeFiles.read(path, in: tree) }

    var log: String { (try? String(contentsOfFile: root + "/stage.log", encoding: .utf8)) ?? "" }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}
