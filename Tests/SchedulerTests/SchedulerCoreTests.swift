import Foundation
import Manifest
import Protocol
import Testing

@testable import Scheduler

/// The scheduler's state machine on its own: no actor, no store, no
/// sockets, no sleeps. The test is its clock and its tree store, and reads
/// the actions it returns: who is sent what, what each build's log says.
@Suite struct SchedulerCoreTests {
    @Test("a queued job goes to a free slot of an agent that runs its architecture, natively before emulated")
    func assignsByArchitecture() throws {
        var farm = CoreFarm()
        farm.hello("arm", arches: ["aarch64"], emulated: ["x86_64"], slots: 4)
        farm.hello("amd", arches: ["x86_64"], slots: 1)
        let x86 = farm.submit(tree: "p-x86")
        let arm = farm.submit(tree: "p-arm", arch: "aarch64")
        let first = farm.dispatch()
        #expect(farm.agentOf(x86, in: first) == "amd", "native, though the emulating agent has more free slots")
        #expect(farm.agentOf(arm, in: first) == "arm")
        // amd's one slot is taken: the next x86_64 job runs emulated on arm, and its log says so.
        let more = farm.submit(tree: "p-x86-2")
        let second = farm.dispatch()
        #expect(farm.agentOf(more, in: second) == "arm")
        #expect(second.events.contains { $0.buildID == more && $0.kind == .assigned && $0.message.hasSuffix("on agent arm (emulated)") })
    }

    @Test("a job no online agent can run waits, and its log says why and what to start")
    func noAgentForTheArchitecture() throws {
        var farm = CoreFarm()
        farm.hello("amd", arches: ["x86_64"], slots: 2)
        let build = farm.submit(tree: "p-arm", arch: "aarch64")
        let actions = farm.dispatch()
        #expect(actions.assigns.isEmpty)
        #expect(actions.events.contains { $0.buildID == build && $0.message.contains("no online agent runs aarch64") })
        farm.hello("arm", arches: ["aarch64"])
        #expect(farm.agentOf(build, in: farm.dispatch()) == "arm")
    }

    @Test("a lease that runs out requeues the job on another agent; the stale attempt is called off and its late results are fenced off")
    func leaseExpiryRequeuesAndFences() throws {
        var farm = CoreFarm(leaseMS: 10_000, agents: ["a"])
        let (build, first) = try farm.submitAssigned(tree: "p-lease")
        farm.hello("b")
        // a's heartbeats keep it online, but they are not progress on the attempt.
        let expired = farm.advance(ms: 10_001, alive: ["a", "b"])
        #expect(expired.cancels(to: farm.connection("a")) == [first.attempt])
        #expect(expired.events.contains { $0.kind == .requeued && $0.message.contains("lease expired") })
        let second = try #require(farm.assigned(farm.dispatch()).first)
        #expect(second.agent == "b" && second.job == first.job && second.attempt != first.attempt)
        // a's late stream for its fenced attempt: answered with Cancel, nothing received from it.
        let late = farm.say("a", .streamEnd(CoreFarm.end(first.attempt)))
        #expect(late.cancels(to: farm.connection("a")) == [first.attempt])
        #expect(!late.contains { if case .deliver = $0 { true } else { false } })
        let stored = farm.treeArrived(second.attempt)
        #expect(stored.provenance.map(\.agentID) == ["b"])
        let done = farm.assemble(build)
        #expect(done.events.contains { $0.buildID == build && $0.kind == .succeeded })
        #expect(farm.core.builds[build] == nil, "a finished build leaves memory")
    }

    @Test("a job whose every attempt loses its lease fails its build after the attempt limit, naming each attempt")
    func attemptLimit() throws {
        var farm = CoreFarm(maxAttempts: 2, leaseMS: 10_000, agents: ["a"])
        let (build, first) = try farm.submitAssigned(tree: "p-limit")
        _ = farm.advance(ms: 10_001, alive: ["a"])
        let second = try #require(farm.assigned(farm.dispatch()).first)
        #expect(second.agent == "a" && second.attempt != first.attempt, "with no other agent, the same one is tried again")
        let last = farm.advance(ms: 10_001, alive: ["a"])
        let failed = try #require(last.events.first { $0.buildID == build && $0.kind == .failed && $0.job.isEmpty })
        #expect(failed.message.contains("failed on all 2 attempts"))
        #expect(failed.message.contains("attempt \(first.attempt) on agent a: lease expired"))
        #expect(farm.dispatch().assigns.isEmpty, "no third attempt")
    }

