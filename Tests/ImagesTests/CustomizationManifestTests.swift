import Foundation
import Manifest
import Testing
@testable import Images

/// The kitchen-sink example blueprint, turned into a manifest with a fixed
/// package set: every customization becomes the stage and options that
/// docs/stages.md describes. (The system tests build and boot it for real.)
@Suite struct CustomizationManifestTests {
    /// Records what the generator asked the depsolve for.
    final class Recorder: PackageResolver, @unchecked Sendable {
        var names: [String] = []
        var distro: Distro?
        func resolve(_ names: [String], distro: Distro, architecture: Architecture) async throws -> [ResolvedPackage] {
            self.names = names
            self.distro = distro
            return try await FixedPackages(extra: ["openssh-server", "nftables", "locales"]).resolve(names, distro: distro, architecture: architecture)
        }
    }

    func kitchenSink(arch: String = "x86_64", type: String = "qcow2", edit: (inout Blueprint) -> Void = { _ in }) async throws
        -> (BuildManifest, Recorder) {
        var bp = try Blueprint.load(path: Fixtures.repository.appendingPathComponent("examples/blueprints/kitchen-sink.toml").path)
        edit(&bp)
        let r = try ImageRequest.make(blueprint: bp, distro: "debian-12", architecture: arch, imageType: type)
        let recorder = Recorder()
        return (try await ManifestGenerator(resolver: recorder).manifest(for: r), recorder)
    }

    func options(_ m: BuildManifest, _ type: String) throws -> [String: JSONValue] {
        try #require(m.pipeline(named: "os")?.stages.first { $0.type == type }, "no \(type)").options
    }

    @Test func depsolveGetsWhatTheCustomizationsNeed() async throws {
        let (_, rec) = try await kitchenSink()
        for name in ["locales", "console-setup", "systemd-timesyncd", "nftables", "openssh-server", "task-ssh-server", "less", "curl"] {
            #expect(rec.names.contains(name), "\(name) not depsolved: \(rec.names)")
        }
        #expect(!rec.names.contains("firewalld"))
        let extra = try #require(rec.distro?.extraSources.first)
        #expect(extra.id == "backports" && extra.suites == ["bookworm-backports"] && extra.priority == 100)
        #expect(extra.key?.hasPrefix("-----BEGIN PGP PUBLIC KEY BLOCK-----") == true && !extra.trusted)
    }

    @Test func kernelNameReplacesTheDefaultKernelAndVersionGlobsReachTheDepsolve() async throws {
        let (m, rec) = try await kitchenSink { bp in
            bp.customizations.kernel = .init(name: "linux-image-cloud-amd64", append: "quiet")
            bp.packages.append(.init(name: "tmux", version: "3.3*"))
        }
        #expect(rec.names.contains("linux-image-cloud-amd64"))
        #expect(!rec.names.contains("linux-image-amd64"))
        #expect(rec.names.contains("tmux=3.3*"))
        let cmdline = try options(m, "org.osbuild.kernel-cmdline")["kernel_opts"]?.stringValue ?? ""
        #expect(cmdline.hasSuffix(" quiet"), "\(cmdline)")
    }

    @Test func accountsLocaleTimeAndAppend() async throws {
        let (m, _) = try await kitchenSink()
        let users = try #require(options(m, "org.osbuild.users")["users"]?.objectValue)
        let alicePassword = users["alice"]?["password"]?.stringValue ?? ""
        #expect(alicePassword.hasPrefix("$6$") && alicePassword != "kiln")
        #expect(!CanonicalJSON.encode(m.json()).contains("\"kiln\""), "the clear-text password is nowhere in the manifest")
        #expect(users["bob"]?["expiredate"] == 30000)
        #expect(users["bob"]?["force_password_reset"] == true)
        #expect(try options(m, "org.osbuild.locale") == ["language": "en_US.UTF-8", "generate": ["de_DE.UTF-8"]])
        #expect(try options(m, "org.osbuild.keymap") == ["keymap": "de"])
        #expect(try options(m, "org.kiln.timesyncd") == ["servers": ["0.debian.pool.ntp.org", "1.debian.pool.ntp.org"]])
        let grub = try options(m, "org.kiln.grub2.config")["kernel_opts"]?.stringValue ?? ""
        #expect(grub.hasSuffix(" kiln.kitchen=sink mitigations=auto"), "\(grub)")
    }

    @Test func firewallBecomesAnNftablesRuleset() async throws {
        let (m, _) = try await kitchenSink()
        let fw = try options(m, "org.kiln.nftables")
        let ports = (fw["ports"]?.arrayValue ?? []).compactMap { p -> String? in
            guard let proto = p["protocol"]?.stringValue, let from = p["from"]?.int64Value, let to = p["to"]?.int64Value else { return nil }
            return from == to ? "\(from)/\(proto)" : "\(from)-\(to)/\(proto)"
        }
        #expect(Set(ports) == ["22/tcp", "80/tcp", "8080/tcp", "60000-60010/udp"], "ssh by default, http, the ports; dhcpv6-client disabled")
        #expect(fw["trusted"] == ["192.0.2.0/24"])
        let enabled = try options(m, "org.osbuild.systemd")["enabled_services"]?.arrayValue ?? []
        for unit in ["nftables.service", "systemd-timesyncd.service", "kiln-first-boot.service", "kiln-ssh-keygen.service",
                     "kiln-hello.socket", "ssh.service"] {
            #expect(enabled.contains(.string(unit)), "\(unit) not enabled")
        }
    }

