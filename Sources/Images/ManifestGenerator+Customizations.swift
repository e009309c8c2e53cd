import Foundation
import Manifest
import StageOptions

// The blueprint's customizations that shape the tree beyond users and
// services: kernel, locale and keyboard, NTP, firewall, repositories,
// certificates, sshd, files and directories, first-boot scripts.
extension ManifestGenerator {
    /// Packages the customizations need (locales, console-setup, timesyncd,
    /// nftables, openssh-server; the kernel of `[customizations.kernel] name`),
    /// each with the customization that needs it.
    static func customizationPackageReasons(_ request: ImageRequest) -> [(String, String)] {
        let c = request.blueprint.customizations
        var p: [(String, String)] = []
        if let languages = c.locale?.languages, languages.contains(where: { !SystemLocaleNames.builtIn.contains($0) }) {
            p.append(("locales", "[customizations.locale] languages"))
        }
        if c.locale?.keyboard != nil { p.append(("console-setup", "[customizations.locale] keyboard")) }
        if !c.ntpServers.isEmpty { p.append(("systemd-timesyncd", "[customizations.timezone] ntpservers")) }
        if c.firewall != nil, !usesFirewalld(request) { p.append(("nftables", "[customizations.firewall] without firewalld")) }
        if c.sshd != nil { p.append(("openssh-server", "[customizations.sshd]")) }
        if request.imageType.isDisk, let kernel = c.kernel?.name { p.append((kernel, "[customizations.kernel] name")) }
        return p
    }

    /// The firewall is firewalld's when the blueprint installs firewalld, else a native nftables ruleset.
    static func usesFirewalld(_ request: ImageRequest) -> Bool {
        request.blueprint.packageNames.contains("firewalld")
    }

    /// `[[customizations.repositories]]` as apt sources: those the depsolve uses (`install_from`),
    /// or with `all` every one (what the image gets).
    static func extraSources(_ request: ImageRequest, all: Bool = false) -> [Distro.ExtraSource] {
        request.blueprint.customizations.repositories.filter { all || $0.installFrom }.map { r in
            Distro.ExtraSource(
                id: r.id, uris: r.baseURLs, suites: r.suites.isEmpty ? [request.distro.codename] : r.suites,
                components: r.components, key: r.gpgKeys.isEmpty ? nil : r.gpgKeys.joined(separator: "\n"),
                trusted: !r.gpgCheck, priority: r.priority)
        }
    }

    /// Services the customizations bring along.
    static func customizationServices(_ request: ImageRequest) -> [String] {
        let c = request.blueprint.customizations
        var s: [String] = []
        if !c.ntpServers.isEmpty { s.append("systemd-timesyncd.service") }
        if c.firewall != nil { s.append(usesFirewalld(request) ? "firewalld.service" : "nftables.service") }
        if !c.firstBoot.isEmpty { s.append(FirstBootNames.unit) }
        return s
    }

    /// Checks what the parser cannot: ports in either back end, names
    /// against Kiln's service table when nftables is the firewall, zone
    /// names as firewalld can create them when it is firewalld.
    static func validateCustomizations(_ request: ImageRequest) throws(BlueprintError) {
        let bp = request.blueprint
        guard let fw = bp.customizations.firewall else { return }
        let path = "customizations.firewall"
        for (i, port) in fw.ports.enumerated() {
            if case .failure(let failure) = FirewallServices.parse(port) {
                throw bp.origin.error("\(path).ports[\(i)]", .invalid(reason: failure.reason))
            }
        }
        if usesFirewalld(request) {
            for (i, zone) in fw.zones.enumerated() where zone.name.count > 17 {
                throw bp.origin.error(
                    "\(path).zones[\(i)].name",
                    .invalid(reason: "firewalld zone names have at most 17 characters; \"\(zone.name)\" has \(zone.name.count)"))
            }
            return
        }
        for (i, name) in (fw.enabledServices + fw.disabledServices).enumerated() where FirewallServices.ports[name] == nil {
            let list = i < fw.enabledServices.count ? "enabled" : "disabled"
            let index = i < fw.enabledServices.count ? i : i - fw.enabledServices.count
            throw bp.origin.error(
                "\(path).services.\(list)[\(index)]",
                .invalid(
                    reason:
                        "unknown service \"\(name)\"; Kiln's nftables firewall knows \(FirewallServices.ports.keys.sorted().joined(separator: ", ")); give the port instead (e.g. \"8080:tcp\") or install firewalld"
                ))
        }
        for (i, zone) in fw.zones.enumerated() where !["trusted", "drop", "block", "public"].contains(zone.name) {
            throw bp.origin.error(
                "\(path).zones[\(i)].name",
                .invalid(
                    reason:
                        "zone \"\(zone.name)\" needs firewalld; without it Kiln's nftables firewall has the zones trusted (accept), drop and block (drop) and public (the default rules); add firewalld to [[packages]] or use one of those"
                ))
        }
    }