    @Test("a stage that fails on an agent fails the build at once: a build failure is not retried")
    func buildFailureIsNotRetried() throws {
        var farm = CoreFarm(agents: ["a", "b"])
        let (build, attempt) = try farm.submitAssigned(tree: "p-broken")
        var f = Kiln_V1_JobFailed()
        f.attemptID = attempt.attempt
        f.reason = "exit status 1"
        f.stageType = "org.osbuild.hostname"
        f.logTail = ["hostnamectl: no"]
        let actions = farm.say(attempt.agent, .jobFailed(f))
        let failed = try #require(actions.events.first { $0.buildID == build && $0.kind == .failed && $0.job.isEmpty })
        #expect(failed.message.contains("stage 1 org.osbuild.hostname failed: exit status 1"))
        #expect(!actions.events.contains { $0.kind == .requeued })
        #expect(farm.dispatch().assigns.isEmpty)
    }

    @Test("two builds that need one tree at once: one attempt builds it for both")
    func identicalJobsMerge() throws {
        var farm = CoreFarm()
        farm.hello("a", slots: 2)
        let first = farm.submit(tree: "p-same")
        let second = farm.submit(tree: "p-same")
        let assigned = farm.assigned(farm.dispatch())
        #expect(assigned.count == 1, "one Assign for both builds, though a slot is free")
        let stored = farm.treeArrived(assigned[0].attempt)
        #expect(
            stored.events.contains {
                $0.buildID == second && $0.kind == .cached && $0.message.contains("built by job \(assigned[0].job)")
            })
        #expect(stored.cacheHits == ["\(second)-1"])
        for build in [first, second] {
            #expect(farm.assemble(build).events.contains { $0.buildID == build && $0.kind == .succeeded })
        }
    }

    @Test("a queued job whose tree is already in the store is not built: it is cached and nothing is assigned")
    func storedTreeIsNotBuilt() throws {
        var farm = CoreFarm(agents: ["a"])
        let build = farm.submit(tree: "p-stored")
        farm.stored.insert("p-stored")
        let actions = farm.dispatch()
        #expect(actions.assigns.isEmpty)
        #expect(actions.events.contains { $0.buildID == build && $0.kind == .cached })
        #expect(actions.contains { if case .startAssembly(_, let b) = $0 { b.id == build } else { false } })
    }

    @Test("cancel stops the running attempt on its agent, its late stream is refused, and the slot is free again")
    func cancelStopsTheAttempt() throws {
        var farm = CoreFarm(agents: ["a"])
        let (build, attempt) = try farm.submitAssigned(tree: "p-cancel")
        let cancelled = farm.run { $0.cancel(build) }
        #expect(cancelled.cancels(to: farm.connection("a")) == [attempt.attempt])
        #expect(cancelled.events.last?.kind == .cancelled && cancelled.events.last?.message == "build cancelled")
        #expect(
            cancelled.contains {
                if case .persist(.buildFinished(build, .cancelled, _, _)) = $0 { true } else { false }
            })
        let late = farm.say("a", .streamEnd(CoreFarm.end(attempt.attempt)))
        #expect(late.cancels(to: farm.connection("a")) == [attempt.attempt])
        let next = farm.submit(tree: "p-next")
        #expect(farm.agentOf(next, in: farm.dispatch()) == "a")
    }

    @Test("an agent that says goodbye hands its attempts back at once; a connection without a session is told to say Hello")
    func goodbyeAndSessions() throws {
        var farm = CoreFarm(agents: ["a", "b"])
        let (build, attempt) = try farm.submitAssigned(tree: "p-bye")
        var d = Kiln_V1_Disconnect()
        d.reason = "stopping"
        let bye = farm.say(attempt.agent, .disconnect(d))
        #expect(bye.events.contains { $0.buildID == build && $0.kind == .requeued && $0.message.contains("agent disconnected: stopping") })
        #expect(bye.disconnects(to: farm.connection(attempt.agent)) == ["session closed; 1 attempt(s) handed back to the queue"])
        let other = attempt.agent == "a" ? "b" : "a"
        #expect(farm.agentOf(build, in: farm.dispatch()) == other)
        // The session ended: what comes later on that connection is not heard.
        let after = farm.say(attempt.agent, .heartbeat(Kiln_V1_Heartbeat()))
        #expect(after.disconnects(to: farm.connection(attempt.agent)) == ["no session on this connection: send Hello first"])
    }

    @Test("an agent silent past its timeout goes offline and its attempt is requeued")
    func silentAgentGoesOffline() throws {
        var farm = CoreFarm(leaseMS: 60_000, agents: ["a"])
        let build = farm.submit(tree: "p-silent")
        _ = farm.dispatch()
        let actions = farm.advance(ms: 8_001, alive: [])
        #expect(actions.events.contains { $0.buildID == build && $0.kind == .requeued && $0.message.contains("agent a silent for 8 s") })
        #expect(farm.core.agents["a"]?.online == false)
    }

    @Test("assemblies wait for one of the scheduler's places; a tree gone from the store meanwhile is built again first")
    func assemblyPlaces() throws {
        var farm = CoreFarm(agents: ["a"]) { $0.assemblyConcurrency = 1 }
        let (first, second) = (farm.submit(tree: "p-one"), farm.submit(tree: "p-two"))
        farm.stored.formUnion(["p-one", "p-two"])
        let found = farm.dispatch()
        #expect(found.assembliesStarted == [first], "one place: the second build's assembly waits")
        // The second build's tree leaves the store (pruned, or `kiln store forget`) before its turn.
        farm.stored.remove("p-two")
        let freed = farm.assemble(first)
        #expect(freed.events.contains { $0.buildID == first && $0.kind == .succeeded })
        #expect(freed.assembliesStarted.isEmpty)
        #expect(
            freed.events.contains {
                $0.buildID == second && $0.kind == .requeued && $0.message.contains("no longer in the store; building it again")
            })
        let rebuilt = try #require(farm.assigned(farm.dispatch()).first)
        #expect(rebuilt.build == second && rebuilt.agent == "a")
        #expect(farm.treeArrived(rebuilt.attempt).assembliesStarted == [second])
    }

    @Test("a drained agent is assigned no new job; undrained, it is offered the queue at once")
    func drain() throws {
        var farm = CoreFarm(agents: ["a"])
        #expect(farm.run { _ = $0.setDrained("a", true) }.contains { if case .log(.notice, _, _) = $0 { true } else { false } })
        let build = farm.submit(tree: "p-drained")
        #expect(farm.dispatch().assigns.isEmpty)
        let undrained = farm.run { _ = $0.setDrained("a", false) }
        #expect(undrained.contains { if case .dispatchSoon = $0 { true } else { false } })
        #expect(farm.agentOf(build, in: farm.dispatch()) == "a")
    }

    @Test("an agent's log past the build's budget is cut after one \"log truncated\" event; the scheduler's own events go on")
    func logBudget() throws {
        var farm = CoreFarm(agents: ["a"]) { $0.logLimits.buildBytes = 1 << 20 }
        let (build, attempt) = try farm.submitAssigned(tree: "p-chatty")
        var p = Kiln_V1_Progress()
        p.attemptID = attempt.attempt
        p.logLines = Array(repeating: String(repeating: "x", count: 3_000), count: 20)  // 60 kB a message
        var log: [BuildEvent] = []
        for _ in 0..<30 { log += farm.say("a", .progress(p)).events }
        let truncated = log.filter { $0.message.hasPrefix("log truncated") }
        #expect(truncated.count == 1)
        #expect(log.last?.message.hasPrefix("log truncated") == true, "nothing from the agent after it")
        #expect(log.count < 30)
        #expect(farm.treeArrived(attempt.attempt).events.contains { $0.buildID == build && $0.kind == .streamed })
    }

    @Test("an agent on the scheduler's own store (kiln build) streams nothing: its tree is there and stored, or the attempt failed")
    func sharedStoreAgent() throws {
        var farm = CoreFarm(agents: ["local"]) { $0.sharedStoreAgents = ["local"] }
        let (build, attempt) = try farm.submitAssigned(tree: "p-shared")
        let missing = farm.say("local", .streamEnd(CoreFarm.end(attempt.attempt)))
        #expect(!missing.contains { if case .deliver = $0 { true } else { false } })
        #expect(missing.events.contains { $0.kind == .requeued && $0.message.contains("not in the store") })
        let again = try #require(farm.assigned(farm.dispatch()).first)
        farm.stored.insert("p-shared")
        let done = farm.say("local", .streamEnd(CoreFarm.end(again.attempt)))
        #expect(done.events.contains { $0.buildID == build && $0.message.contains("tree built by local in the shared store") })
        #expect(done.provenance.map(\.agentID) == ["local"])
    }

    @Test("after a restart, a running attempt is re-adopted when its agent says Hello with it; one it no longer runs is requeued")
    func restartReadoptsOrRequeues() throws {
        var farm = CoreFarm()
        let (adopted, dropped) = ("b1", "b2")
        let loaded = farm.restartState(running: [(adopted, 7, "a"), (dropped, 8, "a")], epoch: 3)
        _ = farm.run {
            _ = $0.restore(loaded)
            $0.resume()
        }
        let welcome = farm.hello("a", slots: 2, running: [7])
        #expect(welcome.contains { if case .startDownload(7, true) = $0 { true } else { false } }, "its stream starts over")
        #expect(welcome.cancels(to: farm.connection("a")).isEmpty, "the running attempt is adopted, not cancelled")
        #expect(welcome.events.contains { $0.buildID == dropped && $0.kind == .requeued && $0.message.contains("reconnected without it") })
        #expect(welcome.sent(to: farm.connection("a")).contains { if case .welcome(let w) = $0 { w.epoch == 3 } else { false } })
        let next = try #require(farm.assigned(farm.dispatch()).first)
        #expect(next.job == "\(dropped)-1" && next.attempt == 9, "attempt ids go on from the stored ones")
        _ = farm.treeArrived(7)
        #expect(farm.assemble(adopted).events.contains { $0.buildID == adopted && $0.kind == .succeeded })
    }
}

