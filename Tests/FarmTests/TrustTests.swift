import Foundation
import KilnTestSupport
import Manifest
import Protocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 15's attacks, re-run against real `kiln scheduler` and `kiln agent`
/// processes on loopback: poisoned trees, stolen agent ids, captured jobs,
/// log floods and a full disk under the scheduler's state.
@Suite(.serialized, .tags(.farm), .tier(.quick, .farm))
struct TrustTests {
    func submit(_ c: SchedulerClient, hostname: String, label: String? = nil) async throws -> Kiln_V1_SubmitReply {
        try await c.submit(manifestJSON: FarmHarness.manifest(hostname: hostname), exports: ["archive"], arch: "x86_64",
                           label: label ?? "trust \(hostname)")
    }

    func fetchedHostname(_ farm: FarmHarness, _ c: SchedulerClient, _ build: String) async throws -> String {
        let out = "\(farm.dir)/fetched-\(build).tar"
        try await c.fetch(build, artifact: "tree.tar", to: out)
        return try await runChild("/bin/tar", ["-xOf", out, "./etc/hostname"]).output
    }

    /// The error a request ends with (nil: it succeeded).
    func refusal(_ body: () async throws -> Void) async -> String? {
        do {
            try await body()
            return nil
        } catch {
            return "\(error)"
        }
    }

    // MARK: - Finding 5

    @Test("a rogue agent key stores a hostile tree; `kiln store forget --agent KEY` removes all it stored")
    func poisonedTreeForgotten() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        let manifest = try BuildManifest.decode(Data(FarmHarness.manifest(hostname: "farm-poison")), file: "m")
        let treeID = try #require(try ContentIDs(manifest).pipelines["tree"])
        // The attacker's agent has "built" the job's tree already: its cache streams at once.
        let planted = "\(farm.dir)/evil/store/objects/\(treeID)/tree/etc"
        try FileManager.default.createDirectory(atPath: planted, withIntermediateDirectories: true)
        try "pwned\n".write(toFile: "\(planted)/hostname", atomically: true, encoding: .utf8)
        for dir in ["evil", "evil/store"] { chmod("\(farm.dir)/\(dir)", 0o700) }  // an agent takes only a private store
        try farm.startAgent("evil", keyName: "agent-b")
        let c = try await farm.client()
        let poisoned = try await submit(c, hostname: "farm-poison").buildID
        let first = try #require(try await farm.finished(c, poisoned))
        #expect(first.state == .succeeded, "\(first.failure)")
        #expect(try await fetchedHostname(farm, c, poisoned) == "pwned\n", "the attack itself (an agent key, in allow/agents/, went rogue)")

        // Provenance: the tree, the agent id and the key that stored it.
        let rogueKey = try CurveKeyPair.loadPublicKey("\(farm.dir)/agent-b.pub")
        let list = try await farm.kiln(["store", "list"] + farm.stateOptions)
        #expect(list.status == 0, "\(list.output)")
        let row = list.output.split(separator: "\n").first { $0.hasPrefix(treeID) }.map(String.init) ?? ""
        #expect(row.contains("evil") && row.contains(rogueKey) && row.contains(poisoned), "\(list.output)")

        let forget = try await farm.kiln(["store", "forget", "--agent", "\(farm.dir)/agent-b.pub"] + farm.stateOptions)
        #expect(forget.status == 0, "\(forget.output)")
        #expect(forget.output.contains("forgot \(treeID)") && forget.output.contains(poisoned), "\(forget.output)")
        #expect(!FileManager.default.fileExists(atPath: "\(farm.dir)/scheduler/store/objects/\(treeID)"))

