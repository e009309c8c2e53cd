import Agent
import Foundation
import Images
import Logging
import Manifest
import Protocol
import Scheduler
import Stages

/// `kiln build` without `--scheduler`: a scheduler and local agents in this
/// process over `inproc://` — the farm's code path on one machine. The
/// agents share the scheduler's tree store, so finished trees are handed
/// over in place instead of streamed.
struct EmbeddedFarm {
    let server: SchedulerServer
    let client: SchedulerClient
    let agentTasks: [Task<Void, Never>]
    let stateDirectory: String
    let agentIDs: [String]

    static func start(executor: Executor, logger: Logger) async throws -> EmbeddedFarm {
        let state = "/var/lib/kiln/embedded/\(StoreOptions.timestamp())"
        let context = try ZMQContext()
        let endpoint = "inproc://kiln-\(getpid())"
        var agents: [(String, [String], [String])] = [("local-\(Architecture.host.rawValue)", [Architecture.host.rawValue], [])]
        for a in Architecture.allCases where a != .host && HostArchitectures.canRun(a) {
            agents.append(("local-\(a.rawValue)-emulated", [], [a.rawValue]))
        }
        var config = SchedulerConfiguration(stateDirectory: state + "/scheduler")
        config.imageTypes = Set(ImageType.allCases.map(\.rawValue))
        config.sharedStoreAgents = Set(agents.map(\.0))
        let scheduler = try FarmScheduler(config: config, store: executor.store, sources: executor.sources, logger: logger)
        let server = try await SchedulerServer.start(
            scheduler: scheduler,
            endpoints: .init(
                agents: try SchedulerEndpoint.agents(endpoint), clients: try SchedulerEndpoint.clients(endpoint),
                security: nil),
            context: context, logger: logger)
        var tasks: [Task<Void, Never>] = []
        for (id, native, emulated) in agents {
            var ac = AgentConfiguration(
                agentID: id, schedulerEndpoint: try SchedulerEndpoint.agents(endpoint), arches: native,
                emulatedArches: emulated, stateDirectory: "\(state)/\(id)")
            ac.sharesStoreWithScheduler = true
            let agent = try BuildAgent(
                config: ac, context: context, store: executor.store, sources: executor.sources,
                logger: logger)
            tasks.append(Task { await agent.run() })
        }
        let client = try await SchedulerClient.connect(
            context: context, endpoint: try SchedulerEndpoint.clients(endpoint),
            keys: nil, schedulerPublicKey: nil)
        return EmbeddedFarm(
            server: server, client: client, agentTasks: tasks, stateDirectory: state,
            agentIDs: agents.map(\.0))
    }

    /// Stops everything and removes the embedded scheduler's state.
    func stop() async {
        for t in agentTasks { t.cancel() }
        for t in agentTasks { await t.value }
        await client.close()
        await server.stop()
        try? FileManager.default.removeItem(atPath: stateDirectory)
    }
}