/// A `SchedulerCore` with what a test needs around it: a clock that moves
/// when the test says, a tree store that is a set, agents' connections, and
/// the steps `FarmScheduler` takes (without its store: commits always succeed).
struct CoreFarm {
    var core: SchedulerCore
    var now: Int64 = 1_800_000_000_000
    var stored: Set<String> = []
    private var builds = 0

    /// A core whose `agents` (one x86_64 slot each) said Hello.
    init(
        maxAttempts: Int = 3, leaseMS: UInt32 = 30_000, agents: [String] = [],
        _ tune: (inout SchedulerCore.Settings) -> Void = { _ in }
    ) {
        var settings = SchedulerCore.Settings()
        settings.maxAttempts = maxAttempts
        settings.leaseMS = leaseMS
        tune(&settings)
        core = SchedulerCore(settings: settings)
        for agent in agents { hello(agent) }
    }

    mutating func run(_ change: (inout SchedulerCore) -> Void) -> [SchedulerAction] {
        let stored = self.stored
        return core.run(.init(now: now, hasTree: { stored.contains($0) }), change)
    }

    /// The connection (routing identity) agent `agent` says Hello on.
    func connection(_ agent: String) -> [UInt8] { Array("connection of \(agent)".utf8) }

    func agent(on connection: [UInt8]) -> String { String(decoding: connection.dropFirst(14), as: UTF8.self) }

