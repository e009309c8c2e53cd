import Foundation
import Manifest
import Testing
@testable import Images

/// Test data that must pass Kiln's checks: a real certificate and a real armored key.
enum BlueprintSamples {
    static let certificate = """
        -----BEGIN CERTIFICATE-----
        MIIBhTCCASugAwIBAgIUa/LkumZzaDTn8lmIZMK1s/FoOi4wCgYIKoZIzj0EAwIw
        FzEVMBMGA1UEAwwMS2lsbiBUZXN0IENBMCAXDTI2MTIwMjIxMTgzNloYDzIxMjYx
        MTA4MjExODM2WjAXMRUwEwYDVQQDDAxLaWxuIFRlc3QgQ0EwWTATBgcqhkjOPQIB
        BggqhkjOPQMBBwNCAARSoegUuXh5e3dwcQmCk6UZL+jJPsWtd4Aih284Bqw7hQrz
        eQyPqn1M/OFgWspTf8+brkaNBA5Yb7LIUehwdudNo1MwUTAdBgNVHQ4EFgQURz+t
        eorgE/mpMbd/1bjm4P4WLAEwHwYDVR0jBBgwFoAURz+teorgE/mpMbd/1bjm4P4W
        LAEwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAh6+wUqTWKtNT
        2JAZ0WUFz8s9t3Vl4HCueKY9Vyoq9fsCIALFhQ5e4u4PD2S/mwM3VU8wUHxcrXja
        5xFD/fZZT36r
        -----END CERTIFICATE-----
        """

    static let gpgKey = """
        -----BEGIN PGP PUBLIC KEY BLOCK-----

        mDMEaxCLLhYJKwYBBAHaRw8BAQdAmTOcfAzX3uDofsLIE0vo5/DWAOdWEbDS/wFt
        -----END PGP PUBLIC KEY BLOCK-----
        """
}

/// `docs/blueprint.md` against the reader: every row is a key the reader
/// knows, every key the reader knows is a row, rejected rows are rejected
/// and the others parse with a sample value.
@Suite struct BlueprintDocsTests {
    struct Row { var key: String; var status: String; var line: Int }

    static let statuses = ["supported", "Debian meaning", "rejected"]

    static let doc: String = (try? String(contentsOf: Fixtures.repository.appendingPathComponent("docs/blueprint.md"), encoding: .utf8)) ?? ""

    /// `| \`key\` | status | … |` rows of the reference tables.
    static let rows: [Row] = doc.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { i, line in
        let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard cells.count >= 4, cells[1].hasPrefix("`"), cells[1].hasSuffix("`") else { return nil }
        return Row(key: String(cells[1].dropFirst().dropLast()), status: cells[2], line: i + 1)
    }

    // MARK: samples

    static let basics = """
        description = "d"
        version = "1.0.0"
        distro = "debian-12"
        architecture = "x86_64"
        minimal = true
        [[packages]]
        name = "curl"
        version = "7.88*"
        [[modules]]
        name = "tmux"
        version = "*"
        [[groups]]
        name = "ssh-server"
        [customizations]
        hostname = "h"
        """

    static let system = """
        [customizations.kernel]
        name = "linux-image-rt-amd64"
        append = "nosmt=force"
        [customizations.timezone]
        timezone = "UTC"
        ntpservers = ["time.example.org", "192.0.2.1"]
        [customizations.locale]
        languages = ["en_US.UTF-8"]
        keyboard = "us"
        [customizations.services]
        enabled = ["ssh"]
        disabled = ["apt-daily.timer"]
        masked = ["rpcbind"]
        [customizations.cacerts]
        pem_certs = [\"\"\"\(BlueprintSamples.certificate)\"\"\"]
        """

    static let accounts = """
        [[customizations.user]]
        name = "alice"
        description = "Alice"
        password = "secret"
        key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiln alice@laptop"
        home = "/home/alice"
        shell = "/bin/bash"
        groups = ["sudo"]
        uid = 1200
        gid = 1200
        expiredate = 20454
        force_password_reset = true
        [[customizations.group]]
        name = "alice"
        gid = 1200
        [[customizations.sshkey]]
        user = "root"
        key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRoot root@admin"
        """

    static let firewall = """
        [customizations.firewall]
        ports = ["22:tcp", "8000-8080:udp", "https:tcp"]
        [customizations.firewall.services]
        enabled = ["http"]
        disabled = ["telnet"]
        [[customizations.firewall.zones]]
        name = "trusted"
        sources = ["192.0.2.0/24"]
        """

