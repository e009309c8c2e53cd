import Foundation
import KilnTestSupport
import Protocol
import Testing

/// The farm under faults: real `kiln scheduler` and `kiln agent` processes
/// on loopback TCP with CURVE, killed, restarted and fed bad input.
@Suite(.serialized, .tags(.farm), .tier(.quick, .farm))
struct FaultTests {
    func submit(
        _ c: SchedulerClient, hostname: String, extraStages: [[String: Any]] = [],
        sources: [String: Any] = [:]
    ) async throws -> String {
        try await c.submit(
            manifestJSON: FarmHarness.manifest(hostname: hostname, extraStages: extraStages, sources: sources),
            exports: ["archive"], arch: "x86_64", label: "farm test \(hostname)"
        ).buildID
    }

    /// The archived tree's /etc/hostname, fetched from the scheduler.
    func fetchedHostname(_ farm: FarmHarness, _ c: SchedulerClient, _ build: String) async throws -> String {
        let out = "\(farm.dir)/fetched-\(build).tar"
        try await c.fetch(build, artifact: "tree.tar", to: out)
        return try await runChild("/bin/tar", ["-xOf", out, "./etc/hostname"]).output
    }

    @Test("a tree built on an agent is streamed, stored and assembled; a rebuild dispatches nothing")
    func buildAndRebuild() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        try farm.startAgent("agent-a")
        let c = try await farm.client()
        let build = try await submit(c, hostname: "farm-one")
        let status = try #require(try await farm.finished(c, build))
        #expect(status.state == .succeeded, "\(status.failure)")
        #expect(status.jobs.first { $0.onAgent }?.agentID == "agent-a")
        #expect(try await fetchedHostname(farm, c, build) == "farm-one\n")
        let events = try await farm.events(c, build)
        #expect(events.contains { $0.kind == .streamed })

