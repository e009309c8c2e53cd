import Foundation
import Logging
import Manifest
@testable import Stages

/// A scratch area for assembly-stage tests: a small input tree, an output
/// directory, and a way to run a stage from its manifest JSON.
struct AssemblyFixture {
    let root: String
    let tree: String
    let output: String
    let log: String
    let commands: CommandRunner
    /// Runs the tools that inspect what a stage made (mdir, debugfs, …), which no stage runs.
    let tools: CommandRunner

    init() throws {
        root = "/var/tmp/kiln-assembly-test-\(UUID().uuidString.prefix(8))"
        tree = root + "/tree"
        output = root + "/output"
        log = root + "/stage.log"
        let fm = FileManager.default
        try fm.createDirectory(atPath: output, withIntermediateDirectories: true)
        try fm.createDirectory(atPath: tree, withIntermediateDirectories: true)
        commands = CommandRunner(logPath: log, logger: Logger(label: "test"))
        tools = CommandRunner(logPath: log, logger: Logger(label: "test"), programs: HostPrograms.stages.adding([
            "blkid", "debugfs", "dumpe2fs", "e2fsck", "mdir", "minfo", "mtype", "xfs_db", "xfs_info", "cmp", "od",
        ]))
        try makeTree()
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }

    /// /etc/hostname, an executable, a symlink, a hard link, a file owned by
    /// uid 1000, and an ESP file under /boot/efi.
    private func makeTree() throws {
        try TreeFiles.write("kiln\n", to: "/etc/hostname", in: tree)
        try TreeFiles.write("#!/bin/sh\necho hi\n", to: "/usr/bin/hello", in: tree, mode: 0o755)
        try TreeFiles.symlink("usr/bin", at: "/bin", in: tree)
        try FileManager.default.linkItem(atPath: tree + "/usr/bin/hello", toPath: tree + "/usr/bin/hello-again")
        try TreeFiles.write("secret\n", to: "/home/user/notes.txt", in: tree, mode: 0o640)
        chown(tree + "/home/user/notes.txt", 1000, 1000)
        chown(tree + "/home/user", 1000, 1000)
        try TreeFiles.write("esp file\n", to: "/boot/efi/EFI/BOOT/x.txt", in: tree)
        try TreeFiles.write("set timeout=0\n", to: "/boot/grub/grub.cfg", in: tree)
    }

    func context(inputs: [String: StageInput] = [:], devices: [String: DeviceRegion] = [:], type: String) throws -> StageContext {
        let scratch = root + "/scratch-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        return StageContext(tree: output, inputs: inputs, devices: devices, scratch: scratch,
                            logger: Logger(label: "test"), commands: commands, stageType: type)
    }

    /// Runs stage `type` with options given as JSON, the way the executor does.
    func run(_ type: String, _ optionsJSON: String, inputs: [String: StageInput] = [:],
             devices: [String: DeviceRegion] = [:]) async throws {
        let options = try JSONDecoder().decode([String: JSONValue].self, from: Data(optionsJSON.utf8))
        let context = try context(inputs: inputs, devices: devices, type: type)
        try await StageRegistry.standard.run(ManifestStage(type: type, options: options), in: context, path: "pipelines[0].stages[0]")
    }

    /// Output of a host program (fails the test on a non-zero exit).
    func sh(_ argv: String...) async throws -> String {
        try await tools.output(argv, environment: ["MTOOLS_SKIP_CHECK": "1"])
    }

    /// The device an org.osbuild.loopback with `start`/`size` in sectors resolves to.
    func region(_ file: String, start: UInt64, size: UInt64?) -> DeviceRegion {
        DeviceRegion(path: output + "/" + file, offset: start * 512, size: size.map { $0 * 512 })
    }
}
