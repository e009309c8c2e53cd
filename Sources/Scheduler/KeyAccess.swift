import Protocol

/// What the scheduler's peers may do. With CURVE, a key's role is the folder
/// of the allow directory its `.pub` is in; without CURVE (`kiln build`'s
/// embedded farm on `inproc://`) no roles are configured and every peer may
/// take every role. `permits` is the one question every check asks.
package enum KeyAccess: Sendable, Equatable {
    /// No roles configured (no CURVE): every role is permitted to every peer.
    case everyRole
    /// The live roles of allow-listed keys; a key not listed may do nothing.
    case roles([String: KeyRole])

    /// Whether the peer with `key` may act as `role`. An admin is also a
    /// client (it submits and sees builds like one); an agent is only an agent.
    package func permits(_ key: String?, _ role: KeyRole) -> Bool {
        switch self {
        case .everyRole: true
        case .roles(let roles): key.flatMap { roles[$0] }?.grants(role) ?? false
        }
    }

    /// The folder a key is in, for messages (nil: none, or no roles configured).
    package func folder(of key: String?) -> KeyRole? {
        guard case .roles(let roles) = self else { return nil }
        return key.flatMap { roles[$0] }
    }
}

extension KeyRole {
    /// Whether a key of this role may act as `role`.
    func grants(_ role: KeyRole) -> Bool {
        self == role || (self == .admin && role == .client)
    }
}