    // MARK: - Agents

    @discardableResult
    mutating func hello(
        _ agent: String, arches: [String] = ["x86_64"], emulated: [String] = [], slots: Int = 1, running: [UInt64] = []
    ) -> [SchedulerAction] {
        var h = Kiln_V1_Hello()
        h.agentID = agent
        h.arches = arches
        h.emulatedArches = emulated
        h.slots = UInt32(slots)
        h.runningAttemptIds = running
        let identity = connection(agent)
        return run { $0.agentHello(h, on: identity, key: "") }
    }

    /// What agent `agent` says on its connection.
    mutating func say(_ agent: String, _ body: Kiln_V1_Envelope.OneOf_Body) -> [SchedulerAction] {
        let identity = connection(agent)
        return run { $0.agentMessage(WireMessage(body), on: identity, key: "") }
    }

    static func end(_ attempt: UInt64) -> Kiln_V1_StreamEnd {
        var e = Kiln_V1_StreamEnd()
        e.attemptID = attempt
        e.totalLength = 1
        e.sha256 = Data(repeating: 0, count: 32)
        return e
    }

    /// Moves the clock on; the agents on `alive` send a heartbeat (alive,
    /// but no progress on any job); then the core sees the time. Returns what the time did.
    mutating func advance(ms: Int64, alive: [String]) -> [SchedulerAction] {
        now += ms
        for agent in alive { _ = say(agent, .heartbeat(Kiln_V1_Heartbeat())) }
        return run { $0.tick() }
    }

