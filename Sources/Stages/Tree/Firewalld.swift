import Foundation

/// firewalld's permanent configuration, written with the tree's
/// `firewall-offline-cmd` (osbuild's `org.osbuild.firewall` options).
package struct Firewalld: Stage {
    package static let type = "org.osbuild.firewall"
    package static let placement = Placement.tree

    package struct Zone: Codable, Sendable {
        package var name: String
        package var sources: [String]?
    }

    package struct Options: Codable, Sendable {
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
    }

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        guard TreeFiles.exists("/usr/bin/firewall-offline-cmd", in: context.tree) else {
            throw StageError.treeInconsistent(reason: "\(Self.type): the tree has no firewall-offline-cmd; add the firewalld package")
        }
        let tokens = (options.ports ?? []) + (options.enabledServices ?? []) + (options.disabledServices ?? [])
            + (options.zones ?? []).flatMap { [$0.name] + ($0.sources ?? []) } + [options.defaultZone].compactMap { $0 }
        for t in tokens where t.isEmpty || t.hasPrefix("-") || t.contains(where: \.isWhitespace) {
            throw StageError.invalidOptions(reason: "\(Self.type): \"\(t)\" is not a port, service, zone or source")
        }
        var commands: [[String]] = []
        if let zone = options.defaultZone { commands.append(["--set-default-zone=\(zone)"]) }
        for z in options.zones ?? [] {
            for s in z.sources ?? [] { commands.append(["--zone=\(z.name)", "--add-source=\(s)"]) }
        }
        var change: [String] = []
        change += (options.ports ?? []).map { "--add-port=\($0)" }
        change += (options.enabledServices ?? []).map { "--add-service=\($0)" }
        change += (options.disabledServices ?? []).map { "--remove-service=\($0)" }
        if !change.isEmpty { commands.append(change) }
        try await Chroot(tree: context.tree, commands: context.commands).with { chroot in
            for c in commands { try await chroot.run(["firewall-offline-cmd"] + c) }
        }
    }
}
