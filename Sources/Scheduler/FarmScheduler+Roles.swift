import Foundation
import Protocol

/// Roles: a CURVE key's role is the folder of the allow directory its `.pub`
/// file is in (`KeyRole`). Agents may only run jobs; clients submit and see,
/// cancel and fetch their own builds; admins see every build and the farm.
/// Every check asks `access.permits(key, role)`; without CURVE no roles are
/// configured and it permits everything (`KeyAccess.everyRole`).
extension FarmScheduler {
    /// Replaces the live roles (at start and on every change of the allow
    /// directory). An online agent whose key may no longer act as an agent
    /// goes offline at once, its attempts requeued, and is told why; whatever
    /// it sends later is refused (libzmq cannot drop one peer of a ROUTER).
    package func setRoles(_ roles: [String: KeyRole]) {
        access = .roles(roles)
        for (id, a) in core.agents.sorted(by: { $0.key < $1.key }) where a.online && !access.permits(a.publicKey, .agent) {
            let reason = "agent \(id)'s key \(a.publicKey) was removed from the scheduler's allow/agents/"
            act { $0.agentLost(id, reason: reason) }
            var d = Kiln_V1_Disconnect()
            d.reason = Self.agentKeyRefusal(a.publicKey, role: access.folder(of: a.publicKey))
            outbox?.agent(a.identity, WireMessage(.disconnect(d)))
        }
    }

    /// Why an agent message from `key` is refused, or nil when the key may act as an agent.
    func agentRefusal(_ key: String?) -> String? {
        access.permits(key, .agent) ? nil : Self.agentKeyRefusal(key ?? "", role: access.folder(of: key))
    }

    /// What an agent is told when its key may not be an agent's: where its
    /// `.pub` is now and where it belongs.
    static func agentKeyRefusal(_ key: String, role: KeyRole?) -> String {
        let now = role.map { "is in allow/\($0.folder)/ (a \($0.rawValue) key)" } ?? "is not on the allow list"
        return "refused: this agent's public key \(key) \(now) on the scheduler; an agent's .pub belongs in "
            + "allow/agents/ on the scheduler host"
    }

    /// Client requests: the key must be a client's or an admin's.
    func requireClient(_ key: String?) throws {
        guard !access.permits(key, .client) else { return }
        if access.folder(of: key) == .agent {
            throw SchedulerError.badRequest(
                "refused: key \(key ?? "") is an agent key (allow/agents/ on the scheduler); "
                    + "agents cannot submit or query builds; use a key from allow/clients/")
        }
        throw SchedulerError.badRequest(
            "refused: key \(key ?? "") is no longer on the scheduler's allow list "
                + "(allow/clients/ or allow/admins/)")
    }

    /// Admin-only requests: what acts on or shows the whole farm.
    func requireAdmin(_ key: String?, _ what: String) throws {
        guard access.permits(key, .admin) else {
            throw SchedulerError.badRequest(
                "refused: \(what) needs an admin key (allow/admins/ on the scheduler); "
                    + "this key is a client's and sees only its own builds")
        }
    }

    /// The owner filter for a client's reads: nil for an admin (every
    /// build), else the key (builds without an owner are admins' alone).
    func buildOwner(_ key: String?) -> String? {
        access.permits(key, .admin) ? nil : (key ?? "")
    }

    /// Logs a refused peer at most once per peer and port every 10 s.
    func warnRefused(_ key: String?, on port: String, _ message: String) {
        droppedMessages += 1
        metrics?.dropped()
        if roleWarningsStorage == nil { roleWarningsStorage = RateLimitedWarnings(logger: logger) }
        roleWarningsStorage?.warn(peer: key ?? "unknown", on: port, message)
    }
}
