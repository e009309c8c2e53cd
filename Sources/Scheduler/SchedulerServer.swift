import Foundation
import Logging
import Protocol
import Stages

/// A running scheduler: the two ROUTER sockets (agents, clients), the ZAP
/// allow-list when on TCP, and the loops that feed `FarmScheduler`.
package final class SchedulerServer: Sendable {
    /// Where and how to listen.
    package struct Endpoints: Sendable {
        package var agents: String
        package var clients: String
        /// CURVE keys and allow-listed client/agent keys; nil for `inproc://` (embedded mode).
        package var security: Security?

        package struct Security: Sendable {
            package var keys: CurveKeyPair
            package var allowedKeys: Set<String>
            package init(keys: CurveKeyPair, allowedKeys: Set<String>) {
                self.keys = keys
                self.allowedKeys = allowedKeys
            }
        }

        package init(agents: String, clients: String, security: Security?) {
            self.agents = agents
            self.clients = clients
            self.security = security
        }
    }

    package static let zapDomain = "kiln"

    package let scheduler: FarmScheduler
    package let context: ZMQContext
    package let agentSocket: ZMQSocketThread
    package let clientSocket: ZMQSocketThread
    let zap: ZAPHandler?
    let tasks: [Task<Void, Never>]

    private init(scheduler: FarmScheduler, context: ZMQContext, agentSocket: ZMQSocketThread, clientSocket: ZMQSocketThread,
                 zap: ZAPHandler?, tasks: [Task<Void, Never>]) {
        self.scheduler = scheduler
        self.context = context
        self.agentSocket = agentSocket
        self.clientSocket = clientSocket
        self.zap = zap
        self.tasks = tasks
    }

    /// Binds both sockets, recovers state and starts serving.
    package static func start(scheduler: FarmScheduler, endpoints: Endpoints, context: ZMQContext,
                              logger: Logger) async throws -> SchedulerServer {
        var zap: ZAPHandler?
        var curve: ZMQSocketConfiguration.Curve?
        if let security = endpoints.security {
            zap = try await ZAPHandler.start(context: context, domain: zapDomain, allowedKeys: security.allowedKeys)
            curve = .server(keys: security.keys, zapDomain: zapDomain)
        }
        var agentConfig = ZMQSocketConfiguration(.router, .bind(endpoints.agents), curve: curve)
        agentConfig.highWaterMark = 10_000
        let agentSocket = try await ZMQSocketThread.start(context: context, configuration: agentConfig, name: "kiln-agents")
        let clientConfig = ZMQSocketConfiguration(.router, .bind(endpoints.clients), curve: curve)
        let clientSocket = try await ZMQSocketThread.start(context: context, configuration: clientConfig, name: "kiln-clients")
        let outbox = FarmScheduler.Outbox(
            agent: { identity, message in
                guard let frames = try? Framing.encode(message, identity: identity) else { return }
                agentSocket.post(frames)
            },
            client: { identity, message in
                guard let frames = try? Framing.encode(message, identity: identity) else { return }
                clientSocket.post(frames)
            })
        try await scheduler.start(outbox: outbox)
        var tasks: [Task<Void, Never>] = []
        let inbox = Inbox<AgentMessage>()
        tasks.append(Task {
            for await m in agentSocket.inbound {
                do {
                    let (identity, message) = try Framing.decode(m.frames, routed: true)
                    if inbox.append(.init(identity: identity ?? [], key: m.userID, message: message)) {
                        Task { await scheduler.drain(inbox) }
                    }
                } catch {
                    await scheduler.countDropped()
                    logger.warning("dropped an undecodable agent message: \(error)")
                    if let identity = m.frames.first {
                        var d = Kiln_V1_Disconnect()
                        d.reason = "unreadable message: \(error)"
                        if let frames = try? Framing.encode(WireMessage(.disconnect(d)), identity: identity) {
                            agentSocket.post(frames)
                        }
                    }
                }
            }
        })
        tasks.append(Task {
            for await m in clientSocket.inbound {
                do {
                    let (identity, message) = try Framing.decode(m.frames, routed: true)
                    Task { await scheduler.handleClient(identity: identity ?? [], key: m.userID, message: message) }
                } catch {
                    await scheduler.countDropped()
                    logger.warning("dropped an undecodable client message: \(error)")
                }
            }
        })
        tasks.append(Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                await scheduler.tick()
            }
        })
        if let zap {
            tasks.append(Task {
                for await r in zap.refusals {
                    logger.warning("\(r.description)", metadata: [
                        "peer.key": "\(r.publicKey.isEmpty ? "none" : r.publicKey)", "peer.address": "\(r.address)"])
                }
            })
        }
        return SchedulerServer(scheduler: scheduler, context: context, agentSocket: agentSocket,
                               clientSocket: clientSocket, zap: zap, tasks: tasks)
    }

    package var agentEndpoint: String { agentSocket.endpoint }
    package var clientEndpoint: String { clientSocket.endpoint }

    /// Stops serving: closes the sockets (unsent messages are dropped).
    package func stop() async {
        for t in tasks { t.cancel() }
        await agentSocket.close()
        await clientSocket.close()
        await zap?.close()
    }
}
