import Foundation
import KilnTestSupport
import Logging
import Manifest
@testable import Stages
import Testing

/// Issue 15: each test runs an attack through a manifest and checks that it
/// is refused and that nothing it aimed at happened. Finding 1 here; finding 2
/// in TrustTests+Sources.swift, finding 3 in TreeEscapeTests.swift.
@Suite(.serialized) struct TrustTests {
    /// Made by the tests that write files, which remove it again.
    let root = "/var/tmp/kiln-trust-\(UUID().uuidString.prefix(8))"

    init() {}

    /// A 0755 script that, if anything ever runs it, leaves `pwned` behind.
    func evilScript(_ name: String = "evil") throws -> (script: String, marker: String) {
        let marker = root + "/pwned-\(name)"
        let script = root + "/store/objects/earlier-build/tree/usr/local/bin/\(name)"
        try FileManager.default.createDirectory(atPath: (script as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try "#!/bin/sh\ntouch \(marker)\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        return (script, marker)
    }

    func executor() throws -> Executor {
        let logger = Logger(label: "test")
        return Executor(store: try TreeStore(root: root + "/kiln-store"),
                        sources: try SourceCache(root: root + "/sources", logger: logger),
                        logger: logger, logDirectory: root + "/logs")
    }

    static let sha = "sha256:" + String(repeating: "ab", count: 32)

    /// A manifest with one image pipeline: a disk, then `stage`.
    static func manifest(_ stage: String, sources: String = "{}") -> String {
        """
        {"version": "2", "sources": \(sources), "pipelines": [{"name": "image", "stages": [
          {"type": "org.osbuild.truncate", "options": {"filename": "disk.raw", "size": 1048576}},
          \(stage)]}]}
        """
    }

    static func grubInst(binary: String) -> String {
        #"{"type": "org.osbuild.grub2.inst", "options": {"filename": "disk.raw", "platform": "i386-pc", "location": 2048, "core": {"type": "mkimage", "partlabel": "gpt", "filesystem": "ext4", "binary": "\#(binary)"}, "prefix": {"type": "partition", "partlabel": "gpt", "number": 1, "path": "/boot/grub"}}}"#
    }

    func validationError(_ json: String) -> ManifestError? {
        do {
            let m = try BuildManifest.decode(Data(json.utf8))
            try m.validate(stages: StageRegistry.standard)
            return nil
        } catch {
            return error
        }
    }

    /// `kiln run` on `json`: its exit status and what it printed.
    func kilnRun(_ json: String) async throws -> ChildOutput {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let file = root + "/manifest-\(UUID().uuidString.prefix(6)).json"
        try json.write(toFile: file, atomically: true, encoding: .utf8)
        return try await runChild(BuiltProducts.kiln, ["run", file, "--output", root + "/out", "--store", root + "/cli-store",
                                                       "--source-cache", root + "/cli-sources", "--logs", root + "/cli-logs"],
                                  mergeErrors: true)
    }

    // MARK: Finding 1: a manifest chooses no program

    @Test func grubInstallBinaryNamingAStorePathIsRefusedBeforeAnythingRuns() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (script, marker) = try evilScript()
        let json = Self.manifest(Self.grubInst(binary: script))

        let error = try #require(validationError(json))
        #expect(error.description.hasPrefix("pipelines[0].stages[1].options.core.binary: \"\(script)\" is not a program Kiln runs"))
        #expect(error.description.contains("Remove the option"))

        await #expect(throws: ManifestError.self) {
            try await executor().run(try BuildManifest.decode(Data(json.utf8)), exports: ["image"])
        }
        let cli = try await kilnRun(json)
        #expect(cli.status == 2, "bad input: \(cli.output)")
        #expect(cli.output.contains("pipelines[0].stages[1].options.core.binary"))
        #expect(!FileManager.default.fileExists(atPath: marker), "the client's script ran")
        #expect(!FileManager.default.fileExists(atPath: root + "/out/image/disk.raw"), "a stage ran before validation")
    }