    // MARK: - Builds

    static let manifestJSON = Array(
        #"{"version":"2","pipelines":[{"name":"tree","stages":[{"type":"org.osbuild.hostname","options":{"hostname":"core"}}]}],"sources":{}}"#
            .utf8)
    static let manifest = try! BuildManifest.decode(Data(manifestJSON))
    static let ids = try! ContentIDs(manifest)

    /// A build of one tree (pipeline ID `tree`) and its assembly on the
    /// scheduler, as a submit makes it; returns its ID.
    mutating func submit(tree: String, arch: String = "x86_64") -> String {
        builds += 1
        let id = "b\(builds)"
        let (build, jobs) = Self.build(id, tree: tree, arch: arch, at: now, state: .queued)
        _ = run {
            $0.submitted(build, jobs: jobs, notes: [])
            $0.advance(id)
        }
        return id
    }

    static func build(_ id: String, tree: String, arch: String, at now: Int64, state: JobState) -> (FarmBuild, [FarmJob]) {
        let build = FarmBuild(
            id: id, label: "core test", arch: arch, manifestJSON: manifestJSON, manifest: manifest, ids: ids,
            exports: ["tree"], state: .queued, createdMS: now, jobIDs: ["\(id)-1", "\(id)-assemble"])
        var job = FarmJob(id: "\(id)-1", buildID: id, ordinal: 0, pipelineName: "tree", pipelineID: tree, onAgent: true, state: state)
        job.queuedMS = now
        let assembly = FarmJob(
            id: "\(id)-assemble", buildID: id, ordinal: 1, pipelineName: "tree", pipelineID: tree, onAgent: false, state: .waiting)
        return (build, [job, assembly])
    }

    /// What a restart loads: one build per entry, its tree job running as
    /// `attempt` on `agent` (offline until it says Hello again).
    func restartState(running: [(build: String, attempt: UInt64, agent: String)], epoch: UInt64) -> SchedulerStore.Unfinished {
        var loaded = SchedulerStore.Unfinished(
            epoch: epoch, maxAttempt: Int64(running.map(\.attempt).max() ?? 0), builds: [], jobs: [], agents: [],
            failed: [], attemptStarts: [:], logBytes: [:])
        for r in running {
            var (build, jobs) = Self.build(r.build, tree: "p-\(r.build)", arch: "x86_64", at: now, state: .running)
            build.state = .running
            build.jobIDs = []  // restore lists them from the jobs
            jobs[0].attempts = 1
            jobs[0].attemptID = r.attempt
            jobs[0].agentID = r.agent
            loaded.builds.append(build)
            loaded.jobs += jobs
            loaded.attemptStarts[Int64(r.attempt)] = now - 1000
            if !loaded.agents.contains(where: { $0.id == r.agent }) {
                loaded.agents.append(
                    FarmAgent(
                        id: r.agent, identity: [], publicKey: "", arches: ["x86_64"], emulated: [], slots: 1, freeDisk: 0,
                        version: "", lastSeenMS: now - 1000, online: false))
            }
        }
        return loaded
    }

