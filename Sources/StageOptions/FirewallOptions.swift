/// `org.kiln.nftables`: Kiln's own nftables ruleset (the firewall without firewalld).
package struct NftablesOptions: StageOptionsType {
    package static let stageType = "org.kiln.nftables"

    package struct Port: Codable, Sendable, Equatable {
        /// `tcp` or `udp`.
        package var `protocol`: String
        package var from: Int
        /// Equal to `from` for a single port.
        package var to: Int

        package init(protocol: String, from: Int, to: Int) {
            self.protocol = `protocol`
            self.from = from
            self.to = to
        }
    }

    package var ports: [Port]
    /// Addresses or networks (IPv4 or IPv6) whose traffic is accepted on every port.
    package var trusted: [String]?
    /// Addresses or networks whose traffic is dropped.
    package var blocked: [String]?

    package init(ports: [Port], trusted: [String]? = nil, blocked: [String]? = nil) {
        (self.ports, self.trusted, self.blocked) = (ports, trusted, blocked)
    }
}

/// `org.osbuild.firewall`: firewalld's configuration, offline.
package struct FirewallOptions: StageOptionsType {
    package static let stageType = "org.osbuild.firewall"

    package struct Zone: Codable, Sendable {
        package var name: String
        package var sources: [String]?

        package init(name: String, sources: [String]? = nil) {
            (self.name, self.sources) = (name, sources)
        }
    }

    /// `PORT:PROTO` or `FROM-TO:PROTO`.
    package var ports: [String]?
    package var enabledServices: [String]?
    package var disabledServices: [String]?
    package var defaultZone: String?
    package var zones: [Zone]?

    enum CodingKeys: String, CodingKey {
        case ports, zones
        case enabledServices = "enabled_services"
        case disabledServices = "disabled_services"
        case defaultZone = "default_zone"
    }

    package init(
        ports: [String]? = nil, enabledServices: [String]? = nil, disabledServices: [String]? = nil,
        defaultZone: String? = nil, zones: [Zone]? = nil
    ) {
        (self.ports, self.enabledServices, self.disabledServices, self.defaultZone, self.zones) = (
            ports, enabledServices, disabledServices, defaultZone, zones
        )
    }
}
