import Foundation
import StageOptions

/// firewalld's permanent configuration, written with the tree's
/// `firewall-offline-cmd` (osbuild's `org.osbuild.firewall` options).
package struct Firewalld: Stage {
    package typealias Options = FirewallOptions
    package typealias Zone = FirewallOptions.Zone
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        guard TreeFiles.exists("/usr/bin/firewall-offline-cmd", in: context.tree) else {
            throw StageError.treeInconsistent(reason: "\(Self.type): the tree has no firewall-offline-cmd; add the firewalld package")
        }
        let ports = try (options.ports ?? []).map(Self.port)
        let services = (options.enabledServices ?? []) + (options.disabledServices ?? [])
        for name in services { try Self.checkName(name) }
        for zone in [options.defaultZone].compactMap({ $0 }) + (options.zones ?? []).map(\.name) {
            try Self.checkName(zone)
            guard zone.count <= 17 else {
                throw StageError.invalidOptions(reason: "\(Self.type): zone \"\(zone)\" is longer than firewalld's 17 characters")
            }
        }
        for source in (options.zones ?? []).flatMap({ $0.sources ?? [] }) {
            guard !source.isEmpty, source.count <= 128,
                source.allSatisfy({ $0.isASCII && ($0.isHexDigit || ".:/".contains($0)) })
            else {
                throw StageError.invalidOptions(reason: "\(Self.type): zone source \"\(source)\" is not an IP address, network or MAC address")
            }
        }
        let sandbox = Sandbox(tree: context.tree, commands: context.commands)
        func tool(_ args: [String]) async throws -> String { try await sandbox.output(["firewall-offline-cmd"] + args) }
        for call in try await Self.calls(
            options, ports: ports, zones: { try await tool(["--get-zones"]) },
            defaultZone: { try await tool(["--get-default-zone"]) },
            services: { try await tool(["--get-services"]) })
        {
            try await sandbox.run(["firewall-offline-cmd"] + call)
        }
    }

    /// The tool's calls, in a fixed order: zones that do not exist yet, the
    /// default zone, each zone's sources, ports, services to enable, services
    /// to remove.
    /// `firewall-offline-cmd` takes one kind of change per call (ports and
    /// services together are refused, `--set-default-zone` stands alone), so
    /// each kind is a call of its own, with all of its values.
    static func calls(
        _ options: Options, ports: [String], zones: () async throws -> String,
        defaultZone: () async throws -> String, services: () async throws -> String
    ) async throws -> [[String]] {
        var calls: [[String]] = []
        let wanted = (options.zones ?? []).map(\.name) + [options.defaultZone].compactMap { $0 }
        let existing = wanted.isEmpty ? [] : Set(try await zones().split(whereSeparator: \.isWhitespace).map(String.init))
        var created = Set<String>()
        for zone in wanted where !existing.contains(zone) && created.insert(zone).inserted {
            calls.append(["--new-zone=\(zone)"])
        }
        // Setting the zone that already is the default fails (ZONE_ALREADY_SET).
        if let zone = options.defaultZone,
            try await defaultZone().trimmingCharacters(in: .whitespacesAndNewlines) != zone
        {
            calls.append(["--set-default-zone=\(zone)"])
        }
        for z in options.zones ?? [] {
            var seen = Set<String>()
            let sources = (z.sources ?? []).filter { seen.insert($0).inserted }
            if !sources.isEmpty { calls.append(["--zone=\(z.name)"] + sources.map { "--add-source=\($0)" }) }
        }
        func unique(_ list: [String]) -> [String] {
            var seen = Set<String>()
            return list.filter { seen.insert($0).inserted }
        }
        let enable = unique(options.enabledServices ?? [])
        let disable = unique(options.disabledServices ?? [])
        if !enable.isEmpty || !disable.isEmpty {
            // An unknown service fails the whole call with INVALID_SERVICE; name it here instead.
            let known = Set(try await services().split(whereSeparator: \.isWhitespace).map(String.init))
            for name in enable where !known.contains(name) {
                throw StageError.invalidOptions(
                    reason:
                        "\(type): firewalld in this tree has no service \"\(name)\"; its services are \(known.sorted().joined(separator: " ")); give the port instead (\"8080:tcp\")"
                )
            }
        }
        if !ports.isEmpty { calls.append(unique(ports).map { "--add-port=\($0)" }) }
        if !enable.isEmpty { calls.append(enable.map { "--add-service=\($0)" }) }
        // `--remove-service` is a lokkit option that cannot be mixed with others; this one is per zone.
        if !disable.isEmpty { calls.append(disable.map { "--remove-service-from-zone=\($0)" }) }
        return calls
    }

    /// `PORT:PROTO` or `FROM-TO:PROTO` (the manifest's form, as in osbuild) in
    /// firewalld's own form, `PORT/PROTO`. Every value is checked here: the
    /// tool skips a bad port with a warning when another in the same call is good.
    static func port(_ entry: String) throws -> String {
        let parts = entry.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let protocols = ["tcp", "udp", "sctp", "dccp"]
        let fail = StageError.invalidOptions(
            reason:
                "\(type): port \"\(entry)\" is not PORT:PROTOCOL or FROM-TO:PROTOCOL with a port from 1 to 65535 (or a service name such as https) and one of \(protocols.joined(separator: ", "))"
        )
        guard parts.count == 2, protocols.contains(parts[1]) else { throw fail }
        let digits = { (t: String) in !t.isEmpty && t.count <= 5 && t.allSatisfy { $0.isASCII && $0.isNumber } }
        let range = parts[0].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        if (1...2).contains(range.count), range.allSatisfy(digits) {
            let n = range.map { Int($0)! }
            guard n.allSatisfy({ (1...65535).contains($0) }), n.first! <= n.last! else { throw fail }
        } else {
            // A service name from the tree's /etc/services, such as `https` or `http-alt`.
            let name = parts[0]
            guard name.count <= 32, let first = name.first, first.isASCII, first.isLetter,
                name.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") })
            else { throw fail }
        }
        return "\(parts[0])/\(parts[1])"
    }

    /// Service and zone names: letters, digits, '-' and '_', as firewalld's own files are named (`RH-Satellite-6`, `0-AD`).
    static func checkName(_ name: String) throws {
        guard !name.isEmpty, name.count <= 64, !name.hasPrefix("-"),
            name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_".contains($0)) })
        else {
            throw StageError.invalidOptions(reason: "\(type): \"\(name)\" is not a firewalld service or zone name (letters, digits, '-', '_')")
        }
    }
}