    /// Stages for the customizations, in the order they must run (after users and groups).
    static func customizationStages(_ request: ImageRequest) -> [ManifestStage] {
        let c = request.blueprint.customizations
        var stages: [ManifestStage] = []
        if !c.caCerts.isEmpty {
            stages.append(ManifestStage(CACertsOptions(certs: c.caCerts)))
        }
        if let sshd = c.sshd, !sshd.config.isEmpty {
            stages.append(ManifestStage(SSHDConfigOptions(settings: sshd.config.map { .init(keyword: $0.0, value: $0.1) })))
        }
        if let fw = c.firewall { stages.append(firewallStage(request, fw)) }
        if !c.directories.isEmpty || !c.files.isEmpty {
            func mode(_ m: UInt32?) -> String? { m.map { String(format: "%04o", $0) } }
            stages.append(
                ManifestStage(
                    FilesOptions(
                        directories: nonEmpty(
                            c.directories.map { d in
                                .init(path: d.path, mode: mode(d.mode), user: d.user, group: d.group, parents: d.ensureParents ? true : nil)
                            }),
                        files: nonEmpty(
                            c.files.map { f in
                                .init(path: f.path, mode: mode(f.mode), user: f.user, group: f.group, data: Data(f.data.utf8).base64EncodedString())
                            }))))
        }
        if !c.firstBoot.isEmpty {
            stages.append(
                ManifestStage(
                    FirstBootOptions(
                        scripts: c.firstBoot.map { s in
                            .init(name: s.name, contents: s.contents, ignoreFailure: s.ignoreFailure)
                        })))
        }
        return stages
    }

    static func firewallStage(_ request: ImageRequest, _ fw: Blueprint.Firewall) -> ManifestStage {
        if usesFirewalld(request) {
            // Numbers: a port name means what Kiln's table says, not what the image's /etc/services says.
            let ports = fw.ports.compactMap { p -> String? in
                guard case .success(let port) = FirewallServices.parse(p) else { return nil }
                return (port.from == port.to ? "\(port.from)" : "\(port.from)-\(port.to)") + ":" + port.proto
            }
            return ManifestStage(
                FirewallOptions(
                    ports: nonEmpty(ports), enabledServices: nonEmpty(fw.enabledServices), disabledServices: nonEmpty(fw.disabledServices),
                    zones: nonEmpty(fw.zones.map { .init(name: $0.name, sources: $0.sources) })))
        }
        // firewalld's default zone lets ssh and dhcpv6-client in; so does Kiln's ruleset unless disabled.
        let services = (FirewallServices.defaults + fw.enabledServices).filter { !fw.disabledServices.contains($0) }
        var ports: [FirewallServices.Port] = services.flatMap { FirewallServices.ports[$0] ?? [] }
        for p in fw.ports { if case .success(let parsed) = FirewallServices.parse(p) { ports.append(parsed) } }
        var seen = Set<String>()
        ports = ports.filter { seen.insert("\($0.proto)/\($0.from)-\($0.to)").inserted }
        let trusted = fw.zones.filter { $0.name == "trusted" }.flatMap(\.sources)
        let blocked = fw.zones.filter { $0.name == "drop" || $0.name == "block" }.flatMap(\.sources)
        return ManifestStage(
            NftablesOptions(
                ports: ports.map { .init(protocol: $0.proto, from: $0.from, to: $0.to) },
                trusted: nonEmpty(trusted), blocked: nonEmpty(blocked)))
    }
}