    /// Submits a build of one tree and runs a dispatch pass: the build, and
    /// the attempt it got.
    mutating func submitAssigned(tree: String) throws -> (build: String, attempt: Assigned) {
        let build = submit(tree: tree)
        return (build, try #require(assigned(dispatch()).first { $0.build == build }))
    }

    /// A dispatch pass whose attempts were committed: what it chose and sent.
    mutating func dispatch() -> [SchedulerAction] {
        var selection = SchedulerCore.Selection()
        var actions = run {
            selection = $0.selectAssignments()
            $0.treesFound(selection.stored)
        }
        for a in selection.assigned { actions += run { $0.assignmentCommitted(a) } }
        return actions
    }

    /// The attempt's tree was received whole and stored.
    mutating func treeArrived(_ attempt: UInt64) -> [SchedulerAction] {
        if let job = core.attempts[attempt].flatMap({ core.jobs[$0.jobID] }) { stored.insert(job.pipelineID) }
        return run { $0.treeReceived(attempt, compressedBytes: 1_000_000, seconds: 1, resends: 0) }
    }

    /// The build's assembly (started by the core) ran and its artifacts were
    /// recorded; its place goes to the next assembly waiting, as the actor does.
    mutating func assemble(_ build: String) -> [SchedulerAction] {
        run {
            $0.assemblyEnded()
            $0.assembled(build, "\(build)-assemble", message: "assembled disk.img")
            $0.startAssemblies()
        }
    }

    typealias Assigned = (agent: String, attempt: UInt64, job: String, build: String)

    /// Who was assigned what, by agent id.
    func assigned(_ actions: [SchedulerAction]) -> [Assigned] {
        actions.assigns.map { to, a in (agent(on: to), a.attemptID, a.jobID, a.buildID) }
    }

    func agentOf(_ build: String, in actions: [SchedulerAction]) -> String? {
        assigned(actions).first { $0.build == build }?.agent
    }
}

extension [SchedulerAction] {
    var events: [BuildEvent] { compactMap { if case .event(let e) = $0 { e } else { nil } } }

    /// The `Assign`s sent, with the connection each went to.
    var assigns: [(to: [UInt8], Kiln_V1_Assign)] {
        compactMap { if case .send(let to, let m) = $0, case .assign(let a) = m.envelope.body { (to, a) } else { nil } }
    }

    func sent(to identity: [UInt8]) -> [Kiln_V1_Envelope.OneOf_Body] {
        compactMap { if case .send(let to, let m) = $0, to == identity { m.envelope.body } else { nil } }
    }

    /// The attempts `identity` was told to cancel.
    func cancels(to identity: [UInt8]) -> [UInt64] {
        sent(to: identity).compactMap { if case .cancel(let c) = $0 { c.attemptID } else { nil } }
    }

    /// The reasons of the `Disconnect`s `identity` was sent.
    func disconnects(to identity: [UInt8]) -> [String] {
        sent(to: identity).compactMap { if case .disconnect(let d) = $0 { d.reason } else { nil } }
    }

    /// Who stored each tree, as recorded.
    var provenance: [TreeProvenance] {
        compactMap { if case .persist(.treeStored(let p)) = $0 { p } else { nil } }
    }

    /// The builds whose assembly was started.
    var assembliesStarted: [String] {
        compactMap { if case .startAssembly(_, let build) = $0 { build.id } else { nil } }
    }

    /// The jobs counted as cache hits.
    var cacheHits: [String] {
        compactMap { if case .cacheHit(let job, _, _, _) = $0 { job } else { nil } }
    }
}
