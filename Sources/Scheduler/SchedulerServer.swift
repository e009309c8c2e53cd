import Foundation
import HTTPServing
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
        /// CURVE keys and the roles of allowed keys; nil for `inproc://` (embedded mode).
        package var security: Security?
        /// HTTP for `/metrics`, the dashboard (`/`) and its JSON; nil: off.
        package var http: HTTPEndpoint?

        package struct Security: Sendable {
            package var keys: CurveKeyPair
            /// The keys at start, each with its role.
            package var roles: [String: KeyRole]
            /// Read again every `allowPollInterval`; changes apply without a restart. nil: fixed `roles`.
            package var allow: AllowDirectory?
            /// The HTTP API's bearer tokens, replaced with every read of `allow`.
            package var tokens: BearerTokens?
            package init(keys: CurveKeyPair, roles: [String: KeyRole], allow: AllowDirectory? = nil, tokens: BearerTokens? = nil) {
                self.keys = keys
                self.roles = roles
                self.allow = allow
                self.tokens = tokens
            }
        }

        package init(agents: String, clients: String, security: Security?, http: HTTPEndpoint? = nil) {
            self.agents = agents
            self.clients = clients
            self.security = security
            self.http = http
        }
    }

    package static let zapDomain = "kiln"
    /// How often the allow directory is read again (a key added or removed
    /// applies within this, well inside the 10 s docs/operating.md promises).
    static let allowPollInterval = Duration.seconds(2)
    /// Client requests handled at once.
    static let clientConcurrency = 64

    package let scheduler: FarmScheduler
    package let context: ZMQContext
    package let agentSocket: ZMQSocketThread
    package let clientSocket: ZMQSocketThread
    let zap: ZAPHandler?
    let tasks: [Task<Void, Never>]
    /// Serves `/metrics` and the dashboard when asked for.
    package let http: StatusServer?
    /// Keeps the tree store under its cap (`SchedulerConfiguration.storePruneInterval`).
    let pruner: StorePruner?

    private init(
        scheduler: FarmScheduler, context: ZMQContext, agentSocket: ZMQSocketThread, clientSocket: ZMQSocketThread,
        zap: ZAPHandler?, tasks: [Task<Void, Never>], http: StatusServer?, pruner: StorePruner?
    ) {
        self.scheduler = scheduler
        self.context = context
        self.agentSocket = agentSocket
        self.clientSocket = clientSocket
        self.zap = zap
        self.tasks = tasks
        self.http = http
        self.pruner = pruner
    }

    /// Binds both sockets, recovers state and starts serving.
    package static func start(
        scheduler: FarmScheduler, endpoints: Endpoints, context: ZMQContext,
        logger: Logger
    ) async throws -> SchedulerServer {
        var zap: ZAPHandler?
        var curve: ZMQSocketConfiguration.Curve?
        if let security = endpoints.security {
            zap = try await ZAPHandler.start(context: context, domain: zapDomain, allowedKeys: Set(security.roles.keys))
            await scheduler.setRoles(security.roles)
            curve = .server(keys: security.keys, zapDomain: zapDomain)
        }
        var agentConfig = ZMQSocketConfiguration(.router, .bind(endpoints.agents), curve: curve)
        agentConfig.highWaterMark = 10_000
        let agentSocket = try await ZMQSocketThread.start(context: context, configuration: agentConfig, name: "kiln-agents")
        var clientConfig = ZMQSocketConfiguration(.router, .bind(endpoints.clients), curve: curve)
        // A client has a few requests in flight; a flood waits in no queue of ours.
        clientConfig.inbound.maxQueuedMessagesPerPeer = 256
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
        let warnings = RateLimitedWarnings(logger: logger)
        let inbox = Inbox<AgentMessage>()
        tasks.append(
            Task {
                for await m in agentSocket.inbound {
                    do {
                        let (identity, message) = try Framing.decode(m.frames, routed: true)
                        if inbox.append(.init(identity: identity ?? [], key: m.userID, message: message)) {
                            Task { await scheduler.drain(inbox) }
                        }
                    } catch {
                        await scheduler.countDropped()
                        warnings.warn(peer: m.userID ?? "unknown", on: "agent", "dropped an undecodable agent message: \(error)")
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
        tasks.append(
            Task {
                // At most `clientConcurrency` requests are handled at once; the
                // rest wait in the socket's bounded queue (InboundLimits).
                await withTaskGroup(of: Void.self) { group in
                    var running = 0
                    for await m in clientSocket.inbound {
                        do {
                            let (identity, message) = try Framing.decode(m.frames, routed: true)
                            while running >= Self.clientConcurrency {
                                await group.next()
                                running -= 1
                            }
                            running += 1
                            group.addTask { await scheduler.handleClient(identity: identity ?? [], key: m.userID, message: message) }
                        } catch {
                            await scheduler.countDropped()
                            warnings.warn(peer: m.userID ?? "unknown", on: "client", "dropped an undecodable client message: \(error)")
                        }
                    }
                }
            })
        for (socket, side) in [(agentSocket, "agent"), (clientSocket, "client")] {
            tasks.append(
                Task {
                    for await d in socket.drops {
                        await scheduler.countDropped()
                        warnings.warn(peer: d.peer, on: side, "dropped an \(side) message of \(d.frames) frame(s), \(d.bytes) bytes: \(d.reason)")
                    }
                })
        }
        tasks.append(
            Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(250))
                    await scheduler.tick()
                }
            })
        if let zap {
            tasks.append(
                Task {
                    for await r in zap.refusals {
                        warnings.warn(
                            peer: r.publicKey.isEmpty ? "none" : r.publicKey, on: "handshake",
                            r.description)
                    }
                })
            if let security = endpoints.security, let allow = security.allow {
                tasks.append(
                    Task {
                        await Self.watch(allow, from: security.roles, zap: zap, tokens: security.tokens, scheduler: scheduler, logger: logger)
                    })
            }
        }
        var http: StatusServer?
        if let endpoint = endpoints.http {
            do {
                http = try await StatusServer.start(endpoint: endpoint, routes: Self.routes(scheduler), logger: logger)
            } catch {
                for t in tasks { t.cancel() }
                await agentSocket.close()
                await clientSocket.close()
                await zap?.close()
                throw error
            }
        }
        let pruner = scheduler.config.storePruneInterval.map { StorePruner(store: scheduler.store, interval: $0, logger: logger) }
        pruner?.start()
        return SchedulerServer(
            scheduler: scheduler, context: context, agentSocket: agentSocket,
            clientSocket: clientSocket, zap: zap, tasks: tasks, http: http, pruner: pruner)
    }

    /// Looks at the allow directory every `allowPollInterval` and applies
    /// what changed: new handshakes see the new keys (ZAP), and the scheduler
    /// refuses removed keys and drops their agents. Each look only lists the
    /// folders (`AllowDirectory.listing`); the keys are opened and parsed
    /// again when that listing changed. A directory that cannot be read keeps the
    /// last good keys, with a warning.
    static func watch(
        _ allow: AllowDirectory, from initial: [String: KeyRole], zap: ZAPHandler, tokens: BearerTokens?,
        scheduler: FarmScheduler, logger: Logger
    ) async {
        var current = initial
        var lastWarnings: [String] = []
        // The listing when the keys were last read (nil: read them on the first look).
        var read: AllowDirectory.Listing?
        while !Task.isCancelled {
            try? await Task.sleep(for: allowPollInterval)
            let listing = allow.listing()
            if listing.unchanged(since: read) { continue }
            let snapshot: AllowDirectory.Snapshot
            do {
                snapshot = try allow.load()
                read = listing
            } catch {
                let text = "\(error); keeping the \(current.count) key(s) read before"
                if lastWarnings != [text] { logger.warning("\(text)") }
                lastWarnings = [text]
                continue
            }
            if snapshot.warnings != lastWarnings {
                for w in snapshot.warnings where !lastWarnings.contains(w) { logger.warning("\(w)") }
                lastWarnings = snapshot.warnings
            }
            if let tokens {
                let before = tokens.count
                tokens.replace(snapshot.tokens)
                if before != snapshot.tokens.count {
                    logger.notice("\(snapshot.tokens.count) API token(s) allowed (\(allow.path)/clients/, admins/)")
                }
            }
            guard snapshot.roles != current else { continue }
            let added = snapshot.roles.filter { current[$0.key] != $0.value }
            let removed = current.filter { snapshot.roles[$0.key] != $0.value }
            zap.setAllowedKeys(snapshot.keys)
            await scheduler.setRoles(snapshot.roles)
            current = snapshot.roles
            for (key, role) in removed.sorted(by: { $0.key < $1.key }) {
                logger.notice("key \(key) left \(allow.path)/\(role.folder)/: its sessions are refused from now on")
            }
            for (key, role) in added.sorted(by: { $0.key < $1.key }) {
                logger.notice("key \(key) allowed as \(role.rawValue) (\(allow.path)/\(role.folder)/)")
            }
        }
    }

    /// What the HTTP port serves (read-only; docs/operating.md).
    static func routes(_ scheduler: FarmScheduler) -> [String: StatusServer.Handler] {
        func json(_ body: @escaping @Sendable () async throws -> [UInt8]) -> StatusServer.Handler {
            { _ in
                do { return StatusResponse(contentType: "application/json", body: try await body()) } catch {
                    return .text("\(error)\n", status: 500)
                }
            }
        }
        return [
            "/metrics": { _ in .prometheus(await scheduler.metricsText()) },
            "/": { _ in StatusResponse(contentType: "text/html; charset=utf-8", body: Array(DashboardPage.html.utf8)) },
            "/api/snapshot": json { try await scheduler.snapshotJSON() },
            "/api/report": { query in
                guard let since = Since.parse(query["since"] ?? "24h") else {
                    return .text("since=\(query["since"] ?? ""): use a duration such as 30m, 24h or 7d\n", status: 400)
                }
                do {
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    return StatusResponse(
                        contentType: "application/json",
                        body: try await scheduler.reportJSON(sinceMS: now - since))
                } catch {
                    return .text("\(error)\n", status: 500)
                }
            },
            "/api/log": { query in
                guard let id = query["build"], !id.isEmpty else { return .text("name a build: /api/log?build=ID\n", status: 400) }
                do { return .text(try await scheduler.logText(buildID: id)) } catch SchedulerError.notFound(let m) {
                    return .text(m + "\n", status: 404)
                } catch { return .text("\(error)\n", status: 500) }
            },
        ]
    }

    package var agentEndpoint: String { agentSocket.endpoint }
    package var clientEndpoint: String { clientSocket.endpoint }

    /// Stops serving: closes the sockets (unsent messages are dropped).
    package func stop() async {
        pruner?.stop()
        for t in tasks { t.cancel() }
        await agentSocket.close()
        await clientSocket.close()
        await zap?.close()
        await http?.stop()
    }
}

/// A look-back window such as `30m`, `24h`, `7d` or `90s`, in milliseconds.
package enum Since {
    package static func parse(_ text: String) -> Int64? {
        guard let unit = text.last, let n = Double(text.dropLast()), n > 0, n.isFinite else { return nil }
        let seconds: Double
        switch unit {
        case "s": seconds = n
        case "m": seconds = n * 60
        case "h": seconds = n * 3600
        case "d": seconds = n * 86400
        case "w": seconds = n * 7 * 86400
        default: return nil
        }
        return seconds > 0 && seconds < 1e11 ? Int64(seconds * 1000) : nil
    }

    /// Milliseconds in the largest unit that divides them (`7d`, `36h`,
    /// `90m`, `45s`), else in seconds with a fraction.
    package static func format(_ ms: Int64) -> String {
        for (unit, size) in [("w", Int64(7 * 86_400_000)), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
        where ms >= size && ms % size == 0 {
            return "\(ms / size)\(unit)"
        }
        return "\(Double(ms) / 1000)s"
    }
}
