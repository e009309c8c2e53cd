import Foundation
import KilnTestSupport
import Logging
import Manifest
import Testing
@testable import Images
@testable import Stages

/// examples/blueprints/demo.toml, the image-builder talk's demo on Debian,
/// built as a qcow2 for each release, then:
/// - the firewall stage runs on the built tree once for every combination a
///   blueprint allows with firewalld (ports, services, both, zones, disabled
///   services), each on a fresh overlay of that tree, and the release's own
///   `firewall-offline-cmd` reads the result back;
/// - the image boots; over SSH the unit ran after network-online.target,
///   cockpit's socket is enabled and firewalld has the port and the services;
///   from the host, port 8000 answers and port 8001 (a listener is started
///   on it) does not.
/// debian-13 runs in the x86_64 lane, debian-12 in the aarch64 lane (an
/// x86_64 build, there to even the lanes out).
extension X86ImageTests {
    @Test("x86_64 debian-13: the talk's demo builds without cloud-init (a note says why), boots, its unit ran after the network, its firewall holds",
          .tags(.boot), .tier(.ci, .boot))
    func demoTrixie() async throws {
        try await checkDemo(distro: "debian-13")
    }
}

extension AArch64ImageTests {
    @Test("x86_64 debian-12: the talk's demo builds, boots, its unit ran after the network, its firewall holds",
          .tags(.boot), .tier(.ci, .boot))
    func demoBookworm() async throws {
        try await checkDemo(distro: "debian-12")
    }
}

extension SystemImages {
    func demoBlueprint() throws -> Blueprint {
        SystemKey.adding(to: try Blueprint.load(path: Self.repository + "/examples/blueprints/demo.toml"))
    }