    static let filesystems = """
        [customizations]
        partitioning_mode = "auto-lvm"
        [[customizations.filesystem]]
        mountpoint = "/var"
        minsize = "2 GiB"
        [[customizations.filesystem]]
        mountpoint = "/home"
        size = 1073741824
        """

    static let disk = """
        [customizations.disk]
        type = "gpt"
        minsize = "20 GiB"
        [[customizations.disk.partitions]]
        type = "plain"
        mountpoint = "/data"
        fs_type = "xfs"
        label = "data"
        minsize = "5 GiB"
        part_type = "0fc63daf-8483-4772-8e79-3d69d8477de4"
        [[customizations.disk.partitions]]
        type = "lvm"
        name = "vg0"
        minsize = "10 GiB"
        [[customizations.disk.partitions.logical_volumes]]
        name = "root"
        mountpoint = "/"
        fs_type = "ext4"
        label = "root"
        minsize = "4 GiB"
        """

    static let files = """
        [[customizations.directories]]
        path = "/etc/app"
        user = "root"
        group = 0
        mode = "0750"
        ensure_parents = true
        [[customizations.files]]
        path = "/etc/app/app.conf"
        user = 0
        group = "root"
        mode = "0640"
        data = "x = 1"
        """

    static let repositories = """
        [[customizations.repositories]]
        id = "example"
        name = "Example"
        baseurls = ["https://deb.example.org/debian"]
        suites = ["stable"]
        components = ["main"]
        gpgkeys = [\"\"\"\(BlueprintSamples.gpgKey)\"\"\"]
        gpgcheck = true
        repo_gpgcheck = true
        sslverify = true
        enabled = true
        priority = 600
        [[customizations.repositories]]
        id = "local"
        baseurls = ["file:///srv/repo"]
        gpgcheck = false
        install_from = true
        """

    static let sshd = """
        [customizations.sshd]
        password_authentication = false
        kbd_interactive_authentication = false
        client_alive_interval = 60
        permit_root_login = "prohibit-password"
        [customizations.sshd.config]
        PubkeyAuthentication = true
        UseDNS = "no"
        """

    static let sshdOldName = """
        [customizations.sshd]
        challenge_response_authentication = false
        """

    static let firstBoot = """
        [[customizations.firstboot.scripts]]
        type = "custom"
        name = "hello"
        contents = "echo hello"
        ignore_failure = true
        """

    /// A valid sample for every row that is not rejected.
    static let samples: [String: String] = {
        var s: [String: String] = [:]
        func add(_ sample: String, _ keys: String...) { for k in keys { s[k] = sample } }
        add(basics, "name", "description", "version", "distro", "architecture", "minimal", "packages", "packages.name",
            "packages.version", "modules", "modules.name", "modules.version", "groups", "groups.name", "customizations",
            "customizations.hostname")
        let c = "customizations."
        add(system, c + "kernel", c + "kernel.name", c + "kernel.append", c + "timezone", c + "timezone.timezone",
            c + "timezone.ntpservers", c + "locale", c + "locale.languages", c + "locale.keyboard", c + "services",
            c + "services.enabled", c + "services.disabled", c + "services.masked", c + "cacerts", c + "cacerts.pem_certs")
        add(accounts, c + "user", c + "group", c + "group.name", c + "group.gid", c + "sshkey", c + "sshkey.user", c + "sshkey.key")
        for k in BlueprintKeys.supported["customizations.user"]! { add(accounts, c + "user." + k) }
        add(firewall, c + "firewall", c + "firewall.ports", c + "firewall.services", c + "firewall.services.enabled",
            c + "firewall.services.disabled", c + "firewall.zones", c + "firewall.zones.name", c + "firewall.zones.sources")
        add(filesystems, c + "filesystem", c + "filesystem.mountpoint", c + "filesystem.minsize", c + "filesystem.size",
            c + "partitioning_mode")
        add(disk, c + "disk", c + "disk.type", c + "disk.minsize", c + "disk.partitions")
        for k in BlueprintKeys.supported["customizations.disk.partitions"]! { add(disk, c + "disk.partitions." + k) }
        for k in BlueprintKeys.supported["customizations.disk.partitions.logical_volumes"]! {
            add(disk, c + "disk.partitions.logical_volumes." + k)
        }
        add(files, c + "directories", c + "files")
        for k in BlueprintKeys.supported["customizations.directories"]! { add(files, c + "directories." + k) }
        for k in BlueprintKeys.supported["customizations.files"]! { add(files, c + "files." + k) }
        add(repositories, c + "repositories")
        for k in BlueprintKeys.supported["customizations.repositories"]! { add(repositories, c + "repositories." + k) }
        add(sshd, c + "sshd", c + "sshd.config", c + "sshd.password_authentication", c + "sshd.kbd_interactive_authentication",
            c + "sshd.client_alive_interval", c + "sshd.permit_root_login")
        add(sshdOldName, c + "sshd.challenge_response_authentication")
        add(firstBoot, c + "firstboot", c + "firstboot.scripts", c + "firstboot.scripts.type", c + "firstboot.scripts.name",
            c + "firstboot.scripts.contents", c + "firstboot.scripts.ignore_failure")
        return s
    }()

