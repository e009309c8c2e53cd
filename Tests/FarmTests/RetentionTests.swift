import Foundation
import KilnTestSupport
import Protocol
import Stages
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Retention and disk space with real `kiln scheduler` and `kiln agent`
/// processes on loopback: stores kept under `--store-cap` while the daemons
/// run (never taking a tree in use), `--keep-artifacts`, `kiln delete`,
/// `--keep-history` with the database compacted, and work refused below
/// `--min-free-gib` on small real file systems (tmpfs) until space returns.
@Suite(.serialized, .tags(.farm), .tier(.quick, .farm))
struct RetentionTests {
    func submit(_ c: SchedulerClient, hostname: String, notes: [String] = []) async throws -> String {
        try await c.submit(manifestJSON: FarmHarness.manifest(hostname: hostname), exports: ["archive"], arch: "x86_64",
                           label: "retention test \(hostname)", notes: notes).buildID
    }

    /// The client options of the CLI for key `key`.
    func clientOptions(_ farm: FarmHarness, key: String = "client") -> [String] {
        ["--scheduler", farm.endpoint, "--key", "\(farm.dir)/\(key).key", "--scheduler-key", "\(farm.dir)/scheduler.pub"]
    }

    /// IDs of the objects a tree store holds.
    func objects(_ store: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: store + "/objects")) ?? []
    }

    /// Disk space of a store's objects, as the pruner counts it.
    func used(_ store: String) -> UInt64 {
        objects(store).reduce(0) { $0 + TreeStore.diskUsage("\(store)/objects/\($1)") }
    }

    /// A size-limited tmpfs at `path` (private, as a store or state directory must be).
    func mountTmpfs(_ path: String, mib: Int) async throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let r = try await runChild("/bin/mount", ["-t", "tmpfs", "-o", "size=\(mib)m,mode=0700", "kiln-retention-test", path],
                                   mergeErrors: true)
        try #require(r.status == 0, "mount: \(r.output)")
    }

    /// Detaches the tmpfs (lazily: a daemon may still hold files in it).
    func unmount(_ path: String) {
        _ = try? runBlocking(["umount", "-l", path])
    }

    func nowMS() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    @Test("the scheduler's and an agent's stores stay under --store-cap while they run: the least recently used trees go, the newest stay")
    func storesStayUnderTheirCap() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let capGiB = 0.0001  // 107,374 bytes: a few of these small trees
        let cap = UInt64(capGiB * Double(1 << 30))
        let prune = ["--store-cap", "\(capGiB)", "--prune-interval", "1"]
        try await farm.startScheduler(extra: prune)
        try farm.startAgent("agent-a", extra: prune)
        let c = try await farm.client()
        var finished: [Kiln_V1_BuildStatus] = []
        for i in 1...8 {
            let status = try #require(try await farm.finished(c, try await submit(c, hostname: "retention-cap-\(i)")))
            #expect(status.state == .succeeded, "\(status.failure)")
            #expect(status.jobs.allSatisfy { $0.attempts <= 1 }, "no tree was taken from a build that needed it")
            finished.append(status)
        }
        let stores = ["\(farm.dir)/scheduler/store", "\(farm.dir)/agent-a/store"]
        for store in stores {
            #expect(try await farm.eventually(.seconds(30)) { used(store) <= cap },
                    "\(store): \(used(store)) bytes in \(objects(store).count) objects, cap \(cap)")
        }
        let tree = { (s: Kiln_V1_BuildStatus) in s.jobs.first { $0.onAgent }?.pipelineID ?? "" }
        for store in stores {
            let held = Set(objects(store))
            #expect(held.contains(tree(finished.last!)), "\(store): the most recently used tree stays")
            #expect(!held.contains(tree(finished.first!)), "\(store): the least recently used tree went")
        }
        #expect(farm.log("scheduler").contains("least recently used tree(s)"), "\(farm.log("scheduler"))")
        #expect(farm.log("agent-a").contains("least recently used tree(s)"), "\(farm.log("agent-a"))")

        // The pruned tree is built again when it is needed again.
        let again = try await c.submit(manifestJSON: FarmHarness.manifest(hostname: "retention-cap-1"), exports: ["archive"],
                                       arch: "x86_64", label: "retention test again")
        #expect(again.cachedJobs == 0)
        let rebuilt = try #require(try await farm.finished(c, again.buildID))
        #expect(rebuilt.state == .succeeded, "\(rebuilt.failure)")
        await c.close()
    }

    /// Two trees, one built 4 s after the other, assembled into two archives:
    /// the first tree waits in the store for the second, under a cap of one byte.
    static func twoTreeManifest() -> [UInt8] {
        func tree(_ name: String) -> [String: Any] {
            ["name": name, "stages": [
                ["type": "org.osbuild.hostname", "options": ["hostname": "retention-\(name)"]],
                ["type": "org.osbuild.locale", "options": ["language": "C.UTF-8"]],
            ]]
        }
        func archive(_ name: String, of tree: String) -> [String: Any] {
            ["name": name, "stages": [[
                "type": "org.osbuild.tar", "options": ["filename": "\(tree).tar"],
                "inputs": ["tree": ["type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": ["name:\(tree)"]]],
            ]]]
        }
        let m: [String: Any] = ["version": "2", "pipelines": [tree("fast"), tree("slow"), archive("archive-fast", of: "fast"),
                                                            archive("archive-slow", of: "slow")], "sources": [:]]
        return [UInt8](try! JSONSerialization.data(withJSONObject: m))
    }

    @Test("a tree in use is never pruned: under a one-byte cap a build's first tree waits for its second, both are assembled, nothing is rebuilt")
    func treesInUseStay() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let prune = ["--store-cap", "0.000000001", "--prune-interval", "1"]
        try await farm.startScheduler(extra: prune)
        try farm.startAgent("agent-a", extra: prune)
        try farm.startAgent("agent-b", env: ["KILN_TEST_JOB_DELAY_MS": "4000"], extra: prune)
        let c = try await farm.client()
        #expect(try await farm.eventually(.seconds(20)) { try await c.agents().filter { $0.state == .online }.count == 2 })
        let build = try await c.submit(manifestJSON: Self.twoTreeManifest(), exports: ["archive-fast", "archive-slow"],
                                       arch: "x86_64", label: "retention two trees").buildID
        let status = try #require(try await farm.finished(c, build))
        #expect(status.state == .succeeded, "\(status.failure)")
        #expect(status.jobs.filter(\.onAgent).allSatisfy { $0.attempts == 1 }, "\(status.jobs)")
        let events = try await farm.events(c, build)
        #expect(!events.contains { $0.kind == .requeued }, "no tree was taken away and built again: \(events.map(\.message))")
        for name in ["fast", "slow"] {
            let out = "\(farm.dir)/\(name).tar"
            try await c.fetch(build, artifact: "\(name).tar", to: out)
            #expect(try await runChild("/bin/tar", ["-xOf", out, "./etc/hostname"]).output == "retention-\(name)\n")
        }
        // Once the build is over nothing holds the trees: both stores empty out.
        for store in ["scheduler/store", "agent-a/store", "agent-b/store"] {
            #expect(try await farm.eventually(.seconds(20)) { objects("\(farm.dir)/\(store)").isEmpty },
                    "\(store): \(objects("\(farm.dir)/\(store)"))")
        }
        await c.close()
    }

    @Test("--keep-artifacts: a finished build's artifacts are removed after it; its record stays and says so; kiln fetch exits 2 saying why")
    func artifactsExpire() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler(extra: ["--keep-artifacts", "4s", "--retention-interval", "0.5"])
        try farm.startAgent("agent-a")
        let c = try await farm.client(keyName: "client")
        let build = try await submit(c, hostname: "retention-expire")
        let done = try #require(try await farm.finished(c, build))
        #expect(done.state == .succeeded && done.artifacts == ["tree.tar"], "\(done)")

        var status: Kiln_V1_BuildStatus?
        #expect(try await farm.eventually(.seconds(30)) {
            status = try await c.status(build).first
            return status?.artifactsExpiredUnixMs ?? 0 > 0
        })
        #expect(status?.state == .succeeded && status?.artifacts == [], "the record stays, without artifacts")
        #expect(!FileManager.default.fileExists(atPath: "\(farm.dir)/scheduler/artifacts/\(build)"), "the files are gone")
        let events = try await farm.events(c, build)
        #expect(events.contains { $0.kind == .expired && $0.message.contains("--keep-artifacts") }, "\(events.map(\.message))")
        #expect(events.contains { $0.kind == .succeeded }, "the build's history stays")

        let shown = try await farm.kiln(["status", build] + clientOptions(farm))
        #expect(shown.status == 0 && shown.output.contains("artifacts: removed") && shown.output.contains("--keep-artifacts"),
                "\(shown.output)")
        let out = "\(farm.dir)/expired.tar"
        let fetch = try await farm.kiln(["fetch", build, "-o", out] + clientOptions(farm))
        #expect(fetch.status == 2 && fetch.output.contains("artifacts were removed") && fetch.output.contains("--keep-artifacts"),
                "\(fetch.output)")
        #expect(!FileManager.default.fileExists(atPath: out) && !FileManager.default.fileExists(atPath: out + ".part"))
        // The protocol says it too, to a client that asks for the file by name.
        await #expect {
            try await c.fetch(build, artifact: "tree.tar", to: out)
        } throws: { error in
            guard let e = error as? ClientError, case .refused(let code, let message) = e else { return false }
            return code == .notFound && message.contains("--keep-artifacts")
        }
        await c.close()
    }

    @Test("kiln delete: a client deletes its own finished build (files and records); another client's is not found; a queued one is refused until cancelled")
    func deleteBuilds() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        let c = try await farm.client(keyName: "client")
        let build = try await submit(c, hostname: "retention-delete")

        // Queued (no agent yet): refused, naming kiln cancel.
        let queued = try await farm.kiln(["delete", build] + clientOptions(farm))
        #expect(queued.status == 2 && queued.output.contains("is queued") && queued.output.contains("kiln cancel \(build)"),
                "\(queued.output)")
        try farm.startAgent("agent-a")
        let done = try #require(try await farm.finished(c, build))
        #expect(done.state == .succeeded, "\(done.failure)")
        #expect(FileManager.default.fileExists(atPath: "\(farm.dir)/scheduler/artifacts/\(build)/tree.tar"))

        // Another client cannot tell it from a build that does not exist.
        let other = try await farm.kiln(["delete", build] + clientOptions(farm, key: "client-2"))
        #expect(other.status == 2 && other.output.contains("no build \(build) of this key"), "\(other.output)")
        #expect(try await c.status(build).first?.state == .succeeded, "still there")

        let deleted = try await farm.kiln(["delete", build, "--json"] + clientOptions(farm))
        #expect(deleted.status == 0, "\(deleted.output)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(deleted.output.utf8.drop { $0 != UInt8(ascii: "[") }))
                                as? [[String: Any]])
        #expect(json.first?["buildId"] as? String == build && json.first?["artifacts"] as? Int == 1, "\(deleted.output)")
        for dir in ["artifacts", "logs"] {
            #expect(!FileManager.default.fileExists(atPath: "\(farm.dir)/scheduler/\(dir)/\(build)"), "\(dir)/\(build) is gone")
        }
        await #expect { _ = try await c.status(build) } throws: { error in
            guard let e = error as? ClientError, case .refused(let code, _) = e else { return false }
            return code == .notFound
        }
        let shown = try await farm.kiln(["logs", build] + clientOptions(farm))
        #expect(shown.status == 2, "\(shown.output)")
        let twice = try await farm.kiln(["delete", build] + clientOptions(farm))
        #expect(twice.status == 2 && twice.output.contains("no build \(build)"), "\(twice.output)")

        // An admin deletes any finished build; a hostile ID is bad input.
        let c2 = try await farm.client(keyName: "client-2")
        let theirs = try await submit(c2, hostname: "retention-delete-2")
        #expect(try await farm.finished(c2, theirs)?.state == .succeeded)
        let admin = try await farm.kiln(["delete", theirs] + clientOptions(farm, key: "admin"))
        #expect(admin.status == 0, "\(admin.output)")
        for hostile in ["../../etc", String(repeating: "a", count: 100), ".removing-x"] {
            let r = try await farm.kiln(["delete", hostile] + clientOptions(farm, key: "admin"))
            #expect(r.status == 2 && r.output.contains("not a build ID"), "\(hostile): \(r.output)")
        }
        #expect(FileManager.default.fileExists(atPath: "\(farm.dir)/scheduler/scheduler.sqlite"))
        await c.close()
        await c2.close()
    }

    @Test("--keep-history deletes old builds with their events, and the database file shrinks (VACUUM)")
    func historyIsDeletedAndTheFileShrinks() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler(extra: ["--keep-history", "2s", "--retention-interval", "0.5", "--vacuum-interval", "1"])
        let c = try await farm.client(keyName: "client")
        // 40 queued builds (no agent) with 64 KB of notes each: 2.6 MB of events.
        let notes = (1...32).map { "note \($0) " + String(repeating: "x", count: 2000) }
        var builds: [String] = []
        for i in 1...40 { builds.append(try await submit(c, hostname: "retention-history-\(i)", notes: notes)) }
        let database = "\(farm.dir)/scheduler/scheduler.sqlite"
        let size = { [database] () -> Int64 in
            [database, database + "-wal"].reduce(0) { sum, path in
                var st = stat()
                return sum + (stat(path, &st) == 0 ? Int64(st.st_size) : 0)
            }
        }
        let before = size()
        #expect(before > 2_500_000, "\(before) bytes")
        for b in builds { _ = try await c.cancel(b) }

        #expect(try await farm.eventually(.seconds(60)) { try await c.status(limit: 100).isEmpty }, "every finished build is deleted")
        await #expect { _ = try await farm.events(c, builds[0]) } throws: { error in
            guard let e = error as? ClientError, case .refused(let code, _) = e else { return false }
            return code == .notFound
        }
        #expect(try await farm.eventually(.seconds(30)) { size() < before / 2 },
                "scheduler.sqlite and its WAL: \(before) bytes before, \(size()) now; \(farm.log("scheduler"))")
        #expect(farm.log("scheduler").contains("compacted scheduler.sqlite"))
        #expect(farm.log("scheduler").contains("(--keep-history)"))

        // Still a working database: a new build is taken and kept.
        let later = try await submit(c, hostname: "retention-history-after")
        #expect(try await c.status(later).first?.state == .queued)
        await c.close()
    }

    @Test("below --min-free-gib the scheduler refuses submits naming the space, the threshold and the fix, starts no job; when space returns it resumes")
    func schedulerLowOnDisk() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let state = "\(farm.dir)/scheduler"
        try await mountTmpfs(state, mib: 64)
        defer { unmount(state) }
        // The store is on the same small file system: no stream reserve of 2 GiB there.
        try await farm.startScheduler(extra: ["--min-free-gib", "0.03", "--store-free-reserve-gib", "0"])
        let c = try await farm.client(keyName: "client")
        let admin = try await farm.client()
        let early = try await submit(c, hostname: "retention-low-early")  // queued: no agent yet

        let filler = "\(state)/filler"
        try Data(count: 48 << 20).write(to: URL(fileURLWithPath: filler))
        let manifest = "\(farm.dir)/low.json"
        try Data(FarmHarness.manifest(hostname: "retention-low-refused")).write(to: URL(fileURLWithPath: manifest))
        var refused: ChildOutput?
        #expect(try await farm.eventually(.seconds(20)) {
            refused = try await farm.kiln(["submit", manifest, "--manifest", "--arch", "x86_64", "--type", "tar"] + clientOptions(farm))
            return refused?.status != 0
        })
        let text = refused?.output ?? ""
        #expect(refused?.status == 1, "\(text)")
        #expect(text.contains("state directory \(state) has") && text.contains("less than its --min-free-gib")
                && text.contains("kiln delete") && text.contains("resumes by itself"), "\(text)")

        // An agent arrives while the disk is low: the queued job waits.
        try farm.startAgent("agent-a")
        #expect(try await farm.eventually(.seconds(20)) { try await admin.agents().first?.state == .online })
        #expect(try await c.status(early).first?.jobs.first { $0.onAgent }?.state == .queued)

        let freed = nowMS()
        try FileManager.default.removeItem(atPath: filler)
        var later: String?
        #expect(try await farm.eventually(.seconds(20)) {
            later = try? await submit(c, hostname: "retention-low-later")
            return later != nil
        })
        for build in [early, try #require(later)] {
            let s = try #require(try await farm.finished(c, build))
            #expect(s.state == .succeeded, "\(s.failure)")
        }
        let assigned = try await farm.events(c, early).filter { $0.kind == .assigned }
        #expect(assigned.count == 1 && assigned[0].unixMs >= freed, "assigned only once space returned")
        #expect(farm.log("scheduler").contains("disk space is back above --min-free-gib"))
        await c.close()
        await admin.close()
    }

    @Test("an agent below its --min-free-gib takes no job and says so (kiln agents); when space returns it takes the queued job")
    func agentLowOnDisk() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let agentDir = "\(farm.dir)/agent-a"
        try await mountTmpfs(agentDir, mib: 64)
        defer { unmount(agentDir) }
        try await farm.startScheduler()
        try farm.startAgent("agent-a", extra: ["--min-free-gib", "0.03"])
        let admin = try await farm.client()
        let c = try await farm.client(keyName: "client")
        #expect(try await farm.eventually(.seconds(20)) {
            let a = try await admin.agents().first
            return a?.state == .online && a?.notTakingJobs == ""
        })

        let filler = "\(agentDir)/filler"
        try Data(count: 48 << 20).write(to: URL(fileURLWithPath: filler))
        #expect(try await farm.eventually(.seconds(20)) {
            try await admin.agents().first?.notTakingJobs.contains("less than its --min-free-gib") == true
        })
        let table = try await farm.kiln(["agents"] + clientOptions(farm, key: "admin"))
        #expect(table.output.contains("online, low on disk"), "\(table.output)")
        // Its first assignment would be in the submit's own transaction: the job is still queued.
        let build = try await submit(c, hostname: "retention-agent-low")
        #expect(try await c.status(build).first?.jobs.first { $0.onAgent }?.state == .queued)

        let freed = nowMS()
        try FileManager.default.removeItem(atPath: filler)
        let s = try #require(try await farm.finished(c, build))
        #expect(s.state == .succeeded, "\(s.failure)")
        let assigned = try await farm.events(c, build).filter { $0.kind == .assigned }
        #expect(assigned.count == 1 && assigned[0].unixMs >= freed)
        #expect(farm.log("agent-a").contains("low on disk") && farm.log("agent-a").contains("taking jobs again"))
        await c.close()
        await admin.close()
    }

    @Test("bad retention values are refused with exit 2: in a config file naming the file, line and key; as flags naming the flag")
    func badValues() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let base = ["--bind", farm.endpoint, "--state", "\(farm.dir)/s2", "--key", "\(farm.dir)/scheduler.key",
                    "--allow", "\(farm.dir)/allow", "--store", "\(farm.dir)/s2/store"]
        for (line, key) in [("keep-artifacts = \"7x\"", "keep-artifacts"), ("keep-history = 30", "keep-history"),
                            ("min-free-gib = -1", "min-free-gib"), ("store-cap = \"lots\"", "store-cap")] {
            let file = "\(farm.dir)/scheduler.toml"
            try "# retention\n\(line)\n".write(toFile: file, atomically: true, encoding: .utf8)
            let r = try await farm.kiln(["scheduler", "--config", file] + base)
            #expect(r.status == 2 && r.output.contains("scheduler.toml:2: \(key) must be"), "\(line): \(r.output)")
        }
        for (flag, value) in [("--keep-artifacts", "0s"), ("--keep-history", "soon"), ("--min-free-gib", "-2"), ("--store-cap", "-1")] {
            let r = try await farm.kiln(["scheduler"] + base + ["\(flag)=\(value)"])
            #expect(r.status == 2 && r.output.contains("\(flag) \(value)"), "\(flag) \(value): \(r.output)")
        }
        let agent = try await farm.kiln(["agent", "--scheduler", farm.endpoint, "--arch", "x86_64", "--state", "\(farm.dir)/a2",
                                         "--key", "\(farm.dir)/agent-a.key", "--scheduler-key", "\(farm.dir)/scheduler.pub",
                                         "--min-free-gib=-1"])
        #expect(agent.status == 2 && agent.output.contains("--min-free-gib -1"), "\(agent.output)")
        #expect(!FileManager.default.fileExists(atPath: "\(farm.dir)/s2"), "nothing was made before the options were checked")
    }
}