/// Locales every tree has without `locales`.
enum SystemLocaleNames {
    static let builtIn: Set<String> = ["C", "C.UTF-8", "C.utf8", "POSIX"]
}

enum FirstBootNames {
    static let unit = "kiln-first-boot.service"
}

/// The firewalld service names Kiln's nftables firewall understands, with
/// firewalld's ports for them, and the parsing of `PORT:PROTO` entries.
enum FirewallServices {
    struct Port: Equatable, Sendable {
        var proto: String
        var from: Int
        var to: Int
    }

    static let defaults = ["ssh", "dhcpv6-client"]

    static func tcp(_ p: Int...) -> [Port] { p.map { Port(proto: "tcp", from: $0, to: $0) } }
    static func udp(_ p: Int...) -> [Port] { p.map { Port(proto: "udp", from: $0, to: $0) } }

    static let ports: [String: [Port]] = [
        "ssh": tcp(22), "http": tcp(80), "https": tcp(443), "http3": udp(443), "dns": tcp(53) + udp(53),
        "dhcp": udp(67), "dhcpv6-client": udp(546), "ntp": udp(123), "mdns": udp(5353), "smtp": tcp(25),
        "smtps": tcp(465), "smtp-submission": tcp(587), "imap": tcp(143), "imaps": tcp(993), "pop3": tcp(110),
        "pop3s": tcp(995), "ldap": tcp(389), "ldaps": tcp(636), "mysql": tcp(3306), "postgresql": tcp(5432),
        "redis": tcp(6379), "nfs": tcp(2049), "samba": tcp(139, 445) + udp(137, 138), "rdp": tcp(3389),
        "vnc-server": [Port(proto: "tcp", from: 5900, to: 5903)], "wireguard": udp(51820),
        "prometheus": tcp(9090), "prometheus-node-exporter": tcp(9100), "cockpit": tcp(9090),
        "kerberos": tcp(88) + udp(88), "syslog": udp(514), "snmp": udp(161), "git": tcp(9418),
    ]

    /// Port names accepted in `PORT:PROTO` besides numbers (the /etc/services names of the table above).
    static let portNames: [String: Int] = [
        "ssh": 22, "http": 80, "https": 443, "domain": 53, "smtp": 25, "imap": 143, "imaps": 993, "pop3": 110,
        "pop3s": 995, "ldap": 389, "ldaps": 636, "mysql": 3306, "postgresql": 5432, "ntp": 123, "submission": 587,
        "rdp": 3389, "ms-wbt-server": 3389, "http-alt": 8080, "git": 9418, "syslog": 514, "snmp": 161,
    ]

    /// `22:tcp`, `8000-8080:udp`, `https:tcp`.
    static func parse(_ entry: String) -> Result<Port, ParseFailure> {
        let fix = "use PORT:PROTOCOL, FROM-TO:PROTOCOL or NAME:PROTOCOL with tcp or udp, e.g. \"8080:tcp\" or \"60000-61000:udp\""
        let parts = entry.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, ["tcp", "udp"].contains(parts[1]) else { return .failure(.init("\"\(entry)\" is not a port; \(fix)")) }
        let range = parts[0].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        func number(_ s: String) -> Int? { Int(s) ?? portNames[s] }
        guard (1...2).contains(range.count), let from = number(range[0]), let to = number(range.last!),
            (1...65535).contains(from), (from...65535).contains(to)
        else {
            return .failure(
                .init("\"\(entry)\" is not a port; ports are 1 to 65535 (names: \(portNames.keys.sorted().joined(separator: ", "))); \(fix)"))
        }
        return .success(Port(proto: parts[1], from: from, to: to))
    }

    struct ParseFailure: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }
}