        // Later builds get the tree an honest agent builds, not the poisoned one.
        await farm.killAgent("evil")
        try farm.startAgent("agent-a")
        let again = try await submit(c, hostname: "farm-poison")
        #expect(again.cachedJobs == 0, "the forgotten tree is not served from the store")
        let second = try #require(try await farm.finished(c, again.buildID))
        #expect(second.state == .succeeded, "\(second.failure)")
        #expect(second.jobs.first { $0.onAgent }?.agentID == "agent-a")
        #expect(try await fetchedHostname(farm, c, again.buildID) == "farm-poison\n")
        let honest = try await farm.kiln(["store", "list", "--agent", "\(farm.dir)/agent-a.pub"] + farm.stateOptions)
        #expect(honest.output.contains(treeID) && honest.output.contains("agent-a"), "\(honest.output)")

        // By ID; then bad IDs are the user's input: exit 2 and what to do.
        let byID = try await farm.kiln(["store", "forget", treeID] + farm.stateOptions)
        #expect(byID.status == 0 && byID.output.contains("forgot \(treeID)"), "\(byID.output)")
        for bad in [treeID, "../../../etc"] {
            let r = try await farm.kiln(["store", "forget", bad] + farm.stateOptions)
            #expect(r.status == 2 && r.output.contains("kiln store list"), "\(bad): \(r.output)")
        }
        #expect(FileManager.default.fileExists(atPath: "/etc/hostname"))
        await c.close()
    }

    // MARK: - Finding 6

    @Test("another key cannot take a disconnected agent's id and its attempts until an operator releases the id")
    func agentIDBoundToKey() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler(lease: 8)
        let c = try await farm.client()
        try await farm.startAgents(["agent-a"], env: ["KILN_TEST_JOB_DELAY_MS": "60000"], seenBy: c)
        let build = try await farm.submitRunning(c, FarmHarness.manifest(hostname: "farm-bound"), label: "trust farm-bound",
                                                 on: "agent-a", timeout: .seconds(30))
        let attempt = try #require(try await c.status(build).first?.jobs.first { $0.onAgent }?.attemptID)
        await farm.killAgent("agent-a")

        // agent-b's key says Hello as agent-a, claiming agent-a's attempt.
        let impostor = try await HostileAgent(farm, name: "agent-a", keyName: "agent-b", running: [attempt])
        #expect(try await farm.eventually(.seconds(20)) { impostor.disconnects.contains { $0.contains("belongs to another key") } },
                "\(impostor.disconnects)")
        for _ in 0..<20 { try await impostor.hello(running: [attempt]) }
        #expect(try await farm.eventually(.seconds(20)) { impostor.disconnects.count >= 21 })
        #expect(impostor.welcomes == 0)
        let warnings = farm.log("scheduler").components(separatedBy: "refused Hello: agent id agent-a").count - 1
        #expect(warnings == 1, "one warning for 21 refusals (rate-limited):\n\(farm.log("scheduler"))")
        let keyA = try CurveKeyPair.loadPublicKey("\(farm.dir)/agent-a.pub")
        let keyB = try CurveKeyPair.loadPublicKey("\(farm.dir)/agent-b.pub")
        #expect(try await c.agents().first { $0.agentID == "agent-a" }?.publicKey == keyA)
        #expect(try await c.status(build).first?.jobs.first { $0.onAgent }?.agentID != "agent-b")

        // The job goes to an honest agent once agent-a's attempt is given up.
        try farm.startAgent("agent-b")
        let status = try #require(try await farm.finished(c, build, timeout: .seconds(90)))
        #expect(status.state == .succeeded, "\(status.failure)")
        #expect(status.jobs.first { $0.onAgent }?.agentID == "agent-b")

        // The operator releases the id: now the other key may have it.
        let bad = try await farm.kiln(["agents", "release", "no-such-agent"] + farm.stateOptions)
        #expect(bad.status == 2 && bad.output.contains("kiln agents"), "\(bad.output)")
        let release = try await farm.kiln(["agents", "release", "agent-a"] + farm.stateOptions)
        #expect(release.status == 0, "\(release.output)")
        try await impostor.hello()
        #expect(try await farm.eventually(.seconds(20)) { impostor.welcomes == 1 })
        #expect(try await c.agents().first { $0.agentID == "agent-a" }?.publicKey == keyB)
        await impostor.close()
        await c.close()
    }

    /// Found by the soak (`ops/soak`, 20 minutes): agents used their names as
    /// routing ids, so when agent-a's connection dropped, a peer with a client
    /// key that connected with routing id "agent-a" was given agent-a's next
    /// job, manifest and all (the scheduler addressed agent-a by its name
    /// until its session timed out). Now the scheduler's socket picks each
    /// agent's routing id, and the Hello's agent id names the agent.
    @Test("a peer that takes a gone agent's name as its routing id is sent nothing meant for that agent",
          arguments: [false, true])
    func routingIDSquatGetsNoJob(saysHello: Bool) async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        // Agent timeout 8 s (the default): agent-a stays listed online that long after it dies.
        try await farm.startScheduler(lease: 30)
        let c = try await farm.client()
        try await farm.startAgents(["agent-a"], seenBy: c)
        await farm.killAgent("agent-a")
        // A client key squats the routing id "agent-a", quietly or saying Hello as agent-a.
        let squatter = try await HostileAgent(farm, name: "agent-a", keyName: "client", sayHello: saysHello)
        // Its heartbeats are answered (told to say Hello first, or refused): it is connected.
        #expect(await farm.eventually(.seconds(10)) { !squatter.disconnects.isEmpty }, "the squatter never connected")
        let build = try await submit(c, hostname: "farm-squat").buildID
        // agent-a is still listed online: the job is assigned to it, and goes nowhere.
        let assigned = try await farm.eventually(.seconds(20)) {
            try await c.status(build).first?.jobs.contains { $0.agentID == "agent-a" && $0.attempts >= 1 } == true
        }
        #expect(assigned, "the job was never assigned to agent-a: \(farm.log("scheduler"))")
        let leaked = await farm.eventually(.seconds(3)) { !squatter.assigns.isEmpty }
        #expect(!leaked, "the squatter was sent agent-a's job: \(squatter.assigns.map(\.buildID))")
        #expect(squatter.welcomes == 0)
        await squatter.close()
        // agent-a comes back and builds it (after its lost attempt is given up).
        try await farm.startAgents(["agent-a"], seenBy: c)
        let status = try #require(try await farm.finished(c, build, timeout: .seconds(90)))
        #expect(status.state == .succeeded, "\(status.failure)")
        await c.close()
    }

    // MARK: - Finding 7

    @Test("an agent claiming 2^32-1 slots gets the cap, and heartbeats alone do not hold its jobs past the lease")
    func heartbeatsHoldNoJobs() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler(lease: 5)
        let hog = try await HostileAgent(farm, name: "hog", keyName: "agent-b", slots: UInt32.max)
        let c = try await farm.client()
        #expect(try await farm.eventually(.seconds(20)) { try await c.agents().first { $0.agentID == "hog" }?.slots == 16 })
        #expect(farm.log("scheduler").contains("agent offers 4294967295 slots; it is given 16"))
        var builds: [String] = []
        for i in 0..<3 { builds.append(try await submit(c, hostname: "farm-hog-\(i)").buildID) }
        #expect(try await farm.eventually(.seconds(20)) { hog.assigns.count == 3 })
        try farm.startAgent("agent-a", slots: 3)
        for b in builds {
            let s = try #require(try await farm.finished(c, b, timeout: .seconds(60)), "the hog kept build \(b)")
            #expect(s.state == .succeeded, "\(s.failure)")
            #expect(s.jobs.first { $0.onAgent }?.agentID == "agent-a")
            #expect(try await farm.events(c, b).contains { $0.kind == .requeued && $0.message.contains("lease expired") })
        }
        #expect(Set(hog.cancels).isSuperset(of: hog.assigns.map(\.attemptID)), "the hog was told to stop")
        await hog.close()
        await c.close()
    }

    @Test("an agent that keeps saying it is working holds a job no longer than the attempt deadline")
    func attemptDeadline() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        for (option, value) in [("--attempt-deadline", "3x"), ("--max-slots", "0")] {
            let r = try await farm.kiln(["scheduler", "--bind", "tcp://127.0.0.1:1", "--key", "\(farm.dir)/scheduler.key",
                                         "--allow", "\(farm.dir)/allow", option, value])
            #expect(r.status == 2 && r.output.contains(option), "\(r.output)")
        }
        try await farm.startScheduler(lease: 5, extra: ["--attempt-deadline", "8s"])
        let staller = try await HostileAgent(farm, name: "staller", keyName: "agent-b")
        staller.keepAlive(true)
        let c = try await farm.client()
        let build = try await submit(c, hostname: "farm-deadline").buildID
        #expect(try await farm.eventually(.seconds(20)) { staller.assigns.count == 1 })
        try farm.startAgent("agent-a")
        let s = try #require(try await farm.finished(c, build, timeout: .seconds(60)))
        #expect(s.state == .succeeded, "\(s.failure)")
        #expect(s.jobs.first { $0.onAgent }?.agentID == "agent-a")
        let requeued = try await farm.events(c, build).filter { $0.kind == .requeued }.map(\.message)
        #expect(requeued.contains { $0.contains("attempt deadline") && $0.contains("staller") }, "\(requeued)")
        #expect(!requeued.contains { $0.contains("lease expired") }, "its keep-alives renewed the lease: \(requeued)")
        #expect(staller.cancels.contains(staller.assigns[0].attemptID))
        await staller.close()
        await c.close()
    }

    // MARK: - Finding 10

    @Test("a label's newlines and escapes stay out of the daemon log, an overlong label is refused, and agent log floods are capped")
    func boundedText() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler(lease: 30)
        let c = try await farm.client()
        let label = "nice\nFAKE scheduler line: all keys revoked\u{1B}[2J"
        let labelled = try await submit(c, hostname: "farm-label", label: label).buildID
        let stored = try #require(try await c.status(labelled).first?.label)
        #expect(stored == "nice FAKE scheduler line: all keys revoked [2J", "\(stored)")
        #expect(try await farm.eventually(.seconds(10)) { farm.log("scheduler").contains("queued nice FAKE") })
        #expect(!farm.log("scheduler").split(separator: "\n").contains { $0.hasPrefix("FAKE") })
        let long = await refusal { _ = try await submit(c, hostname: "farm-label", label: String(repeating: "l", count: 600)) }
        #expect(long?.contains("label: 600 bytes") == true, "\(long ?? "accepted")")
        #expect(try await c.cancel(labelled) == .cancelled)

        // An allow-listed peer takes a job and floods its log.
        let flooder = try await HostileAgent(farm, name: "flooder", keyName: "agent-b")
        let build = try await submit(c, hostname: "farm-flood").buildID
        #expect(try await farm.eventually(.seconds(20)) { flooder.assigns.count == 1 })
        let attempt = flooder.assigns[0].attemptID
        func progress(_ lines: [String]) -> Kiln_V1_Envelope.OneOf_Body {
            var p = Kiln_V1_Progress()
            p.attemptID = attempt
            p.logLines = lines
            return .progress(p)
        }
        for _ in 0..<40 { try await flooder.send(progress([String(repeating: "x", count: 1 << 20)])) }
        for _ in 0..<300 { try await flooder.send(progress(Array(repeating: String(repeating: "y", count: 1000), count: 64))) }
        // Read as it is written (16 MiB once, not at every poll).
        var events: [Kiln_V1_BuildEvent] = []
        func readMore() async throws {
            try await c.logs(build, after: events.last?.sequence ?? 0, follow: false) { events.append($0) }
        }
        #expect(try await farm.eventually(.seconds(90)) {
            try await readMore()
            return events.contains { $0.message.hasPrefix("log truncated") }
        }, "the build's log is cut at its cap")
        for _ in 0..<20 { try await flooder.send(progress(["after the cap"])) }
        // The job's end comes after those lines: once the build has failed, they were handled.
        var failed = Kiln_V1_JobFailed()
        failed.attemptID = attempt
        failed.reason = "done flooding"
        failed.logTail = [String(repeating: "z", count: 1 << 20)]
        try await flooder.send(.jobFailed(failed))
        let end = try #require(try await farm.finished(c, build))
        #expect(end.state == .failed && end.failure.contains("done flooding"))
        #expect(end.failure.utf8.count < 8 << 10, "the failure's log tail is cut too: \(end.failure.utf8.count) bytes")
        try await readMore()
        let lines = events.flatMap(\.logLines)
        let bytes = events.reduce(0) { $0 + $1.message.utf8.count + $1.logLines.reduce(0) { $0 + $1.utf8.count + 1 } }
        #expect(events.filter { $0.message.hasPrefix("log truncated") }.count == 1)
        #expect(!lines.contains("after the cap"))
        #expect(lines.allSatisfy { $0.utf8.count <= 4096 + 64 }, "lines are cut at 4 KiB")
        #expect(bytes <= (16 << 20) + (128 << 10), "\(bytes) bytes of log for one build")
        let db = ["scheduler.sqlite", "scheduler.sqlite-wal"].compactMap {
            try? FileManager.default.attributesOfItem(atPath: "\(farm.dir)/scheduler/\($0)")[.size] as? Int
        }.reduce(0, +)
        #expect(db < 40 << 20, "the database holds \(db) bytes after 60 MB of log from one peer")
        #expect(farm.scheduler?.isRunning == true)
        await flooder.close()
        await c.close()
    }

    // MARK: - Finding 12

    @Test("on a full disk a cancel fails with the reason, the scheduler takes no more work, and after a restart the build is as the client was told",
          .enabled(if: getuid() == 0, "mounts a small tmpfs (root)"))
    func fullDisk() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let state = "\(farm.dir)/scheduler"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let mount = try await runChild("/bin/mount", ["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", state], mergeErrors: true)
        try #require(mount.status == 0, "\(mount.output)")
        defer { _ = try? runBlocking(["umount", "-l", state]) }
        // The disk fills past --min-free-gib (RetentionTests) without it: the database's own refusal.
        let noThreshold = ["--min-free-gib", "0"]
        try await farm.startScheduler(extra: noThreshold)
        var c = try await farm.client()
        let build = try await submit(c, hostname: "farm-full").buildID  // no agent: it stays queued
        _ = try await runChild("/bin/dd", ["if=/dev/zero", "of=\(state)/filler", "bs=64k"], mergeErrors: true)

        let cancel = await refusal { _ = try await c.cancel(build) }
        #expect(cancel?.contains("cannot write its database") == true, "\(cancel ?? "the cancel was reported done")")
        #expect(try await c.status(build).first?.state == .queued, "status shows what is committed")
        let submitted = await refusal { _ = try await submit(c, hostname: "farm-full-2") }
        #expect(submitted?.contains("takes no more work") == true, "\(submitted ?? "accepted")")
        #expect(farm.log("scheduler").contains("scheduler database is read-only"))

        // Space returns; the scheduler stays read-only until it restarts.
        try FileManager.default.removeItem(atPath: "\(state)/filler")
        let again = await refusal { _ = try await c.cancel(build) }
        #expect(again?.contains("cannot write its database") == true, "\(again ?? "accepted")")
        await c.close()
        await farm.killScheduler()
        try await farm.startScheduler(extra: noThreshold)
        c = try await farm.client()
        #expect(try await c.status(build).first?.state == .queued, "the client was told the cancel failed")
        #expect(try await c.status().count == 1, "the refused submit left nothing")
        #expect(try await c.cancel(build) == .cancelled)
        await c.close()
        await farm.killScheduler()
        try await farm.startScheduler(extra: noThreshold)
        c = try await farm.client()
        #expect(try await c.status(build).first?.state == .cancelled, "a cancel the client was told of stays done")
        await c.close()
    }
}
