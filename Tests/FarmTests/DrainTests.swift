import Foundation
import KilnTestSupport
import Protocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Taking agents out of service and bounding stages: `kiln agents drain` /
/// `undrain`, an agent stopped with SIGTERM, and stage timeouts, with real
/// `kiln scheduler` and `kiln agent` processes on loopback.
@Suite(.serialized, .tags(.farm), .tier(.quick, .farm))
struct DrainTests {
    func submit(_ c: SchedulerClient, hostname: String, stageTimeoutMS: UInt64 = 0) async throws -> String {
        try await c.submit(manifestJSON: FarmHarness.manifest(hostname: hostname), exports: ["archive"], arch: "x86_64",
                           label: "drain test \(hostname)", stageTimeoutMS: stageTimeoutMS).buildID
    }

    func agent(_ c: SchedulerClient, _ id: String) async throws -> Kiln_V1_AgentInfo? {
        try await c.agents().first { $0.agentID == id }
    }

    /// `build`'s hanging stage was stopped at `limit`: the build failed (a
    /// build failure, not retried) naming the stage and the limit, and none
    /// of the stage's processes or mounts is left.
    func expectStopped(_ build: String, at limit: String, _ farm: FarmHarness, _ c: SchedulerClient,
                       _ hang: HangingStage) async throws {
        let status = try #require(try await farm.finished(c, build, timeout: .seconds(60)))
        #expect(status.state == .failed)
        #expect(status.failure.contains("stage \(HangingStage.type) ran past its \(limit) limit (--stage-timeout)"), "\(status.failure)")
        #expect(status.jobs.first { $0.onAgent }?.attempts == 1, "a build failure: not retried")
        let events = try await farm.events(c, build)
        #expect(events.contains { $0.kind == .failed && $0.message.contains("ran past its \(limit) limit") })
        #expect(try await farm.eventually(.seconds(10)) { hang.processes.isEmpty && farm.markedProcesses(farm.dir).isEmpty },
                "the stage's processes are gone: \(hang.processes), \(farm.markedProcesses(farm.dir))")
        #expect(farm.mountsInFarm.isEmpty, "no mount is left: \(farm.mountsInFarm)")
    }

    @Test("a drained agent is given no new job while its running job finishes; another agent takes the queue; undrain restores it")
    func drainAndUndrain() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        let c = try await farm.client()
        try await farm.startAgents(["agent-a"], env: ["KILN_TEST_JOB_DELAY_MS": "5000"], seenBy: c)
        let running = try await farm.submitRunning(c, FarmHarness.manifest(hostname: "drain-running"),
                                                   label: "drain test drain-running", on: "agent-a")

        let drain = try await farm.kiln(as: "admin", ["agents", "drain", "agent-a"])
        #expect(drain.status == 0 && drain.output.contains("agent agent-a is drained"), "\(drain.output)")
        #expect(drain.output.contains("the 1 job(s) it runs finish there"), "\(drain.output)")
        // Applied before the answer: no poll to wait for.
        #expect(try await agent(c, "agent-a")?.drained == true)
        // An admin's request: a client key and an agent key are refused and change nothing.
        for (key, refusal) in [("client", "needs an admin key (allow/admins/"), ("agent-a", "is an agent key")] {
            let refused = try await farm.kiln(as: key, ["agents", "undrain", "agent-a"])
            #expect(refused.status == 2 && refused.output.contains(refusal), "\(key): \(refused.output)")
        }
        #expect(try await agent(c, "agent-a")?.drained == true)
        let table = try await farm.kiln(as: "admin", ["agents"])
        #expect(table.output.contains("online, drained"), "\(table.output)")

        try farm.startAgent("agent-b")
        let queued = try await submit(c, hostname: "drain-queued")
        let second = try #require(try await farm.finished(c, queued))
        #expect(second.state == .succeeded, "\(second.failure)")
        #expect(second.jobs.first { $0.onAgent }?.agentID == "agent-b", "the drained agent took no new job")
        let first = try #require(try await farm.finished(c, running))
        #expect(first.state == .succeeded, "\(first.failure)")
        let job = try #require(first.jobs.first { $0.onAgent })
        #expect(job.agentID == "agent-a" && job.attempts == 1, "the job it ran when drained finished there")

        let undrain = try await farm.kiln(as: "admin", ["agents", "undrain", "agent-a"])
        #expect(undrain.status == 0 && undrain.output.contains("agent agent-a is undrained"), "\(undrain.output)")
        #expect(try await agent(c, "agent-a")?.drained == false)
        await farm.killAgent("agent-b")
        let third = try #require(try await farm.finished(c, try await submit(c, hostname: "drain-undrained")))
        #expect(third.state == .succeeded, "\(third.failure)")
        #expect(third.jobs.first { $0.onAgent }?.agentID == "agent-a")

        let unknown = try await farm.kiln(as: "admin", ["agents", "drain", "no-such-agent"])
        #expect(unknown.status == 2 && unknown.output.contains("no agent no-such-agent") && unknown.output.contains("kiln agents"),
                "\(unknown.output)")
        await c.close()
    }

    @Test("a drain survives a scheduler restart: the reconnected agent still gets no job")
    func drainSurvivesRestart() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        var c = try await farm.client()
        try await farm.startAgents(["agent-a"], seenBy: c)
        #expect(try await c.drain("agent-a", drained: true).agent.drained)

        await farm.killScheduler()
        await c.close()
        try await farm.startScheduler()
        c = try await farm.client()
        #expect(try await farm.eventually(.seconds(30)) {
            let a = try await agent(c, "agent-a")
            return a?.state == .online && a?.drained == true
        })
        // Queued while only the drained agent is online; taken by the next agent.
        let build = try await submit(c, hostname: "drain-restart")
        try farm.startAgent("agent-b")
        let status = try #require(try await farm.finished(c, build))
        #expect(status.state == .succeeded, "\(status.failure)")
        let job = try #require(status.jobs.first { $0.onAgent })
        #expect(job.agentID == "agent-b" && job.attempts == 1)
        await c.close()
    }

    @Test("an agent stopped with SIGTERM mid-stage hands its job back at once; its processes and mounts are gone")
    func sigtermHandsJobBack() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        // A lease far longer than the hand-back may take.
        try await farm.startScheduler(lease: 120)
        let hang = HangingStage()
        let c = try await farm.client()
        try await farm.startAgents(["agent-a"], env: ["KILN_TEST_MARK": farm.dir], seenBy: c)
        let build = try await farm.submitRunning(c, try hang.manifest(hostname: "drain-sigterm"), label: "drain test sigterm",
                                                 on: "agent-a")
        // The stage hangs: its process tree is there (its mounts live in its sandbox's namespace).
        #expect(try await farm.eventually(.seconds(60)) { hang.hangs },
                "\(farm.log("agent-a"))")
        try await farm.startAgents(["agent-b"], seenBy: c)

        let stopped = ContinuousClock.now
        let a = try #require(farm.signalAgent("agent-a", SIGTERM))
        #expect(await waitFor(.seconds(10)) { !a.isRunning }, "the agent exits within 10 s of SIGTERM")
        #expect(a.terminationReason == .exit)
        // Handed back at once: agent-b runs it (and hangs in turn), long before the 120 s lease.
        #expect(try await farm.eventually(.seconds(60)) {
            try await c.status(build).first?.jobs.contains { $0.onAgent && $0.agentID == "agent-b" && $0.attempts == 2 } == true
        }, "\(farm.log("scheduler"))")
        let handedBack = ContinuousClock.now - stopped
        #expect(handedBack < .seconds(60), "re-run on agent-b in \(handedBack), well before the 120 s lease")
        let events = try await farm.events(c, build)
        #expect(events.contains { $0.kind == .requeued && $0.agentID == "agent-a" && $0.message.contains("agent disconnected") },
                "\(events.map(\.message))")
        // Nothing of the stopped agent is left: its stage's processes and mounts are gone.
        #expect(await farm.eventually(.seconds(10)) {
            farm.outsideLiveAgents(hang.processes).isEmpty && farm.markedProcesses(farm.dir).isEmpty
        }, "no process of the stopped agent is left: \(farm.outsideLiveAgents(hang.processes))")
        #expect(farm.mountsInFarm.allSatisfy { $0.hasPrefix("\(farm.dir)/agent-b/") }, "no mount of agent-a is left: \(farm.mountsInFarm)")
        #expect(farm.log("agent-a").contains("handing 1 job(s) back"))
        // Cancelled, the re-run on agent-b is taken down in turn.
        #expect(try await c.cancel(build) == .cancelled)
        #expect(await farm.eventually(.seconds(20)) { hang.processes.isEmpty && farm.mountsInFarm.isEmpty },
                "left: \(hang.processes), \(farm.mountsInFarm)")
        await c.close()
    }

    /// A scheduler with `--stage-timeout 6s`, agent-a online (its processes
    /// marked), a client, and a stage that hangs.
    func hangingFarm() async throws -> (FarmHarness, HangingStage, SchedulerClient) {
        let farm = try FarmHarness()
        do {
            try await farm.startScheduler(extra: ["--stage-timeout", "6s"])
            let c = try await farm.client()
            try await farm.startAgents(["agent-a"], env: ["KILN_TEST_MARK": farm.dir], seenBy: c)
            return (farm, HangingStage(), c)
        } catch {
            farm.cleanUp()
            throw error
        }
    }

    @Test("a stage past its timeout is stopped: the build fails naming the stage and the limit, with no process or mount left")
    func stageTimeout() async throws {
        let (farm, hang, c) = try await hangingFarm()
        defer { farm.cleanUp() }

        // The scheduler's default, then a build's own limit.
        for (override, limit) in [(UInt64(0), "6s"), (3000, "3s")] {
            let build = try await c.submit(manifestJSON: try hang.manifest(hostname: "drain-timeout-\(limit)"), exports: ["archive"],
                                           arch: "x86_64", label: "drain test timeout", stageTimeoutMS: override).buildID
            // The stage hangs in its sandbox (seen unless the machine is so busy
            // that its limit comes first); either way it is stopped at its limit.
            _ = await farm.eventually(.seconds(60)) {
                if hang.hangs { return true }
                return (try? await c.status(build).first?.state) == .failed
            }
            try await expectStopped(build, at: limit, farm, c, hang)
        }
        await c.close()
    }

    @Test("a drained agent whose stage runs past its timeout: the build fails naming stage and limit, the agent takes no new job until undrained")
    func drainWithStageTimeout() async throws {
        let (farm, hang, c) = try await hangingFarm()
        defer { farm.cleanUp() }
        let hanging = try await farm.submitRunning(c, try hang.manifest(hostname: "drain-hang"), label: "drain test hang",
                                                   on: "agent-a")
        #expect(try await farm.eventually(.seconds(6)) { hang.hangs }, "\(farm.log("agent-a"))")

        // Drained while its stage hangs; another build waits for an agent.
        let drained = try await c.drain("agent-a", drained: true)
        #expect(drained.agent.drained && drained.agent.slotsInUse == 1)
        let waiting = try await submit(c, hostname: "drain-waiting")

        // The stage times out on the drained agent: a build failure that names the stage and the limit.
        try await expectStopped(hanging, at: "6s", farm, c, hang)

        // Its slot is free, yet it takes nothing: still drained, the other build still queued.
        let idle = try #require(try await agent(c, "agent-a"))
        #expect(idle.state == .online && idle.drained && idle.slotsInUse == 0)
        #expect(try await c.status(waiting).first?.state == .queued)

        // Undrained, it takes the waiting build at once, and only then.
        let undrainedMS = Int64(Date().timeIntervalSince1970 * 1000)
        #expect(try await c.drain("agent-a", drained: false).wasDrained)
        let done = try #require(try await farm.finished(c, waiting))
        #expect(done.state == .succeeded, "\(done.failure)")
        let job = try #require(done.jobs.first { $0.onAgent })
        #expect(job.agentID == "agent-a" && job.attempts == 1)
        let assigned = try await farm.events(c, waiting).filter { $0.kind == .assigned }
        #expect(assigned.count == 1 && assigned.allSatisfy { $0.unixMs >= undrainedMS },
                "assigned only after the undrain: \(assigned.map(\.unixMs)) against \(undrainedMS)")
        await c.close()
    }

    @Test("bad --stage-timeout values are refused with exit 2, naming the flag")
    func badStageTimeouts() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        for value in ["soon", "0s", "90x", "1"] {
            let r = try await farm.kiln(["submit", "blueprint.toml", "--type", "qcow2", "--scheduler", farm.endpoint,
                                         "--stage-timeout", value])
            #expect(r.status == 2 && r.output.contains("--stage-timeout \(value)"), "\(value): \(r.output)")
        }
        let local = try await farm.kiln(["run", "manifest.json", "-o", "\(farm.dir)/out", "--stage-timeout", "never"])
        #expect(local.status == 2 && local.output.contains("--stage-timeout never"), "\(local.output)")
        // Above the attempt deadline that bounds every stage: refused at start.
        let scheduler = try await farm.kiln(["scheduler", "--bind", farm.endpoint, "--state", "\(farm.dir)/s2",
                                             "--key", "\(farm.dir)/scheduler.key", "--allow", "\(farm.dir)/allow",
                                             "--store", "\(farm.dir)/s2/store", "--stage-timeout", "4h"])
        #expect(scheduler.status == 2 && scheduler.output.contains("--attempt-deadline"), "\(scheduler.output)")

        // A build asking for more than the scheduler's maximum is refused as bad input (exit 2 in the CLI).
        try await farm.startScheduler(extra: ["--attempt-deadline", "2h"])
        let c = try await farm.client()
        await #expect {
            _ = try await submit(c, hostname: "drain-too-long", stageTimeoutMS: 3 * 3600 * 1000)
        } throws: { error in
            guard let e = error as? ClientError, case .refused(let code, let message) = e else { return false }
            return code == .badRequest && message.contains("--attempt-deadline")
        }
        #expect(try await c.status().isEmpty, "nothing was queued")
        await c.close()
    }
}
