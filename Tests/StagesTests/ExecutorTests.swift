import Foundation
import KilnTestSupport
import Logging
import Manifest
import Testing

@testable import Stages

/// Stages for exercising the executor's caching with real files and a real store.
private struct SlowInstall: Stage {
    static let type = "org.test.install"
    static let sourceFile = StageSource.path()
    static let placement = Placement.tree
    static let checkpoint = true
    static let inputs: [String: InputKind] = ["packages": .sourceFiles]
    struct Options: Codable { let content: String }
    func run(_ options: Options, in context: StageContext) async throws {
        try TreeFiles.write(options.content, to: "/usr/share/installed", in: context.tree)
        try TreeFiles.write("x", to: "/var/log/runs/install-\(UUID().uuidString)", in: context.tree)
    }
}

private struct WriteHostname: Stage {
    static let type = "org.test.hostname"
    static let sourceFile = StageSource.path()
    static let placement = Placement.tree
    struct Options: Codable { let hostname: String }
    func run(_ options: Options, in context: StageContext) async throws {
        try TreeFiles.write(options.hostname + "\n", to: "/etc/hostname", in: context.tree)
    }
}

private struct Fail: Stage {
    static let type = "org.test.fail"
    static let sourceFile = StageSource.path()
    static let placement = Placement.tree
    struct Options: Codable {}
    func run(_ options: Options, in context: StageContext) async throws {
        try await context.run(["sh", "-c", "echo something went wrong >&2; exit 3"])
    }
}

private struct ConcatFiles: Stage {
    static let type = "org.test.concat"
    static let sourceFile = StageSource.path()
    static let placement = Placement.assembly
    static let inputs: [String: InputKind] = ["tree": .pipelineTree, "files": .sourceFiles]
    struct Options: Codable { let filename: String }
    func run(_ options: Options, in context: StageContext) async throws {
        var out = ""
        for (_, path) in try context.inputFiles("files").sorted(by: { $0.key < $1.key }) {
            out += try String(contentsOfFile: path, encoding: .utf8)
        }
        let tree = try context.inputTree("tree")
        out += try String(contentsOfFile: tree + "/etc/hostname", encoding: .utf8)
        try TreeFiles.write(out, to: "/" + options.filename, in: context.tree)
    }
}

/// A class, so that each test's HTTP server and scratch directory go when
/// the test ends (`deinit`): a struct's copies left five servers running
/// after the test process had exited.
@Suite(.serialized) final class ExecutorTests {
    let root: String
    let registry = StageRegistry([SlowInstall.self, WriteHostname.self, Fail.self, ConcatFiles.self])
    let server: StaticHTTPServer

    init() throws {
        root = NSTemporaryDirectory() + "kiln-executor-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root + "/files", withIntermediateDirectories: true)
        server = try StaticHTTPServer(directory: root + "/files")
    }

    deinit {
        server.stop()
        // The store may hold read-only trees; rm takes them as the tests' own root.
        _ = try? Process.run(URL(fileURLWithPath: "/bin/rm"), arguments: ["-rf", "--one-file-system", root]).waitUntilExit()
    }

    func executor() throws -> Executor {
        let logger = Logger(label: "test")
        return Executor(
            registry: registry, store: try TreeStore(root: root + "/store"),
            sources: try SourceCache(root: root + "/sources", logger: logger),
            logger: logger, logDirectory: root + "/logs")
    }

    /// A source file served over HTTP and its checksum.
    func source(_ text: String) throws -> (String, String) {
        let name = UUID().uuidString
        let path = root + "/files/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return ("sha256:" + (try SourceCache.sha256(file: path)), server.url(name))
    }

    /// Where the served file of `source` is.
    func servedFile(_ source: (String, String)) -> String {
        root + "/files/" + source.1.split(separator: "/").last!
    }

    func manifest(hostname: String, source: (String, String)) -> BuildManifest {
        BuildManifest(
            pipelines: [
                Pipeline(
                    name: "os",
                    stages: [
                        ManifestStage(type: "org.test.install", options: ["content": "pkgs"], inputs: ["packages": .files([source.0])]),
                        ManifestStage(type: "org.test.hostname", options: ["hostname": .string(hostname)]),
                    ]),
                Pipeline(
                    name: "image",
                    stages: [
                        ManifestStage(
                            type: "org.test.concat", options: ["filename": "disk.img"],
                            inputs: ["tree": .tree("os"), "files": .files([source.0])])
                    ]),
            ], sources: ["org.osbuild.curl": SourceGroup(items: [source.0: SourceItem(url: source.1)])])
    }

