import Foundation
import KilnTestSupport
import Manifest
import Testing
@testable import Stages

/// The two firewall back ends for every combination a blueprint allows:
/// firewalld's calls (the real tool runs on real trees of both releases in
/// SystemTests' `FirewallCombinationTests`) and nftables rulesets, which the
/// host's nft checks against the kernel in a network namespace of its own.
struct FirewallStagesTests {
    typealias Options = Firewalld.Options

    /// Options as the blueprint combinations give them, and the calls firewall-offline-cmd must get.
    static let firewalldCases: [(String, Options, [[String]])] = [
        ("ports only", .init(ports: ["8000:tcp", "60000-60010:udp"]),
         [["--add-port=8000/tcp", "--add-port=60000-60010/udp"]]),
        ("services only", .init(enabledServices: ["cockpit", "ssh"]),
         [["--add-service=cockpit", "--add-service=ssh"]]),
        ("ports and services (the talk's demo)", .init(ports: ["8000:tcp"], enabledServices: ["cockpit", "ssh"]),
         [["--add-port=8000/tcp"], ["--add-service=cockpit", "--add-service=ssh"]]),
        ("enabled and disabled services", .init(enabledServices: ["http"], disabledServices: ["dhcpv6-client"]),
         [["--add-service=http"], ["--remove-service-from-zone=dhcpv6-client"]]),
        ("everything with an existing and a new zone",
         .init(ports: ["8080:tcp", "8080:tcp"], enabledServices: ["http"], disabledServices: ["dhcpv6-client"],
               zones: [.init(name: "trusted", sources: ["192.0.2.0/24", "2001:db8::/32", "192.0.2.0/24"]),
                       .init(name: "lab", sources: ["198.51.100.0/24"]), .init(name: "empty", sources: [])]),
         [["--new-zone=lab"], ["--new-zone=empty"], ["--zone=trusted", "--add-source=192.0.2.0/24", "--add-source=2001:db8::/32"],
          ["--zone=lab", "--add-source=198.51.100.0/24"], ["--add-port=8080/tcp"], ["--add-service=http"],
          ["--remove-service-from-zone=dhcpv6-client"]]),
        ("a default zone that is already the default", .init(defaultZone: "public"), []),
        ("another default zone", .init(defaultZone: "home"), [["--set-default-zone=home"]]),
    ]

    @Test(arguments: firewalldCases.indices)
    func firewalldMakesOneCallPerKindOfChange(_ i: Int) async throws {
        let (name, options, expected) = Self.firewalldCases[i]
        let ports = try (options.ports ?? []).map(Firewalld.port)
        let calls = try await Firewalld.calls(options, ports: ports,
                                              zones: { "block dmz drop external home internal public trusted work\n" },
                                              defaultZone: { "public\n" },
                                              services: { "cockpit dhcpv6-client http https ssh\n" })
        #expect(calls == expected, "\(name)")
        // The rule the tool enforces: no call mixes kinds of change, and --set-default-zone stands alone.
        for call in calls {
            let kinds = Set(call.map { $0.split(separator: "=").first.map(String.init) ?? $0 }.filter { $0 != "--zone" })
            #expect(kinds.count == 1, "\(name): \(call) mixes \(kinds.sorted())")
        }
    }

