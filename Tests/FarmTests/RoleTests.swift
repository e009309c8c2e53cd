import Agent
import Foundation
import KilnTestSupport
import Logging
import Protocol
import Scheduler
import Stages
import Testing

/// Roles and live keys (issue 15): the folder of the allow directory a key's
/// `.pub` is in is what the key may do, and the scheduler follows changes to
/// the folders without a restart. Real `kiln scheduler` and `kiln agent`
/// processes on loopback.
@Suite(.serialized, .tags(.farm), .tier(.quick, .farm))
struct RoleTests {
    func submit(_ c: SchedulerClient, hostname: String) async throws -> String {
        try await c.submit(manifestJSON: FarmHarness.manifest(hostname: hostname), exports: ["archive"], arch: "x86_64",
                           label: "roles \(hostname)").buildID
    }

    /// The message of the scheduler's refusal of `body` (nil when it succeeds).
    func refusal(_ body: () async throws -> Void) async -> String? {
        do {
            try await body()
            return nil
        } catch let ClientError.refused(_, message) {
            return message
        } catch {
            return "\(error)"
        }
    }

    @Test("a client sees, cancels and fetches only its own builds; an admin sees and acts on all; farm views need an admin")
    func clientsSeeOnlyTheirOwn() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        try farm.startAgent("agent-a")
        let alice = try await farm.client(keyName: "client"), bob = try await farm.client(keyName: "client-2")
        let admin = try await farm.client()
        let build = try await submit(alice, hostname: "farm-alice")
        let done = try #require(try await farm.finished(alice, build))
        #expect(done.state == .succeeded, "\(done.failure)")

        // Alice fetches her image; Bob cannot see, fetch, follow or cancel it, and his list is empty.
        try await alice.fetch(build, artifact: "tree.tar", to: "\(farm.dir)/alice.tar")
        #expect(try await bob.status().isEmpty, "another client's build is not listed")
        let notFound = "no build \(build)"
        #expect(await refusal { _ = try await bob.status(build) }?.contains(notFound) == true)
        #expect(await refusal { try await bob.fetch(build, artifact: "tree.tar", to: "\(farm.dir)/bob.tar") }?.contains(notFound) == true)
        #expect(!FileManager.default.fileExists(atPath: "\(farm.dir)/bob.tar"))
        #expect(await refusal { try await bob.logs(build, follow: false) { _ in } }?.contains(notFound) == true)
        #expect(await refusal { _ = try await bob.cancel(build) }?.contains(notFound) == true)
        let cli = try await farm.kiln(as: "client-2", ["status", build])
        #expect(cli.status != 0 && cli.output.contains(notFound), "\(cli.output)")

        // The farm's views are an admin's.
        let agentsRefused = await refusal { _ = try await bob.agents() }
        #expect(agentsRefused?.contains("admin key (allow/admins/") == true, "\(agentsRefused ?? "allowed")")
        let top = try await farm.kiln(as: "client", ["top", "--once", "--json"])
        #expect(top.status == 2 && top.output.contains("allow/admins/"), "\(top.output)")