    func installRuns(_ tree: String) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: tree + "/var/log/runs").count) ?? 0
    }

    @Test func unchangedRebuildRunsNothingAndLateChangeResumesFromCheckpoint() async throws {
        let src = try source("payload\n")
        let exec = try executor()
        let first = try await exec.run(manifest(hostname: "one", source: src), exports: ["image", "os"])
        #expect(first.stagesRun == ["os/org.test.install", "os/org.test.hostname", "image/org.test.concat"])
        #expect(try String(contentsOfFile: first.exports["image"]! + "/disk.img", encoding: .utf8) == "payload\none\n")

        let second = try await exec.run(manifest(hostname: "one", source: src), exports: ["image"])
        #expect(second.stagesRun.isEmpty, "an unchanged manifest runs no stage")
        #expect(second.cached == ["image"])

        let third = try await exec.run(manifest(hostname: "two", source: src), exports: ["image", "os"])
        #expect(third.stagesRun == ["os/org.test.hostname", "image/org.test.concat"], "installation restored from its checkpoint")
        #expect(installRuns(third.exports["os"]!) == 1)
        #expect(try String(contentsOfFile: third.exports["os"]! + "/etc/hostname", encoding: .utf8) == "two\n")
    }

    @Test func failingStageReportsStageAndLogTail() async throws {
        let src = try source("p\n")
        var m = manifest(hostname: "x", source: src)
        m.pipelines[0].stages.append(ManifestStage(type: "org.test.fail"))
        let error = await #expect(throws: ExecutorError.self) { try await executor().run(m, exports: ["os"]) }
        let text = String(describing: error!)
        #expect(text.contains("pipeline os, stage 3/3 org.test.fail failed"))
        #expect(text.contains("exited with status 3"))
        #expect(text.contains("something went wrong"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: root + "/store/tmp")
        #expect(leftovers.isEmpty, "no half-built tree is left behind: \(leftovers)")
    }

    @Test func corruptCacheEntryIsFetchedAgain() async throws {
        let src = try source("good\n")
        let cache = try SourceCache(root: root + "/sources", logger: Logger(label: "t"))
        let commands = CommandRunner(logPath: root + "/fetch.log", logger: Logger(label: "t"))
        let paths = try await cache.provide([src.0: src.1], commands: commands)
        try "evil\n".write(toFile: paths[src.0]!, atomically: false, encoding: .utf8)
        _ = try await cache.provide([src.0: src.1], commands: commands)
        #expect(try String(contentsOfFile: paths[src.0]!, encoding: .utf8) == "good\n")
    }

    @Test func checksumMismatchNamesURLAndBothDigests() async throws {
        let src = try source("original\n")
        try "tampered\n".write(toFile: servedFile(src), atomically: false, encoding: .utf8)
        let actual = try SourceCache.sha256(file: servedFile(src))
        let cache = try SourceCache(root: root + "/sources", logger: Logger(label: "t"))
        let commands = CommandRunner(logPath: root + "/fetch.log", logger: Logger(label: "t"))
        let error = await #expect(throws: SourceError.self) { try await cache.provide([src.0: src.1], commands: commands) }
        let text = String(describing: error!)
        #expect(text.contains(src.1) && text.contains(src.0) && text.contains(actual))
        #expect(!FileManager.default.fileExists(atPath: cache.path(src.0)), "nothing stored under a wrong key")
    }
}

@Suite(.serialized) struct TreeStoreTests {
    @Test func pruneRemovesLeastRecentlyUsedTreesUntilTheStoreFits() async throws {
        let root = NSTemporaryDirectory() + "kiln-store-\(UUID().uuidString.prefix(8))"
        let commands = CommandRunner(logPath: root + ".log", logger: Logger(label: "t"))
        let store = try TreeStore(root: root, capBytes: 3 << 20)
        for (i, id) in ["old", "middle", "new"].enumerated() {
            let work = try store.makeWorkDirectory()
            try Data(count: 2 << 20).write(to: URL(fileURLWithPath: work + "/blob"))
            try await store.commit(work, as: id, move: true, commands: commands)
            // Distinct, ordered last-use times.
            let t = Date(timeIntervalSinceNow: Double(i - 10))
            try FileManager.default.setAttributes([.modificationDate: t], ofItemAtPath: root + "/objects/\(id)")
        }
        store.touch("old")  // used just now: the most recent
        try await store.prune(commands: commands)
        #expect(store.contains("old"))
        #expect(!store.contains("middle") && !store.contains("new"))
    }