        let again = try await c.submit(
            manifestJSON: FarmHarness.manifest(hostname: "farm-one"), exports: ["archive"],
            arch: "x86_64", label: "rebuild")
        #expect(again.cachedJobs == 1)
        let second = try #require(try await farm.finished(c, again.buildID))
        #expect(second.state == .succeeded)
        let secondEvents = try await farm.events(c, again.buildID)
        #expect(!secondEvents.contains { $0.kind == .assigned }, "nothing is dispatched to agents")
        await c.close()
    }

    @Test("two builds that need the same tree at once: it is built once")
    func identicalJobsMerge() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        let c = try await farm.client()
        try await farm.startAgents(["agent-a", "agent-b"], env: ["KILN_TEST_JOB_DELAY_MS": "1500"], seenBy: c)
        let first = try await submit(c, hostname: "farm-same")
        let second = try await submit(c, hostname: "farm-same")
        for b in [first, second] {
            let s = try #require(try await farm.finished(c, b))
            #expect(s.state == .succeeded, "\(s.failure)")
        }
        let assigned =
            try await farm.events(c, first).filter { $0.kind == .assigned }.count
            + farm.events(c, second).filter { $0.kind == .assigned }.count
        #expect(assigned == 1, "one attempt for both builds")
        await c.close()
    }

    @Test("a tree forgotten between its job and the build's assembly is built again; the build succeeds and says so")
    func treeMissingBeforeAssemblyIsRebuilt() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        let c = try await farm.client()
        // One slot, and each job waits 3 s before it runs: the two trees are
        // built one after the other, and the first is stored while the
        // second still waits.
        try await farm.startAgents(["agent-a"], env: ["KILN_TEST_JOB_DELAY_MS": "3000"], seenBy: c)
        let tree = { (name: String, host: String) -> [String: Any] in
            ["name": name, "stages": [["type": "org.osbuild.hostname", "options": ["hostname": host]]]]
        }
        let input = { (name: String) -> [String: Any] in
            ["tree": ["type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": ["name:\(name)"]]]
        }
        let manifest: [String: Any] = [
            "version": "2",
            "pipelines": [
                tree("first", "farm-first"), tree("second", "farm-second"),
                [
                    "name": "archive",
                    "stages": [
                        ["type": "org.osbuild.tar", "options": ["filename": "first.tar"], "inputs": input("first")],
                        ["type": "org.osbuild.tar", "options": ["filename": "second.tar"], "inputs": input("second")],
                    ],
                ],
            ],
            "sources": [String: Any](),
        ]
        let build = try await c.submit(
            manifestJSON: [UInt8](try JSONSerialization.data(withJSONObject: manifest)),
            exports: ["archive"], arch: "x86_64", label: "farm test missing tree"
        ).buildID
        var stored: Kiln_V1_JobStatus?
        #expect(
            try await farm.eventually(.seconds(60)) {
                stored = try await c.status(build).first?.jobs.first { $0.onAgent && $0.state == .succeeded }
                return stored != nil
            }, "one tree is stored while the other waits")
        let first = try #require(stored)
        let forget = try await farm.kiln(["store", "forget", first.pipelineID] + farm.stateOptions)
        #expect(forget.status == 0, "\(forget.output)")

        let status = try #require(try await farm.finished(c, build, timeout: .seconds(90)))
        #expect(status.state == .succeeded, "\(status.failure)")
        let events = try await farm.events(c, build)
        #expect(
            events.contains { $0.kind == .requeued && $0.jobID == first.jobID && $0.message.contains("no longer in the store") },
            "\(events.map(\.message))")
        let rebuilt = try #require(status.jobs.first { $0.jobID == first.jobID })
        #expect(rebuilt.attempts == 2, "the forgotten tree was built a second time")
        let out = "\(farm.dir)/fetched-\(build)-first.tar"
        try await c.fetch(build, artifact: "first.tar", to: out)
        #expect(try await runChild("/bin/tar", ["-xOf", out, "./etc/hostname"]).output == "farm-first\n")
        await c.close()
    }

    @Test("an agent killed in the middle of a job: the job is re-run on the other agent and the build succeeds")
    func agentKilled() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler(lease: 4)
        let c = try await farm.client()
        try await farm.startAgents(["agent-a"], env: ["KILN_TEST_JOB_DELAY_MS": "60000"], seenBy: c)
        let build = try await farm.submitRunning(
            c, FarmHarness.manifest(hostname: "farm-kill"), label: "farm test farm-kill",
            on: "agent-a")
        try await farm.startAgents(["agent-b"], seenBy: c)
        await farm.killAgent("agent-a")
        let status = try #require(try await farm.finished(c, build, timeout: .seconds(90)))
        #expect(status.state == .succeeded, "\(status.failure)")
        let job = try #require(status.jobs.first { $0.onAgent })
        #expect(job.agentID == "agent-b")
        #expect(job.attempts == 2)
        let events = try await farm.events(c, build)
        #expect(events.contains { $0.kind == .requeued && $0.agentID == "agent-a" })
        #expect(try await fetchedHostname(farm, c, build) == "farm-kill\n")

        // A late result from the fenced-off first attempt (the dead agent's
        // identity and key) is answered with Cancel and changes nothing.
        let firstAttempt = try #require(events.first { $0.kind == .assigned && $0.agentID == "agent-a" }?.attemptID)
        let ghost = try await FakeAgent.connect(farm, name: "agent-a", arches: ["aarch64"])
        var late = Kiln_V1_StreamEnd()
        late.attemptID = firstAttempt
        late.totalLength = 1
        try await ghost.send(.streamEnd(late))
        #expect(await ghost.nextCancel() == firstAttempt)
        let after = try #require(try await c.status(build).first)
        #expect(after.state == .succeeded && after.jobs.first { $0.onAgent }?.attempts == 2)
        await ghost.close()
        await c.close()
    }

    @Test("the scheduler killed during a build: after a restart the build finishes, nothing lost or duplicated")
    func schedulerKilled() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler(lease: 20)
        var c = try await farm.client()
        try await farm.startAgents(["agent-a"], env: ["KILN_TEST_JOB_DELAY_MS": "4000"], seenBy: c)
        // Killed once the agent holds the job (not between the attempt's commit and its Assign),
        // with another build queued behind it.
        let build = try await farm.submitRunning(
            c, FarmHarness.manifest(hostname: "farm-restart"), label: "farm test farm-restart",
            on: "agent-a", timeout: .seconds(30))
        let queuedOnly = try await submit(c, hostname: "farm-restart-2")
        await farm.killScheduler()
        await c.close()
        try await farm.startScheduler(lease: 20)
        c = try await farm.client()
        let first = try #require(try await farm.finished(c, build, timeout: .seconds(90)))
        #expect(first.state == .succeeded, "\(first.failure)")
        let second = try #require(try await farm.finished(c, queuedOnly, timeout: .seconds(90)))
        #expect(second.state == .succeeded, "\(second.failure)")
        let all = try await c.status()
        #expect(all.count == 2, "no build lost or duplicated: \(all.map(\.buildID))")
        #expect(try await fetchedHostname(farm, c, build) == "farm-restart\n")
        // Re-adopted, not re-run: one attempt.
        #expect(first.jobs.first { $0.onAgent }?.attempts == 1)
        await c.close()
    }

    @Test("a chunk corrupted in transit is detected and re-sent; the stored tree matches")
    func corruptChunk() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        try farm.startAgent("agent-a", env: ["KILN_TEST_CORRUPT_CHUNK": "0"])
        let c = try await farm.client()
        let build = try await submit(c, hostname: "farm-corrupt")
        let status = try #require(try await farm.finished(c, build))
        #expect(status.state == .succeeded, "\(status.failure)")
        let events = try await farm.events(c, build)
        #expect(events.contains { $0.kind == .streamed && $0.message.contains("re-sent") }, "\(events.map(\.message))")
        #expect(try await fetchedHostname(farm, c, build) == "farm-corrupt\n")
        await c.close()
    }

    @Test("a job that fails on every agent for infrastructure reasons fails the build with each attempt's reason")
    func infrastructureFailureEverywhere() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        let c = try await farm.client()
        try await farm.startAgents(["agent-a", "agent-b"], seenBy: c)
        let missing = "sha256:" + String(repeating: "ab", count: 32)
        let build = try await submit(
            c, hostname: "farm-infra",
            extraStages: [
                [
                    "type": "org.kiln.debian.install",
                    "options": ["architecture": "amd64", "release": "bookworm", "merged_usr": true],
                    "inputs": ["packages": ["type": "org.osbuild.files", "origin": "org.osbuild.source", "references": [missing]]],
                ]
            ], sources: ["org.osbuild.curl": ["items": [missing: ["url": "http://127.0.0.1:9/missing.deb"]]]])
        let status = try #require(try await farm.finished(c, build, timeout: .seconds(120)))
        #expect(status.state == .failed)
        let job = try #require(status.jobs.first { $0.onAgent })
        #expect(job.attempts == 3, "retried up to the limit, then stopped")
        #expect(status.failure.contains("3 attempts"), "\(status.failure)")
        #expect(status.failure.contains("agent-a") && status.failure.contains("agent-b"), "\(status.failure)")
        await c.close()
    }

    @Test("a build for an architecture no agent runs waits, and says why")
    func noAgentForTheArchitecture() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        try farm.startAgent("agent-a")
        let c = try await farm.client()
        let build = try await c.submit(
            manifestJSON: FarmHarness.manifest(hostname: "farm-arm"), exports: ["archive"],
            arch: "aarch64", label: "no arm agent"
        ).buildID
        #expect(
            try await farm.eventually(.seconds(20)) {
                try await farm.events(c, build).contains { $0.message.contains("no online agent runs aarch64") }
            })
        #expect(try await c.status(build).first?.state == .queued)
        #expect(try await c.cancel(build) == .cancelled)
        await c.close()
    }

    @Test("a stage that fails is a build failure: not retried")
    func buildFailureNotRetried() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        try farm.startAgent("agent-a")
        let c = try await farm.client()
        let build = try await submit(
            c, hostname: "farm-fail",
            extraStages: [
                ["type": "org.osbuild.timezone", "options": ["zone": "Mars/Olympus"]]
            ])
        let status = try #require(try await farm.finished(c, build))
        #expect(status.state == .failed)
        #expect(status.jobs.first { $0.onAgent }?.attempts == 1)
        #expect(status.failure.contains("org.osbuild.timezone"), "\(status.failure)")
        await c.close()
    }
}