        // The admin sees Alice's build, and cancels one of hers that is still queued (no agent takes aarch64).
        #expect(try await admin.status().contains { $0.buildID == build })
        let queued = try await alice.submit(manifestJSON: FarmHarness.manifest(hostname: "farm-queued"), exports: ["archive"],
                                            arch: "aarch64", label: "queued").buildID
        #expect(try await admin.cancel(queued) == .cancelled)
        #expect(try await alice.status(queued).first?.state == .cancelled)
        #expect(try await admin.agents().contains { $0.agentID == "agent-a" })
        for c in [alice, bob, admin] { await c.close() }
    }

    @Test("an agent key cannot submit or query builds: the CLI says why and exits 2")
    func agentKeyCannotSubmit() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        let asAgent = try await farm.client(keyName: "agent-a")
        let refused = await refusal { _ = try await submit(asAgent, hostname: "farm-agent-submits") }
        #expect(refused?.contains("agent key (allow/agents/") == true, "\(refused ?? "accepted")")
        let cli = try await farm.kiln(as: "agent-a", ["status"])
        #expect(cli.status == 2 && cli.output.contains("agents cannot submit or query builds"), "\(cli.output)")
        let admin = try await farm.client()
        #expect(try await admin.status().isEmpty, "nothing was submitted")
        #expect(farm.log("scheduler").contains("refused a client request"), "the scheduler logs the refusal")
        await asAgent.close()
        await admin.close()
    }

    @Test("a client key cannot register as an agent: the agent's log says its key is in allow/clients/ and belongs in allow/agents/")
    func clientKeyCannotBeAnAgent() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        try farm.startAgent("impostor", keyName: "client")
        let told = await farm.eventually(.seconds(30)) {
            farm.log("impostor").contains("allow/clients/") && farm.log("impostor").contains("belongs in allow/agents/")
        }
        #expect(told, "agent log:\n\(farm.log("impostor"))")
        #expect(farm.log("scheduler").contains("refused Hello"), "\(farm.log("scheduler"))")
        let admin = try await farm.client()
        #expect(try await admin.agents().isEmpty, "the impostor is not an agent")
        await admin.close()
    }

    @Test("an agent with an unknown key says within 30 s that its .pub belongs in allow/agents/")
    func unknownAgentKeyHint() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        try farm.startAgent("stranger", keyName: "rogue")
        let rogue = try CurveKeyPair.loadPublicKey("\(farm.dir)/rogue.pub")
        let told = await farm.eventually(.seconds(30)) {
            farm.log("stranger").contains("its .pub belongs in allow/agents/") && farm.log("stranger").contains(rogue)
        }
        #expect(told, "agent log:\n\(farm.log("stranger"))")
    }

    @Test("a key added at run time works within 10 s; a removed agent key is refused within 10 s and its job runs elsewhere")
    func liveKeys() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        // A long lease: the job must be requeued because the key went, not because its lease ran out.
        try await farm.startScheduler(lease: 60)
        let admin = try await farm.client()

        // Added: a new client key is answered within 10 s, without a restart.
        try farm.allow("rogue", as: "clients")
        let added = ContinuousClock.now
        let answered = await farm.eventually(.seconds(10)) {
            guard let c = try? await farm.client(keyName: "rogue") else { return false }
            defer { Task { await c.close() } }
            return (try? await c.status()) != nil
        }
        #expect(answered, "the added key is answered")
        #expect(ContinuousClock.now - added < .seconds(15))

        // Removed: agent-a holds a long job; its key goes; the job is requeued at once and agent-b builds it.
        try await farm.startAgents(["agent-a"], env: ["KILN_TEST_JOB_DELAY_MS": "120000"], seenBy: admin, timeout: .seconds(30))
        let build = try await farm.submitRunning(admin, FarmHarness.manifest(hostname: "farm-revoked"), label: "roles farm-revoked",
                                                 on: "agent-a", timeout: .seconds(30))
        try await farm.startAgents(["agent-b"], seenBy: admin, timeout: .seconds(30))
        try farm.disallow("agent-a", from: "agents")
        let removed = ContinuousClock.now
        let requeued = await farm.eventually(.seconds(10)) {
            (try? await farm.events(admin, build))?.contains {
                $0.kind == .requeued && $0.agentID == "agent-a" && $0.message.contains("removed from the scheduler's allow/agents/")
            } == true
        }
        #expect(requeued, "scheduler:\n\(farm.log("scheduler"))")
        #expect(ContinuousClock.now - removed < .seconds(15))
        #expect(try await admin.agents().first { $0.agentID == "agent-a" }?.state == .offline)
        let status = try #require(try await farm.finished(admin, build, timeout: .seconds(90)))
        #expect(status.state == .succeeded, "\(status.failure)")
        #expect(status.jobs.first { $0.onAgent }?.agentID == "agent-b")
        // The revoked agent was told why, and later messages from its key are refused.
        #expect(await farm.eventually(.seconds(30)) { farm.log("agent-a").contains("belongs in allow/agents/") },
                "agent-a:\n\(farm.log("agent-a"))")
        await admin.close()
    }

    @Test("a key moved from clients/ to agents/ while its agent and its client are connected: an agent within 10 s, a client no more")
    func keyMovedFromClientsToAgents() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        let admin = try await farm.client()
        // The "client" key, still in clients/: its client connection is answered, its agent refused.
        let asClient = try await farm.client(keyName: "client")
        let build = try await submit(asClient, hostname: "farm-moved")
        try farm.startAgent("mover", keyName: "client")
        // Refused again and again: after seven refusals a back-off doubling from 0.25 s would wait 16 s,
        // more than the 10 s a moved key may take.
        let refused = await farm.eventually(.seconds(60)) {
            farm.log("mover").components(separatedBy: "is in allow/clients/ (a client key)").count - 1 >= 7
        }
        #expect(refused, "agent log:\n\(farm.log("mover"))")
        #expect(try await admin.agents().isEmpty)

        try farm.move("client", from: "clients", to: "agents")
        let moved = ContinuousClock.now
        // An agent now, within the live-reload window: online, and it runs the build.
        let online = try await farm.eventually(.seconds(10)) {
            try await admin.agents().contains { $0.agentID == "mover" && $0.state == .online }
        }
        #expect(online, "agent log:\n\(farm.log("mover"))")
        #expect(ContinuousClock.now - moved < .seconds(12))
        let status = try #require(try await farm.finished(admin, build))
        #expect(status.state == .succeeded, "\(status.failure)")
        #expect(status.jobs.first { $0.onAgent }?.agentID == "mover")

        // No client powers left: the connection made as a client and the CLI are refused as an agent key's.
        let asked = await refusal { _ = try await asClient.status(build) }
        #expect(asked?.contains("is an agent key (allow/agents/") == true, "\(asked ?? "answered")")
        let cli = try await farm.kiln(as: "client", ["status"])
        #expect(cli.status == 2 && cli.output.contains("agents cannot submit or query builds"), "\(cli.output)")
        for c in [admin, asClient] { await c.close() }
    }

    @Test("a flat allow directory is refused at start (exit 2) with the migrate command, and that command works")
    func flatAllowDirectory() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let flat = "\(farm.dir)/flat"
        try FileManager.default.createDirectory(atPath: flat, withIntermediateDirectories: true)
        for name in ["agent-a", "client", "admin"] {
            try FileManager.default.copyItem(atPath: "\(farm.dir)/\(name).pub", toPath: "\(flat)/\(name).pub")
        }
        let args = ["scheduler", "--bind", farm.endpoint, "--state", "\(farm.dir)/scheduler", "--key", "\(farm.dir)/scheduler.key",
                    "--allow", flat, "--store", "\(farm.dir)/scheduler/store", "--logs", "\(farm.dir)/scheduler/logs"]
        let refused = try await farm.kiln(args)
        let command = "kiln keys migrate --allow \(flat) --agents agent-a --clients client --admins admin"
        #expect(refused.status == 2, "\(refused.output)")
        #expect(refused.output.contains("agent-a.pub, client.pub") && refused.output.contains(command), "\(refused.output)")

        // The command as printed (minus the program name) moves each key to its folder.
        let migrate = try await farm.kiln(Array(command.split(separator: " ").dropFirst().map(String.init)))
        #expect(migrate.status == 0, "\(migrate.output)")
        #expect(FileManager.default.fileExists(atPath: "\(flat)/agents/agent-a.pub"))
        #expect(FileManager.default.fileExists(atPath: "\(flat)/clients/client.pub"))
        #expect(FileManager.default.fileExists(atPath: "\(flat)/admins/admin.pub"))
        // A name left out or unknown moves nothing and exits 2.
        let wrong = try await farm.kiln(["keys", "migrate", "--allow", flat, "--agents", "nobody"])
        #expect(wrong.status == 2 && wrong.output.contains("nobody"), "\(wrong.output)")
    }

    @Test("without CURVE (kiln build's embedded farm) no roles are configured: its agent is welcomed and builds, its client sees the farm")
    func noCurveEveryRole() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        var logger = Logger(label: "kiln-test-embedded")
        logger.logLevel = .warning
        let sources = try SourceCache(root: "\(farm.dir)/sources", logger: logger)
        let scheduler = try FarmScheduler(config: SchedulerConfiguration(stateDirectory: "\(farm.dir)/scheduler"),
                                          store: try TreeStore(root: "\(farm.dir)/scheduler/store"), sources: sources, logger: logger)
        let endpoint = "inproc://kiln-roles-\(UUID().uuidString)"
        let server = try await SchedulerServer.start(
            scheduler: scheduler,
            endpoints: .init(agents: try SchedulerEndpoint.agents(endpoint), clients: try SchedulerEndpoint.clients(endpoint),
                             security: nil),
            context: farm.context, logger: logger)
        let agent = try BuildAgent(
            config: AgentConfiguration(agentID: "local", schedulerEndpoint: try SchedulerEndpoint.agents(endpoint),
                                       arches: ["x86_64"], emulatedArches: [], stateDirectory: "\(farm.dir)/local"),
            context: farm.context, store: try TreeStore(root: "\(farm.dir)/local/store"), sources: sources, logger: logger)
        let running = Task { await agent.run() }
        let c = try await SchedulerClient.connect(context: farm.context, endpoint: try SchedulerEndpoint.clients(endpoint),
                                                  keys: nil, schedulerPublicKey: nil)
        // The farm's view (an admin's with CURVE) and an agent's Hello, both from peers without a key.
        #expect(try await farm.eventually(.seconds(20)) { try await c.agents().contains { $0.agentID == "local" && $0.state == .online } })
        let build = try await submit(c, hostname: "farm-embedded")
        let status = try #require(try await farm.finished(c, build))
        #expect(status.state == .succeeded, "\(status.failure)")
        #expect(status.jobs.first { $0.onAgent }?.agentID == "local")
        running.cancel()
        await running.value
        await c.close()
        await server.stop()
    }
}