    @Test func withFirewalldTheFirewallIsFirewalldsAndUnknownServicesAreFine() async throws {
        let (m, rec) = try await kitchenSink { bp in
            bp.packages.append(.init(name: "firewalld"))
            bp.customizations.firewall?.enabledServices.append("freeipa-ldap")
        }
        #expect(rec.names.contains("firewalld") && !rec.names.contains("nftables"))
        let fw = try options(m, "org.osbuild.firewall")
        #expect(fw["ports"] == ["8080:tcp", "60000-60010:udp"])
        #expect(fw["enabled_services"] == ["http", "freeipa-ldap"])
        #expect(fw["zones"] == [["name": "trusted", "sources": ["192.0.2.0/24"]]])
        #expect(m.pipeline(named: "os")?.stages.contains { $0.type == "org.kiln.nftables" } == false)
    }

    @Test func unknownFirewallServiceWithoutFirewalldNamesTheChoices() async throws {
        await #expect(throws: BlueprintError.self) {
            _ = try await kitchenSink { $0.customizations.firewall?.enabledServices.append("freeipa-ldap") }
        }
        do {
            _ = try await kitchenSink { $0.customizations.firewall?.enabledServices.append("freeipa-ldap") }
        } catch let e as BlueprintError {
            #expect(e.keyPath == "customizations.firewall.services.enabled[1]")
            #expect(e.message.contains("freeipa-ldap") && e.message.contains("https") && e.message.contains("firewalld"))
        }
    }

    @Test func filesRepositoriesCertificatesSSHDAndFirstBoot() async throws {
        let (m, _) = try await kitchenSink()
        let files = try options(m, "org.kiln.files")
        let dirs = files["directories"]?.arrayValue ?? []
        #expect(dirs.first == ["path": "/srv/data", "mode": "0770", "user": "alice", "group": "developers"])
        #expect(dirs.last == ["path": "/opt/kiln/deep/tree", "parents": true])
        let sudoers = try #require((files["files"]?.arrayValue ?? []).first { $0["path"] == "/etc/sudoers.d/alice" })
        #expect(sudoers["mode"] == "0440")
        #expect(sudoers["data"]?.stringValue.flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
            == "alice ALL=(ALL) NOPASSWD: ALL\n")
        let apt = try options(m, "org.kiln.apt.sources")
        let extra = try #require(apt["extra"]?.arrayValue?.first)
        #expect(extra["id"] == "backports" && extra["suites"] == ["bookworm-backports"])
        // Backports lives on the Debian mirror's host: pinned by suite, not by host (that would pin all of Debian).
        #expect(extra["preferences"] == "Package: *\nPin: release a=bookworm-backports\nPin-Priority: 100\n")
        #expect(extra["key"]?.stringValue?.hasPrefix("-----BEGIN PGP PUBLIC KEY BLOCK-----") == true)
        let certs = try options(m, "org.kiln.cacerts")["certs"]?.arrayValue ?? []
        #expect(certs.count == 1 && certs[0].stringValue?.hasPrefix("-----BEGIN CERTIFICATE-----") == true)
        let settings = try options(m, "org.kiln.sshd.config")["settings"]?.arrayValue ?? []
        #expect(Set(settings) == [["keyword": "PasswordAuthentication", "value": "no"], ["keyword": "ClientAliveInterval", "value": "120"]])
        let scripts = try options(m, "org.kiln.first-boot")["scripts"]?.arrayValue ?? []
        #expect(scripts.first?["name"] == "hello")
        #expect(m.pipeline(named: "os")?.stages.contains { $0.type == "org.kiln.ssh.hostkeys" } == true)
    }

    /// Stages that make files in the tree come after users and groups (owners are looked up by name)
    /// and before systemd (units they write can be enabled).
    @Test func stageOrder() async throws {
        let (m, _) = try await kitchenSink()
        let types = m.pipeline(named: "os")?.stages.map(\.type) ?? []
        func at(_ t: String) -> Int { types.firstIndex(of: t) ?? -1 }
        #expect(at("org.osbuild.users") < at("org.kiln.files"))
        #expect(at("org.osbuild.groups") < at("org.kiln.files"))
        #expect(at("org.kiln.files") < at("org.osbuild.systemd"))
        #expect(at("org.kiln.first-boot") < at("org.osbuild.systemd"))
        #expect(at("org.kiln.ssh.hostkeys") < at("org.osbuild.systemd"))
        #expect(at("org.kiln.cacerts") > at("org.kiln.debian.install"))
    }
}