    /// A tree something uses (a build waiting for it, an executor, an
    /// upload) holds a lease: a prune down to nothing leaves exactly the
    /// leased trees, and takes them once the lease ends.
    @Test func pruneNeverRemovesALeasedTree() async throws {
        let root = NSTemporaryDirectory() + "kiln-store-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let commands = CommandRunner(logPath: root + ".log", logger: Logger(label: "t"))
        let store = try TreeStore(root: root, capBytes: 0)
        for id in ["in-use", "idle", "oldest"] {
            let work = try store.makeWorkDirectory()
            try Data(count: 64 << 10).write(to: URL(fileURLWithPath: work + "/blob"))
            try await store.commit(work, as: id, move: true, commands: commands)
        }
        // The least recently used of all, but leased (by a copy of the store value, as another executor holds it).
        try FileManager.default.setAttributes(
            [.modificationDate: Date(timeIntervalSinceNow: -3600)],
            ofItemAtPath: root + "/objects/in-use")
        let copy = store
        let lease = copy.pin(["in-use", "not-built-yet"])
        let report = try await store.prune(commands: commands)
        #expect(store.contains("in-use"), "a leased tree stays")
        #expect(!store.contains("idle") && !store.contains("oldest"))
        #expect(Set(report.removed) == ["idle", "oldest"] && report.overCap && report.leasedBytes > 0)
        // Stored while leased (being built), it stays too.
        let work = try store.makeWorkDirectory()
        try await store.commit(work, as: "not-built-yet", move: true, commands: commands)
        try await store.prune(commands: commands)
        #expect(store.contains("not-built-yet"))

        lease.release()
        let after = try await store.prune(commands: commands)
        #expect(!store.contains("in-use") && !store.contains("not-built-yet"))
        #expect(after.storedBytes == 0 && !after.overCap)
        #expect((try FileManager.default.contentsOfDirectory(atPath: root + "/tmp")).isEmpty, "nothing is left half-removed")
    }

    /// The cap is on disk space: a file with several hard links counts once,
    /// a sparse file by what it occupies.
    @Test func diskUsageCountsBlocksOnceAndSparseFilesByWhatTheyOccupy() throws {
        let root = NSTemporaryDirectory() + "kiln-du-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root + "/d", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Data(repeating: 1, count: 1 << 20).write(to: URL(fileURLWithPath: root + "/d/file"))
        #expect(link(root + "/d/file", root + "/d/link") == 0)
        let fd = open(root + "/sparse", O_CREAT | O_WRONLY, 0o600)
        #expect(ftruncate(fd, 1 << 30) == 0)
        close(fd)
        let used = TreeStore.diskUsage(root)
        #expect(used >= 1 << 20 && used < 2 << 20, "\(used)")
    }

    /// Issue 15, finding 4: a stored tree holds setuid-root programs and a
    /// world-writable /tmp. Another local user ran a stored setuid `id` and
    /// got euid 0, and could plant a file in a cached tree's /tmp that every
    /// later image would carry. The store is 0700 now: `nobody` can reach
    /// neither. An existing store that others can enter is refused at start.
    @Test func anotherLocalUserCanNeitherRunStoredSetuidProgramsNorPlantFiles() async throws {
        let root = NSTemporaryDirectory() + "kiln-store-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let commands = CommandRunner(logPath: root + ".log", logger: Logger(label: "t"))
        let store = try TreeStore(root: root)
        let work = try store.makeWorkDirectory()
        try FileManager.default.createDirectory(atPath: work + "/usr/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: work + "/tmp", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/usr/bin/id", toPath: work + "/usr/bin/id")
        #expect(chmod(work + "/usr/bin/id", 0o4755) == 0 && chmod(work + "/tmp", 0o1777) == 0)
        try await store.commit(work, as: "tree", move: true, commands: commands)
        let stored = store.treePath("tree")

        var info = stat()
        #expect(stat(root, &info) == 0 && info.st_mode & 0o777 == 0o700)
        let asNobody = { (argv: [String]) async throws -> ChildOutput in
            try await runChild("/usr/sbin/runuser", ["-u", "nobody", "--"] + argv)
        }
        // Sanity: the same program, reachable, does give euid 0 (the attack is real).
        let open = NSTemporaryDirectory() + "kiln-open-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: open) }
        try FileManager.default.copyItem(atPath: stored + "/usr/bin/id", toPath: open + "/id")
        #expect(chmod(open + "/id", 0o4755) == 0 && chmod(open, 0o755) == 0)
        #expect(try await asNobody([open + "/id", "-u"]).output.contains("0"), "a reachable setuid-root id gives euid 0")

        let run = try await asNobody([stored + "/usr/bin/id", "-u"])
        #expect(run.status != 0 && !run.output.contains("0"), "nobody ran the stored setuid id: \(run.output)")
        let plant = try await asNobody(["/usr/bin/touch", stored + "/tmp/planted"])
        #expect(plant.status != 0)
        #expect(!FileManager.default.fileExists(atPath: stored + "/tmp/planted"))

        // A store others can enter is refused at start, with the fix.
        #expect(chmod(root, 0o755) == 0)
        let error = #expect(throws: StageError.self) { try TreeStore(root: root) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("chmod 0700 \(root)"))
        #expect(chmod(root, 0o750) == 0)
        _ = try TreeStore(root: root)  // a kiln group may read
    }
}
