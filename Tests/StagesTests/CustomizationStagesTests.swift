import Foundation
import KilnTestSupport
import Testing
@testable import Stages

/// The stages behind the blueprint's customizations, on small fake trees
/// (programs that must run inside a real tree are covered by the
/// kitchen-sink system test).
struct CustomizationStagesTests {
    func accountsTree() throws -> TreeStageFixture {
        let f = try AccountStagesTests().baseTree()
        try f.write("/etc/passwd", AccountStagesTests.passwd + "alice:x:2001:2001::/home/alice:/bin/bash\n")
        try f.write("/etc/group", AccountStagesTests.group + "developers:x:2001:alice\n")
        return f
    }

    func stat(_ path: String) -> (uid: Int, gid: Int, mode: Int)? {
        guard let a = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        return ((a[.ownerAccountID] as? Int) ?? -1, (a[.groupOwnerAccountID] as? Int) ?? -1, (a[.posixPermissions] as? Int) ?? -1)
    }

    @Test func filesAndDirectoriesGetOwnerAndModeByName() async throws {
        let f = try accountsTree()
        defer { f.remove() }
        try FileManager.default.createDirectory(atPath: f.tree + "/srv", withIntermediateDirectories: true)
        try await TreeFileTree().run(.init(
            directories: [.init(path: "/srv/data", mode: "2770", user: "alice", group: "developers"),
                          .init(path: "/opt/a/b/c", parents: true)],
            files: [.init(path: "/srv/data/README", mode: "0640", user: "alice", group: "2001", data: Data("hi\n".utf8).base64EncodedString()),
                    .init(path: "/etc/sudoers.d/alice", mode: "0440", data: Data("x\n".utf8).base64EncodedString())]), in: f.context)
        #expect(stat(f.tree + "/srv/data")! == (2001, 2001, 0o2770))
        #expect(stat(f.tree + "/opt/a/b/c")! == (0, 0, 0o755))
        #expect(stat(f.tree + "/srv/data/README")! == (2001, 2001, 0o640))
        #expect(f.read("/srv/data/README") == "hi\n")
        #expect(stat(f.tree + "/etc/sudoers.d/alice")! == (0, 0, 0o440))
    }