    func checkDemo(distro: String) async throws {
        let request = try ImageRequest.make(blueprint: demoBlueprint(), distro: distro, architecture: "x86_64", imageType: "qcow2")
        let generated = try await ManifestGenerator(resolver: Depsolver()).generate(for: request)
        if distro == "debian-13" {
            #expect(generated.notes.count == 1 && generated.notes[0].hasPrefix("cloud-init left out:"), "\(generated.notes)")
        } else {
            #expect(generated.notes.isEmpty, "bookworm's cloud-init and firewalld go together: \(generated.notes)")
        }
        let result = try await executor().run(generated.manifest, exports: ["os", "qcow2"])
        let tree = try #require(result.exports["os"])
        #expect(FileManager.default.fileExists(atPath: tree + "/usr/bin/cloud-init") == (distro == "debian-12"))

        try await firewallCombinations(tree: tree, distro: distro)

        let work = "/var/tmp/kiln-demo-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let check = Self.repository + "/Tests/SystemTests/Fixtures/demo-check.py"
        let image = try #require(result.exports["qcow2"]) + "/disk.qcow2"
        let (status, output) = try await bootTest(image, firmware: "uefi", extra: [
            "--forward", "8000", "--forward", "8001", "--run", "python3 \(check) > \(work)/facts.json",
        ])
        try #require(status == 0, "the demo (\(distro)) did not boot to running, or SSH failed:\n\(output.suffix(6000))")
        let facts = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: work + "/facts.json"))) as? [String: Any])
        func fact(_ key: String) -> String { facts[key].map { "\($0)" } ?? "<missing>" }
        #expect(fact("codename") == (try Distro.named(distro).codename))
        #expect(fact("demo_result") == "success" && fact("demo_active") == "active", "\(distro): demo.service \(fact("demo_result")) \(fact("demo_active"))")
        let started = Int(fact("demo_started")) ?? 0, online = Int(fact("network_online")) ?? .max
        #expect(online > 0 && started >= online, "\(distro): demo.service started at \(started) µs, network-online.target reached at \(online) µs")
        #expect(fact("cockpit_socket") == "enabled", "\(distro)")
        #expect(fact("firewalld") == "active", "\(distro)")
        #expect(fact("ports") == "8000/tcp", "\(distro): \(fact("ports"))")
        #expect(Set(fact("services").split(separator: " ")).isSuperset(of: ["cockpit", "ssh"]), "\(distro): \(fact("services"))")
        #expect(fact("cloud_init") == (distro == "debian-13" ? "absent" : "install ok installed"), "\(distro): \(fact("cloud_init"))")
        #expect(fact("page").hasPrefix("Hello from "), "\(distro): \(fact("page"))")
        #expect(fact("port_8000").hasPrefix("Hello from "), "\(distro): the open port answers from the host: \(fact("port_8000"))")
        #expect(fact("listener") == "answers", "\(distro): a listener on 8001 answers inside the guest: \(fact("listener"))")
        #expect(fact("port_8001").hasPrefix("closed"), "\(distro): the firewall keeps 8001 closed: \(fact("port_8001"))")
        #expect(fact("failed_units").isEmpty, "\(distro): \(fact("failed_units"))")
    }

    /// The firewall combinations a blueprint allows with firewalld, each run
    /// on an overlay of the built tree and read back with the tree's
    /// `firewall-offline-cmd`: what the blueprint asked for is what firewalld has.
    func firewallCombinations(tree: String, distro: String) async throws {
        typealias Zone = Blueprint.Firewall.Zone
        let cases: [(String, Blueprint.Firewall, ports: String, services: Set<String>, zones: [String: String])] = [
            ("ports only", .init(ports: ["8000:tcp", "60000-60010:udp", "https:tcp"]),
             "8000/tcp 60000-60010/udp 443/tcp", ["ssh", "dhcpv6-client"], [:]),
            ("services only", .init(enabledServices: ["cockpit", "http"]), "", ["ssh", "dhcpv6-client", "cockpit", "http"], [:]),
            ("ports and services", .init(ports: ["8000:tcp"], enabledServices: ["cockpit", "ssh"]),
             "8000/tcp", ["ssh", "dhcpv6-client", "cockpit"], [:]),
            ("disabled services", .init(enabledServices: ["http"], disabledServices: ["dhcpv6-client", "ftp"]),
             "", ["ssh", "http"], [:]),
            ("zones, an existing and a new one", .init(ports: ["8080:tcp"], zones: [
                Zone(name: "trusted", sources: ["192.0.2.0/24", "2001:db8::/32"]), Zone(name: "lab", sources: ["198.51.100.0/24"]),
            ]), "8080/tcp", ["ssh", "dhcpv6-client"], ["trusted": "192.0.2.0/24 2001:db8::/32", "lab": "198.51.100.0/24"]),
            ("everything", .init(ports: ["8000:tcp", "9000-9010:udp"], enabledServices: ["cockpit"], disabledServices: ["dhcpv6-client"],
                                 zones: [Zone(name: "trusted", sources: ["192.0.2.7"])]),
             "8000/tcp 9000-9010/udp", ["ssh", "cockpit"], ["trusted": "192.0.2.7"]),
        ]
        let logger = Logger(label: "systemtests.firewall")
        for (name, firewall, ports, services, zones) in cases {
            var bp = try demoBlueprint()
            bp.customizations.firewall = firewall
            let request = try ImageRequest.make(blueprint: bp, distro: distro, architecture: "x86_64", imageType: "qcow2")
            try ManifestGenerator.validate(request)
            let stage = ManifestGenerator.firewallStage(request, firewall)
            #expect(stage.type == Firewalld.type)
            let options = try JSONDecoder().decode(Firewalld.Options.self, from: Data(CanonicalJSON.encode(.object(stage.options)).utf8))

            let root = "/var/tmp/kiln-fw-\(UUID().uuidString.prefix(8))"
            for d in ["upper", "work", "merged", "scratch"] {
                try FileManager.default.createDirectory(atPath: "\(root)/\(d)", withIntermediateDirectories: true)
            }
            let merged = root + "/merged"
            _ = try await run(["mount", "-t", "overlay", "overlay", "-o",
                               "lowerdir=\(tree),upperdir=\(root)/upper,workdir=\(root)/work", merged])
            defer {
                _ = try? runBlocking(["umount", "-l", merged])
                try? FileManager.default.removeItem(atPath: root)
            }
            // Back to the package's defaults: the built tree holds the demo's own firewall (zone files only).
            for file in (try? FileManager.default.contentsOfDirectory(atPath: merged + "/etc/firewalld/zones")) ?? [] {
                try FileManager.default.removeItem(atPath: merged + "/etc/firewalld/zones/" + file)
            }
            let context = StageContext(tree: merged, inputs: [:], devices: [:], scratch: root + "/scratch", logger: logger,
                                       commands: CommandRunner(logPath: root + "/stage.log", logger: logger), stageType: Firewalld.type)
            do {
                try await Firewalld().run(options, in: context)
            } catch {
                Issue.record("\(distro) \(name): the firewall stage failed: \(error)")
                continue
            }
            func offline(_ args: [String]) async throws -> String {
                let r = try await runChild("/usr/sbin/chroot", [merged, "firewall-offline-cmd"] + args, mergeErrors: true)
                #expect(r.status == 0, "\(distro) \(name): firewall-offline-cmd \(args.joined(separator: " ")): \(r.output)")
                return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            #expect(Set(try await offline(["--list-ports"]).split(separator: " ")) == Set(ports.split(separator: " ")),
                    "\(distro) \(name): ports")
            #expect(Set(try await offline(["--list-services"]).split(separator: " ").map(String.init)) == services,
                    "\(distro) \(name): services")
            for (zone, sources) in zones {
                #expect(Set(try await offline(["--zone=\(zone)", "--list-sources"]).split(separator: " ")) == Set(sources.split(separator: " ")),
                        "\(distro) \(name): zone \(zone)")
            }
        }
    }
}