    @Test func firewalldRefusesWhatTheToolWouldSkipOrMisread() async throws {
        for bad in ["8000", "8000/tcp", "0:tcp", "70000:tcp", "9000-8000:tcp", "8000:icmp", "-K/etc/passwd:tcp", "Https:tcp", ":tcp"] {
            #expect(throws: StageError.self, "\(bad)") { try Firewalld.port(bad) }
        }
        #expect(try Firewalld.port("https:tcp") == "https/tcp")
        #expect(try Firewalld.port("1-65535:sctp") == "1-65535/sctp")
        for bad in ["", "--add-port=1/tcp", "a b", "zone/../x"] {
            #expect(throws: StageError.self, "\(bad)") { try Firewalld.checkName(bad) }
        }
        // An unknown service is named, with the services the tree's firewalld has.
        await #expect {
            _ = try await Firewalld.calls(.init(enabledServices: ["cockpitt"]), ports: [], zones: { "" }, defaultZone: { "public" },
                                          services: { "cockpit ssh" })
        } throws: { "\($0)".contains("\"cockpitt\"") && "\($0)".contains("cockpit ssh") }
    }

    /// nftables: the same combinations, each ruleset checked by nft against the kernel.
    static let nftablesCases: [(String, Nftables.Options, [String])] = [
        ("ports only", .init(ports: [.init(protocol: "tcp", from: 8000, to: 8000)]), ["tcp dport 8000 accept"]),
        ("services only (as ports)", .init(ports: [.init(protocol: "tcp", from: 22, to: 22), .init(protocol: "udp", from: 546, to: 546)]),
         ["tcp dport 22 accept", "udp dport 546 accept"]),
        ("nothing open", .init(ports: []), ["policy drop;"]),
        ("overlapping ports and repeated sources",
         .init(ports: [.init(protocol: "tcp", from: 8080, to: 8080), .init(protocol: "tcp", from: 8000, to: 8100),
                       .init(protocol: "tcp", from: 8080, to: 8080)],
               trusted: ["192.0.2.0/24", "192.0.2.0/25", "192.0.2.0/24"], blocked: ["198.51.100.7", "198.51.100.0/24"]),
         ["tcp dport 8000-8100 accept", "ip saddr 192.0.2.0/25 accept", "ip saddr 198.51.100.0/24 drop"]),
        ("IPv6 zones", .init(ports: [], trusted: ["2001:db8::/32"], blocked: ["2001:db8:1::1"]),
         ["ip6 saddr 2001:db8::/32 accept", "ip6 saddr 2001:db8:1::1 drop"]),
    ]

    @Test(arguments: nftablesCases.indices)
    func nftablesRulesetLoadsForEveryCombination(_ i: Int) async throws {
        let (name, options, expected) = Self.nftablesCases[i]
        let rules = try Nftables.ruleset(options)
        for line in expected { #expect(rules.contains(line), "\(name): no \"\(line)\" in\n\(rules)") }
        #expect(rules.components(separatedBy: "tcp dport 8080 accept").count <= 2, "\(name): a port written twice")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-nft-\(UUID().uuidString).conf").path
        try rules.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        // In a network namespace of its own, nft checks the ruleset with the kernel without touching the host's.
        let check = try await runChild("/usr/bin/unshare", ["-n", "/usr/sbin/nft", "-c", "-f", file], mergeErrors: true)
        #expect(check.status == 0, "\(name): nft -c refuses the ruleset: \(check.output)\n\(rules)")
    }
}

/// cloud-init's drop-in: PyYAML (cloud-init's own parser) reads back every
/// value as written, and `ds-identify`'s line is bare names.
struct CloudInitDropInTests {
    @Test func pyYAMLReadsBackWhatWasWritten() async throws {
        let config: [String: JSONValue] = [
            "datasource_list": .array([.string("NoCloud"), .string("ConfigDrive")]),
            "network": .object(["config": .string("disabled")]),
            "locale": .string("de_DE.UTF-8"),
            "system_info": .object(["note": .string("a \"quoted\" # not a comment\nsecond line\t\u{7F}\u{85}\u{2028}é😀\\"),
                                    "ratio": .double(1e-05), "big": .double(1e21), "count": .int(-3), "on": .bool(true), "none": .null,
                                    "list": .array([.string("yes"), .string("no"), .string("123")])]),
        ]
        let text = try CloudInit.yaml(config)
        #expect(text.contains("\ndatasource_list: [NoCloud, ConfigDrive]\n"), "the line ds-identify reads:\n\(text)")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-ci-\(UUID().uuidString).cfg").path
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1], encoding='utf-8')), sort_keys=True))"
        let r = try await runChild("/usr/bin/python3", ["-c", script, file], mergeErrors: true)
        try #require(r.status == 0, "PyYAML refuses the drop-in: \(r.output)\n\(text)")
        let back = try #require(try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any])
        #expect(back["datasource_list"] as? [String] == ["NoCloud", "ConfigDrive"])
        #expect(back["locale"] as? String == "de_DE.UTF-8")
        let info = try #require(back["system_info"] as? [String: Any])
        #expect(info["note"] as? String == "a \"quoted\" # not a comment\nsecond line\t\u{7F}\u{85}\u{2028}é😀\\")
        #expect(info["ratio"] as? Double == 1e-05, "a float, not the string \"1e-05\": \(String(describing: info["ratio"]))")
        #expect(info["big"] as? Double == 1e21)
        #expect(info["count"] as? Int == -3 && info["on"] as? Bool == true && info["none"] is NSNull)
        #expect(info["list"] as? [String] == ["yes", "no", "123"], "strings stay strings, not YAML 1.1 booleans or numbers")
        #expect((back["network"] as? [String: String]) == ["config": "disabled"])
        #expect(throws: StageError.self) { try CloudInit.yaml(["datasource_list": .array([.string("1st")])]) }
        #expect(throws: StageError.self) { try CloudInit.yaml(["datasource_list": .array([.string("No Cloud")])]) }
    }
}