    // MARK: tests

    @Test func tableHasEveryKeyOnce() throws {
        try #require(!Self.rows.isEmpty, "no table rows in docs/blueprint.md")
        var seen: [String: Int] = [:]
        for row in Self.rows {
            #expect(Self.statuses.contains(row.status), "docs/blueprint.md:\(row.line): status \"\(row.status)\"")
            #expect(seen[row.key] == nil, "docs/blueprint.md:\(row.line): \(row.key) is also at line \(seen[row.key] ?? 0)")
            seen[row.key] = row.line
        }
        let documented = Set(Self.rows.map(\.key))
        let known = BlueprintKeys.allKeyPaths
        #expect(known.subtracting(documented).sorted() == [], "keys the reader knows that docs/blueprint.md lacks")
        #expect(documented.subtracting(known).sorted() == [], "rows for keys the reader does not know")
    }

    @Test func rejectedRowsAreRejected() throws {
        let rejected = Self.rows.filter { $0.status == "rejected" }
        try #require(!rejected.isEmpty)
        for row in rejected {
            let section = row.key.split(separator: ".").dropLast().joined(separator: ".")
            let key = String(row.key.split(separator: ".").last!)
            #expect(BlueprintKeys.rejected[section]?[key] != nil, "\(row.key) is rejected in the docs but not in BlueprintKeys.rejected")
            let text = CanonicalJSON.encode(Self.document(with: row.key))
            let error = #expect(throws: BlueprintError.self, "\(row.key)") { try Blueprint.parse(json: text, file: "docs.json") }
            guard let error else { continue }
            #expect(BlueprintKeys.section(of: error.keyPath) == row.key, "\(row.key): \(error)")
            guard case .unsupported = error.problem else {
                Issue.record("\(row.key): not rejected as unsupported: \(error)")
                continue
            }
        }
    }

    @Test func otherRowsParseWithTheirSample() throws {
        for row in Self.rows where row.status != "rejected" {
            guard let sample = Self.samples[row.key] else {
                Issue.record("docs/blueprint.md:\(row.line): no sample for \(row.key); add one to BlueprintDocsTests.samples")
                continue
            }
            let text = "name = \"docs\"\n" + sample + "\n"
            do {
                let bp = try Blueprint.parse(toml: text, file: "sample.toml")
                let keys = Set(bp.origin.lines.keys.map(BlueprintKeys.section(of:)))
                #expect(keys.contains(row.key), "the sample for \(row.key) does not contain it")
            } catch {
                Issue.record("the sample for \(row.key) does not parse: \(error)")
            }
        }
        let stale = Set(Self.samples.keys).subtracting(Self.rows.filter { $0.status != "rejected" }.map(\.key))
        #expect(stale.sorted() == [], "samples for keys that are not supported rows")
    }

    @Test func examplesParse() throws {
        let blocks = Self.doc.components(separatedBy: "```toml\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
        try #require(blocks.count >= 4)
        for block in blocks {
            let topLevel = block.split(separator: "\n").prefix { !$0.hasPrefix("[") }
            let text = topLevel.contains { $0.hasPrefix("name = ") } ? block : "name = \"example\"\n" + block
            #expect(throws: Never.self, "\(block.prefix(60))") { _ = try Blueprint.parse(toml: text, file: "example.toml") }
        }
    }

    /// A JSON blueprint holding `keyPath` (with `true` as its value), arrays where the format has arrays of tables.
    static func document(with keyPath: String) -> JSONValue {
        let parts = keyPath.split(separator: ".").map(String.init)
        return .object(["name": "docs", parts[0]: wrapped(parts, 0)])
    }

    /// The value of `parts[i]`: an object holding the rest, in an array when that section is an array of tables.
    static func wrapped(_ parts: [String], _ i: Int) -> JSONValue {
        if i == parts.count - 1 { return true }
        let section = parts[0...i].joined(separator: ".")
        let inner: JSONValue = .object([parts[i + 1]: wrapped(parts, i + 1)])
        return BlueprintKeys.arraySections.contains(section) ? .array([inner]) : inner
    }
}