    @Test func filesRefuseSymlinksUnknownOwnersAndMissingParents() async throws {
        let f = try accountsTree()
        defer { f.remove() }
        try FileManager.default.createSymbolicLink(atPath: f.tree + "/escape", withDestinationPath: "/tmp")
        let data = Data("x".utf8).base64EncodedString()
        await #expect(throws: StageError.self) {
            try await TreeFileTree().run(.init(files: [.init(path: "/escape/kiln-should-not-exist", data: data)]), in: f.context)
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/kiln-should-not-exist"), "nothing written outside the tree")
        do {
            try await TreeFileTree().run(.init(files: [.init(path: "/etc/x", user: "mallory", data: data)]), in: f.context)
            Issue.record("an unknown user must fail")
        } catch let e as StageError {
            #expect("\(e)".contains("mallory"))
        }
        await #expect(throws: StageError.self) {
            try await TreeFileTree().run(.init(directories: [.init(path: "/no/such/parent")]), in: f.context)
        }
    }

    /// A parent listed after its child, without `parents`, is still made first.
    @Test func directoriesAreMadeParentFirst() async throws {
        let f = try accountsTree()
        defer { f.remove() }
        try await TreeFileTree().run(.init(directories: [.init(path: "/srv/app/data", mode: "0700"),
                                                         .init(path: "/srv/app", mode: "0750", user: "alice"),
                                                         .init(path: "/srv")]), in: f.context)
        #expect(stat(f.tree + "/srv/app")! == (2001, 0, 0o750))
        #expect(stat(f.tree + "/srv/app/data")! == (0, 0, 0o700))
    }

    /// Two certificates and a bundle of two become four files of one certificate
    /// each, and `openssl rehash` (what update-ca-certificates runs) links every one.
    @Test func caCertsOneFilePerCertificate() async throws {
        let f = try TreeStageFixture(stageType: CACerts.type)
        defer { f.remove() }
        var pems: [String] = []
        for name in ["a", "b", "c", "d"] {
            let made = try await runChild("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                                               "-nodes", "-keyout", "/dev/null", "-subj", "/CN=Kiln test CA \(name)", "-days", "1"])
            try #require(made.status == 0, "\(made.errors)")
            pems.append(made.output)
        }
        try CACerts.write([pems[0], pems[1], "Kiln test bundle\n" + pems[2] + pems[3]], in: f.tree)
        let directory = f.tree + CACerts.directory
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(files == ["kiln-1.crt", "kiln-2.crt", "kiln-3.crt", "kiln-4.crt"])
        for (i, pem) in pems.enumerated() { #expect(f.read("\(CACerts.directory)/kiln-\(i + 1).crt") == pem) }
        let rehash = try await runChild("/usr/bin/openssl", ["rehash", directory], mergeErrors: true)
        #expect(rehash.status == 0, "\(rehash.output)")
        let links = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".0") }
        #expect(links.count == 4, "a hash link per certificate: \(links), \(rehash.output)")
        #expect(throws: StageError.self) { try CACerts.write(["not a certificate"], in: f.tree) }
    }

    @Test func nftablesRulesetIsValidForNft() async throws {
        let f = try TreeStageFixture(stageType: Nftables.type)
        defer { f.remove() }
        try await Nftables().run(.init(ports: [.init(protocol: "tcp", from: 22, to: 22), .init(protocol: "udp", from: 60000, to: 60010)],
                                       trusted: ["192.0.2.0/24", "2001:db8::/32"], blocked: ["198.51.100.7"]), in: f.context)
        let rules = try #require(f.read("/etc/nftables.conf"))
        #expect(rules.contains("policy drop;"))
        #expect(rules.contains("tcp dport 22 accept"))
        #expect(rules.contains("udp dport 60000-60010 accept"))
        #expect(rules.contains("ip6 saddr 2001:db8::/32 accept"))
        #expect(rules.range(of: "198.51.100.7")!.lowerBound < rules.range(of: "192.0.2.0/24")!.lowerBound, "blocked before trusted")
        // nft itself checks the ruleset (parse and evaluate, nothing loaded).
        let check = try await runChild("/usr/sbin/nft", ["-c", "-f", f.tree + "/etc/nftables.conf"], mergeErrors: true)
        #expect(check.status == 0, "nft -c: \(check.output)")
        await #expect(throws: StageError.self) {
            try await Nftables().run(.init(ports: [.init(protocol: "sctp", from: 1, to: 1)]), in: f.context)
        }
    }

    @Test func extraAptRepositoriesWithKeyPinAndEnabledFlag() async throws {
        let f = try TreeStageFixture()
        defer { f.remove() }
        let key = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ...\n-----END PGP PUBLIC KEY BLOCK-----"
        try await AptSources().run(.init(sources: [.init(uris: ["http://deb.debian.org/debian"], suites: ["bookworm"], components: ["main"])],
                                         extra: [.init(id: "tools", uris: ["https://apt.example.org/debian"], suites: ["stable"],
                                                       components: ["main", "contrib"], key: key,
                                                       preferences: "Package: *\nPin: origin \"apt.example.org\"\nPin-Priority: 100\n"),
                                                 .init(id: "local", uris: ["file:///srv/repo"], suites: ["./"], trusted: true, enabled: false)]),
                                   in: f.context)
        #expect(f.read("/etc/apt/sources.list.d/tools.sources") == """
            Types: deb
            URIs: https://apt.example.org/debian
            Suites: stable
            Components: main contrib
            Signed-By: /etc/apt/keyrings/tools.asc

            """)
        #expect(f.read("/etc/apt/keyrings/tools.asc") == key + "\n")
        #expect(f.read("/etc/apt/preferences.d/tools.pref") == "Package: *\nPin: origin \"apt.example.org\"\nPin-Priority: 100\n")
        #expect(f.read("/etc/apt/sources.list.d/local.sources")?.contains("Trusted: yes\nEnabled: no\n") == true)
        await #expect(throws: StageError.self) {
            try await AptSources().run(.init(sources: [], extra: [.init(id: "../x", uris: ["http://a"], suites: ["s"], trusted: true)]), in: f.context)
        }
        await #expect(throws: StageError.self) {
            try await AptSources().run(.init(sources: [], extra: [.init(id: "nokey", uris: ["http://a"], suites: ["s"])]), in: f.context)
        }
    }

    /// bookworm's and trixie's `locales` link /etc/default/locale to ../locale.conf and restore
    /// the link at boot: the language must go into locale.conf, the link must stay.
    @Test func localeWritesThroughTheLocaleConfLink() async throws {
        let f = try TreeStageFixture()
        defer { f.remove() }
        try f.write("/etc/locale.conf", "#  File generated by update-locale\n")
        try TreeFiles.symlink("../locale.conf", at: "/etc/default/locale", in: f.tree)
        try await SystemLocale().run(.init(language: "C.UTF-8"), in: f.context)
        #expect(f.read("/etc/locale.conf") == "LANG=C.UTF-8\n")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: f.tree + "/etc/default/locale") == "../locale.conf")
    }

    @Test func usersExpiryAndForcedPasswordChange() async throws {
        let f = try AccountStagesTests().baseTree()
        defer { f.remove() }
        try await Users().run(.init(users: ["bob": .init(expiredate: 30000, forcePasswordReset: true)]), in: f.context)
        let shadow = try #require(AccountStagesTests().line(f, "/etc/shadow", "bob"))
        #expect(shadow[2] == "0" && shadow[7] == "30000")
    }

    @Test func smallConfigurationStages() async throws {
        let f = try TreeStageFixture()
        defer { f.remove() }
        try f.write("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\n")
        try f.write("/etc/ssh/ssh_host_ed25519_key", "private")
        try f.write("/etc/ssh/ssh_host_ed25519_key.pub", "public")
        try await SSHDConfig().run(.init(settings: [.init(keyword: "PasswordAuthentication", value: "no")]), in: f.context)
        #expect(f.read("/etc/ssh/sshd_config.d/50-kiln.conf")?.contains("\nPasswordAuthentication no\n") == true)
        await #expect(throws: StageError.self) {
            try await SSHDConfig().run(.init(settings: [.init(keyword: "Match", value: "all\nPermitRootLogin yes")]), in: f.context)
        }
        try await SSHHostKeys().run(.init(), in: f.context)
        #expect(f.read("/etc/ssh/ssh_host_ed25519_key") == nil && f.read("/etc/ssh/ssh_host_ed25519_key.pub") == nil)
        #expect(f.read("/etc/systemd/system/kiln-ssh-keygen.service")?.contains("ExecStart=/usr/bin/ssh-keygen -A") == true)

        try await Keymap().run(.init(keymap: "fr-latin9"), in: f.context)
        #expect(f.read("/etc/default/keyboard")?.contains("XKBLAYOUT=\"fr\"\nXKBVARIANT=\"latin9\"") == true)
        #expect(f.read("/etc/vconsole.conf") == "KEYMAP=fr-latin9\n")
        try await Timesyncd().run(.init(servers: ["ntp.example.org", "192.0.2.1"]), in: f.context)
        #expect(f.read("/etc/systemd/timesyncd.conf.d/50-kiln.conf")?.contains("[Time]\nNTP=ntp.example.org 192.0.2.1\n") == true)

        try await FirstBoot().run(.init(scripts: [.init(name: "one", contents: "echo one"), .init(name: "two", contents: "#!/bin/bash\nfalse", ignoreFailure: true)]), in: f.context)
        #expect(f.read("/usr/local/lib/kiln/first-boot/01-one") == "#!/bin/sh\necho one\n")
        let runner = try #require(f.read("/usr/local/lib/kiln/first-boot/run"))
        #expect(runner.range(of: "01-one")!.lowerBound < runner.range(of: "02-two")!.lowerBound)
        #expect(runner.contains("02-two failed (ignored)"))
        #expect(f.read("/etc/systemd/system/kiln-first-boot.service")?.contains("ConditionPathExists=!/var/lib/kiln/first-boot.done") == true)
    }

    /// The first-boot runner really runs the scripts in order, honours ignore_failure and leaves its stamp
    /// (run here with the host's sh against a scratch root).
    @Test func firstBootRunnerRunsScriptsInOrder() async throws {
        let f = try TreeStageFixture()
        defer { f.remove() }
        try await FirstBoot().run(.init(scripts: [
            .init(name: "a", contents: "echo a >> \"$OUT\""), .init(name: "b", contents: "exit 3", ignoreFailure: true),
            .init(name: "c", contents: "echo c >> \"$OUT\""),
        ]), in: f.context)
        // Point the runner at the tree instead of /.
        let runner = try #require(f.read("/usr/local/lib/kiln/first-boot/run"))
            .replacingOccurrences(of: "/usr/local/lib/kiln/first-boot/", with: f.tree + "/usr/local/lib/kiln/first-boot/")
            .replacingOccurrences(of: "/var/lib/kiln", with: f.tree + "/var/lib/kiln")
        try f.write("/runner", runner, mode: 0o755)
        let out = f.root + "/out"
        let r = try await runChild("/bin/sh", [f.tree + "/runner"], environment: ["OUT": out], mergeErrors: true)
        #expect(r.status == 0, "\(r.output)")
        #expect((try? String(contentsOfFile: out, encoding: .utf8)) == "a\nc\n")
        #expect(FileManager.default.fileExists(atPath: f.tree + "/var/lib/kiln/first-boot.done"))
    }
}
