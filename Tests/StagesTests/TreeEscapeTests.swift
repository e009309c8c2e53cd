import Foundation
import Logging
import Manifest
@testable import Stages
import Testing

/// Issue 15, finding 3: an agent's tree with links that lead out of it. The
/// attack made mkfs.fat copy the scheduler's 0600 key into an image; here the
/// real stages run on such trees and the secret never reaches their output.
@Suite(.serialized) struct TreeEscapeTests {
    static let secret = "KILN-SECRET-KEY-\(UUID().uuidString)"

    /// `/etc/kiln` of the scheduler, outside the tree: a 0600 key.
    func secretDirectory(_ f: AssemblyFixture) throws -> String {
        let dir = f.root + "/etc-kiln"
        try FileManager.default.createDirectory(atPath: dir + "/efi", withIntermediateDirectories: true)
        try Self.secret.write(toFile: dir + "/server.key", atomically: true, encoding: .utf8)
        try Self.secret.write(toFile: dir + "/efi/server.key", atomically: true, encoding: .utf8)
        chmod(dir + "/server.key", 0o600)
        return dir
    }

    func contains(_ file: String, _ text: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: file) else { return false }
        return data.range(of: Data(text.utf8)) != nil
    }

    /// Replaces `/boot/efi` in the fixture's tree (or `at`) with a link to `target`.
    func link(_ f: AssemblyFixture, _ at: String = "/boot/efi", to target: String) throws {
        try FileManager.default.removeItem(atPath: f.tree + at)
        guard symlink(target, f.tree + at) == 0 else { throw POSIXError(.EIO) }
    }

    func espDisk(_ f: AssemblyFixture) throws {
        let fd = open(f.output + "/disk.raw", O_WRONLY | O_CREAT, 0o644)
        ftruncate(fd, 64 << 20)
        close(fd)
    }

    func runFat(_ f: AssemblyFixture, source: String = "/boot/efi") async throws {
        try await f.run("org.kiln.mkfs.fat", #"{"volid": "7b3a4c1d", "source": "\#(source)"}"#,
                        inputs: ["tree": .tree(f.tree)], devices: ["device": f.region("disk.raw", start: 2048, size: 120000)])
    }

    @Test(arguments: ["absolute", "relative", "intermediate", "inside"])
    func mkfsFatDoesNotCopyFromOutsideTheTree(_ kind: String) async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        let keys = try secretDirectory(f)
        try espDisk(f)
        switch kind {
        case "absolute": try link(f, to: keys)                                   // /boot/efi -> /etc/kiln
        case "relative": try link(f, to: "../../etc-kiln")                      // /boot/efi -> ../../etc-kiln (tree is root/tree)
        case "intermediate":                                                     // /boot -> /etc/kiln, which has efi/
            try FileManager.default.removeItem(atPath: f.tree + "/boot")
            #expect(symlink(keys, f.tree + "/boot") == 0)
        default:                                                                 // a link inside the ESP
            #expect(symlink(keys + "/server.key", f.tree + "/boot/efi/EFI/BOOT/key.txt") == 0)
        }
        let error = await #expect(throws: StageError.self) { try await runFat(f) }
        let text = String(describing: error!)
        #expect(text.contains("symbolic link"), "\(text)")
        #expect(text.contains(kind == "intermediate" ? "/boot:" : (kind == "inside" ? "/boot/efi/EFI/BOOT/key.txt" : "/boot/efi")), "\(text)")
        #expect(!contains(f.output + "/disk.raw", Self.secret), "the key went into the image")
    }

    @Test func mkfsFatStillCopiesARealTree() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try espDisk(f)
        try await runFat(f)
        #expect(try await f.sh("mtype", "-i", "\(f.output)/disk.raw@@\(2048 * 512)", "::/EFI/BOOT/x.txt") == "esp file\n")
    }

    @Test func mkfsExt4DoesNotReadThroughALinkedSource() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        let keys = try secretDirectory(f)
        try link(f, "/home", to: keys)
        try espDisk(f)
        let error = await #expect(throws: StageError.self) {
            try await f.run("org.kiln.mkfs.ext4", #"{"uuid": "6b8f4a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b", "source": "/home"}"#,
                            inputs: ["tree": .tree(f.tree)], devices: ["device": f.region("disk.raw", start: 2048, size: 100000)])
        }
        #expect(String(describing: error!).contains("/home: is a symbolic link"))
        #expect(!contains(f.output + "/disk.raw", Self.secret))
    }

    @Test(arguments: ["boot/efi/server.key", "/boot/efi/server.key", "boot/efi/../../etc/hostname"])
    func tarPathsDoNotLeaveTheTree(_ path: String) async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try link(f, to: try secretDirectory(f))
        let error = await #expect(throws: StageError.self) {
            try await f.run("org.osbuild.tar", #"{"filename": "out.tar", "paths": ["etc/hostname", "\#(path)"]}"#, inputs: ["tree": .tree(f.tree)])
        }
        let text = String(describing: error!)
        #expect(text.contains("options.paths[1]"), "\(text)")
        #expect(!contains(f.output + "/out.tar", Self.secret))
    }

    @Test func tarArchivesALinkAsALink() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        try await f.run("org.osbuild.tar", #"{"filename": "out.tar", "paths": ["bin", "etc/hostname"]}"#, inputs: ["tree": .tree(f.tree)])
        let listing = try await f.sh("tar", "-tvf", f.output + "/out.tar")
        #expect(listing.contains("bin -> usr/bin") && listing.contains("etc/hostname"), "\(listing)")
    }

    /// An `org.osbuild.files` input from a pipeline names a file of its tree;
    /// the agent made that tree, so `disk.raw` may be a link to the key.
    @Test(arguments: ["disk.raw", "images/disk.raw"])
    func pipelineFileInputsDoNotFollowLinks(_ file: String) async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        let keys = try secretDirectory(f)
        let logger = Logger(label: "test")
        let store = try TreeStore(root: f.root + "/store")
        let executor = Executor(store: store, sources: try SourceCache(root: f.root + "/sources", logger: logger),
                                logger: logger, logDirectory: f.root + "/logs")
        let manifest = BuildManifest(pipelines: [
            Pipeline(name: "image", stages: [ManifestStage(type: "org.osbuild.truncate", options: ["filename": "disk.raw", "size": 4096])]),
            Pipeline(name: "xz", stages: [ManifestStage(type: "org.osbuild.xz", options: ["filename": "disk.raw.xz", "level": 0], inputs: [
                "file": Input(type: "org.osbuild.files", origin: Input.pipelineOrigin, references: ["name:image"],
                              referenceOptions: ["name:image": ["file": .string(file)]]),
            ])]),
        ])
        // The agent's tree: the image pipeline's stored tree with links where the file should be.
        let ids = try ContentIDs(manifest)
        let tree = store.treePath(ids.pipelines["image"]!)
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        #expect(symlink(keys + "/server.key", tree + "/disk.raw") == 0)
        #expect(symlink(keys, tree + "/images") == 0)
        #expect(symlink("server.key", keys + "/disk.raw") == 0)
        let error = await #expect(throws: StageError.self) { _ = try await executor.run(manifest, exports: ["xz"]) }
        #expect(String(describing: error!).contains("is a symbolic link"), "\(String(describing: error!))")
        #expect(!store.contains(ids.pipelines["xz"]!), "nothing was made from the key")
    }

    /// The scheduler's keys and state are not there for the programs assembly
    /// runs: each runs in a mount namespace of its own with them covered, and
    /// the scheduler itself still sees them afterwards.
    @Test func assemblyProgramsDoNotSeeTheSchedulersSecrets() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        let keys = try secretDirectory(f)
        let database = f.root + "/scheduler.sqlite"
        try Self.secret.write(toFile: database, atomically: true, encoding: .utf8)
        let runner = CommandRunner(logPath: f.log, logger: Logger(label: "test"), hiding: [keys, database, f.root + "/absent"])
        let seen = try await runner.output(["sh", "-c", "cat \(keys)/server.key \(database) 2>&1; ls -A \(keys) 2>&1; true"])
        #expect(!seen.contains(Self.secret), "\(seen)")
        #expect(try String(contentsOfFile: keys + "/server.key", encoding: .utf8) == Self.secret, "the host's view is unchanged")
        #expect(!(try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)).contains(keys), "nothing mounted on the host")

        // A real stage works so, and mounts it makes (a read-only view) are still there for its programs.
        try espDisk(f)
        let context = StageContext(tree: f.output, inputs: ["tree": .tree(f.tree)],
                                   devices: ["device": f.region("disk.raw", start: 2048, size: 120000)],
                                   scratch: f.root + "/scratch", logger: Logger(label: "test"), commands: runner,
                                   stageType: MkfsFat.type)
        try FileManager.default.createDirectory(atPath: f.root + "/scratch", withIntermediateDirectories: true)
        try await StageRegistry.standard.run(ManifestStage(type: MkfsFat.type, options: ["volid": "7b3a4c1d", "source": "/boot/efi"]),
                                             in: context, path: "pipelines[0].stages[0]")
        #expect(try await f.sh("mtype", "-i", "\(f.output)/disk.raw@@\(2048 * 512)", "::/EFI/BOOT/x.txt") == "esp file\n")
    }

    /// The farm-demo layout: the key beside the store's directory. The
    /// directory cannot be covered (the stages work under it), but the key
    /// file still is.
    @Test func aKeyBesideTheStoreIsStillHidden() async throws {
        let f = try AssemblyFixture()
        defer { f.remove() }
        let key = f.root + "/scheduler.key"
        try Self.secret.write(toFile: key, atomically: true, encoding: .utf8)
        let store = try TreeStore(root: f.root + "/scheduler/store")
        var config = [key, f.root]  // what SchedulerConfiguration.secrets gives: the file and its directory
        config.append(f.root + "/allow")
        let executor = Executor(store: store, sources: try SourceCache(root: f.root + "/sources", logger: Logger(label: "test")),
                                logger: Logger(label: "test"), logDirectory: f.root + "/logs", hiding: config)
        #expect(executor.hiding.contains(key) && !executor.hiding.contains(f.root), "\(executor.hiding)")
        let runner = CommandRunner(logPath: f.log, logger: Logger(label: "test"), hiding: executor.hiding)
        let seen = try await runner.output(["sh", "-c", "cat \(key) 2>&1; true"])
        #expect(!seen.contains(Self.secret), "\(seen)")
    }
}
