import Foundation
import StageOptions

/// A host firewall without firewalld: `/etc/nftables.conf`, loaded at boot by
/// Debian's `nftables.service`. Incoming traffic is dropped unless it belongs
/// to an established connection, comes from loopback, is ICMP, comes from a
/// trusted source, or goes to an allowed port; blocked sources are dropped
/// before anything else. Outgoing traffic is not filtered (firewalld's
/// default zone behaves the same way).
package struct Nftables: Stage {
    package typealias Options = NftablesOptions
    package typealias Port = NftablesOptions.Port
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        try TreeFiles.write(try Self.ruleset(options), to: "/etc/nftables.conf", in: context.tree, mode: 0o755)
    }

    static func ruleset(_ options: Options) throws -> String {
        for p in options.ports {
            guard ["tcp", "udp"].contains(p.protocol), (1...65535).contains(p.from), (p.from...65535).contains(p.to) else {
                throw StageError.invalidOptions(reason: "\(type): port \(p.from)-\(p.to)/\(p.protocol) is not a tcp/udp port or range within 1-65535")
            }
        }
        func addresses(_ list: [String]) throws -> (v4: [String], v6: [String]) {
            var v4: [String] = [], v6: [String] = []
            for a in list {
                guard !a.isEmpty, a.allSatisfy({ $0.isHexDigit || ".:/".contains($0) }) else {
                    throw StageError.invalidOptions(reason: "\(type): \"\(a)\" is not an IP address or network")
                }
                if a.contains(":") { v6.append(a) } else { v4.append(a) }
            }
            return (v4, v6)
        }
        // One rule per address and per port, in the order given, without repeats: an
        // anonymous set refuses overlapping elements ("conflicting intervals"), and a
        // ruleset nft refuses at boot leaves the machine without a firewall.
        func unique(_ list: [String]) -> [String] {
            var seen = Set<String>()
            return list.filter { seen.insert($0).inserted }
        }
        let blocked = try addresses(unique(options.blocked ?? []))
        let trusted = try addresses(unique(options.trusted ?? []))
        var rules = [
            "ct state established,related accept",
            "ct state invalid drop",
            "iif \"lo\" accept",
        ]
        rules += blocked.v4.map { "ip saddr \($0) drop" } + blocked.v6.map { "ip6 saddr \($0) drop" }
        rules += trusted.v4.map { "ip saddr \($0) accept" } + trusted.v6.map { "ip6 saddr \($0) accept" }
        rules += ["meta l4proto icmp accept", "meta l4proto ipv6-icmp accept"]
        for proto in ["tcp", "udp"] {
            let ports = unique(options.ports.filter { $0.protocol == proto }.map { $0.from == $0.to ? "\($0.from)" : "\($0.from)-\($0.to)" })
            rules += ports.map { "\(proto) dport \($0) accept" }
        }
        return """
            #!/usr/sbin/nft -f
            # Written by Kiln (blueprint [customizations.firewall]).
            flush ruleset

            table inet filter {
            \tchain input {
            \t\ttype filter hook input priority filter; policy drop;
            \(rules.map { "\t\t" + $0 }.joined(separator: "\n"))
            \t}
            \tchain forward {
            \t\ttype filter hook forward priority filter; policy drop;
            \t}
            \tchain output {
            \t\ttype filter hook output priority filter; policy accept;
            \t}
            }

            """
    }
}