    @Test(arguments: ["grub-mkimage", "grub2-mkimage"])
    func grubInstallTakesOsbuildsProgramNames(_ name: String) throws {
        #expect(validationError(Self.manifest(Self.grubInst(binary: name))) == nil)
    }

    @Test func hostCommandsRunOnlyFixedProgramsFromTheFixedPath() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (script, marker) = try evilScript("sh")
        let runner = CommandRunner(logPath: root + "/run.log", logger: Logger(label: "test"))
        // A path, and a name that is not a host program of Kiln's.
        for argv in [[script], ["evil"], ["./sh", "-c", "true"]] {
            await #expect(throws: StageError.self) { try await runner.run(argv) }
            await #expect(throws: StageError.self) { _ = try await runner.output(argv) }
        }
        // A PATH from a caller does not lead `sh` to the script.
        try await runner.run(["sh", "-c", "true"], environment: ["PATH": (script as NSString).deletingLastPathComponent])
        #expect(!FileManager.default.fileExists(atPath: marker), "a program outside the fixed set ran")
    }

    /// Every command a stage runs starts with a literal host program name that
    /// `HostPrograms` lists (a command run inside the tree is a literal too), and the
    /// few call sites that pass an argv variable build it from a literal: new
    /// sites have to be added here after review.
    @Test func everyStageCommandStartsWithAListedLiteralProgram() throws {
        let sources = BuiltProducts.repository + "/Sources"
        let literal = try NSRegularExpression(pattern: #"(\w+|\$0)\.(run|output)\(\s*\[\s*"([^"]*)""#)
        let variable = try NSRegularExpression(pattern: #"\b(context|commands|sandbox|\$0)\.(run|output)\(\s*([^\[\s"][^,)]*)"#)
        let reviewed: Set<String> = [
            "MkfsExt4.swift:argv", "MkfsFat.swift:argv", "MkfsXfs.swift:argv + [device]", "Mkswap.swift:argv + [scratch]",
            "Tar.swift:argv", "DebianInstall.swift:sandbox.hostCommandLine(hostDpkg + [\"--unpack\"] + order.map(\\.path",
            "Sandbox.swift:commandLine(argv",
            "InitramfsStage.swift:compression + [\"-f\"", "StageContext.swift:argv",
        ]
        var seen: [String] = []
        let files = FileManager.default.enumerator(atPath: sources)!.compactMap { $0 as? String }
            .filter { $0.hasSuffix(".swift") && !$0.hasPrefix("Protocol/Generated") }
        for file in files.sorted() {
            let text = try String(contentsOfFile: sources + "/" + file, encoding: .utf8)
            let range = NSRange(text.startIndex..., in: text)
            for m in literal.matches(in: text, range: range) {
                let receiver = String(text[Range(m.range(at: 1), in: text)!])
                guard ["context", "commands", "sandbox", "$0", "mounts"].contains(receiver) else { continue }
                let program = String(text[Range(m.range(at: 3), in: text)!])
                seen.append(program)
                if receiver == "sandbox" || receiver == "$0" { continue }  // runs inside the tree, through `bwrap`
                #expect(HostPrograms.stages.names.contains(program), "\(file): \(program) is not in HostPrograms.stages")
            }
            for m in variable.matches(in: text, range: range) {
                // One line however the call is wrapped (swift format breaks long ones).
                let argument = String(text[Range(m.range(at: 3), in: text)!])
                    .replacingOccurrences(of: #"\s+"#, with: " ", options: .regularExpression)
                    .replacingOccurrences(of: "( ", with: "(").trimmingCharacters(in: .whitespaces)
                let name = (file as NSString).lastPathComponent
                #expect(reviewed.contains("\(name):\(argument)"), "\(name): a command whose program is \(argument): review it and list it here")
            }
        }
        #expect(seen.count > 30, "the scan found the stages' commands")
        for program in ["mkfs.fat", "mkfs.ext4", "mkfs.xfs", "mkswap", "dpkg"] {
            #expect(HostPrograms.stages.names.contains(program))
        }
    }
}
