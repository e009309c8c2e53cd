import Foundation
import Manifest
import Testing
@testable import Images

@Suite struct BlueprintParsingTests {
    @Test func everyKeyTOMLBlueprint() throws {
        let bp = try Blueprint.load(path: Fixtures.path("every-key.toml"))
        #expect(bp.name == "every-key")
        #expect(bp.description == "Every key this version implements")
        #expect(bp.version == "1.2.3")
        #expect(bp.distro == "debian-12")
        #expect(bp.architecture == "x86_64")
        #expect(bp.minimal)
        #expect(bp.packages == [.init(name: "openssh-server"), .init(name: "curl"), .init(name: "libc6", version: "2.36*")])
        #expect(bp.modules == [.init(name: "tmux")])
        #expect(bp.groups == ["ssh-server"])
        #expect(bp.packageNames == ["openssh-server", "curl", "libc6", "tmux"])
        let c = bp.customizations
        #expect(c.hostname == "full-vm")
        #expect(c.kernel == .init(name: "linux-image-cloud-amd64", append: "console=ttyS0,115200 nosmt=force"))
        #expect(c.timezone == "Europe/Berlin")
        #expect(c.ntpServers == ["0.debian.pool.ntp.org", "192.0.2.123", "2001:db8::123"])
        #expect(c.locale == .init(languages: ["en_US.UTF-8", "de_DE.UTF-8"], keyboard: "de"))
        #expect(c.firewall == .init(ports: ["22:tcp", "8000-8080:udp", "https:tcp"], enabledServices: ["http", "ntp"],
                                    disabledServices: ["telnet"],
                                    zones: [.init(name: "trusted", sources: ["192.0.2.0/24", "2001:db8::/32", "10.1.2.3"])]))

        #expect(c.users.count == 2)
        let alice = try #require(c.users.first)
        #expect(alice.name == "alice")
        #expect(alice.description == "Alice Admin")
        #expect(alice.password?.hasPrefix("$6$saltsalt$") == true)
        #expect(alice.key?.hasPrefix("ssh-ed25519 ") == true)
        #expect(alice.home == "/home/alice", "a trailing '/' is dropped, as osbuild does")
        #expect(alice.shell == "/bin/bash")
        #expect(alice.groups == ["sudo", "developers"])
        #expect(alice.uid == 1200)
        #expect(alice.gid == 1300)
        #expect(alice.expireDate == 20454)
        #expect(alice.forcePasswordReset)
        var bob = Blueprint.User(name: "bob", password: "correct horse battery staple")
        bob.forcePasswordReset = false
        #expect(c.users[1] == bob, "a plain-text password is kept for the manifest generator to hash")
        #expect(c.groups == [.init(name: "developers", gid: 1300)])
        #expect(c.sshKeys.map(\.user) == ["bob", "root"])
        #expect(c.services.enabled == ["ssh.service", "systemd-timesyncd.service"])
        #expect(c.services.disabled == ["apt-daily.timer"])
        #expect(c.services.masked == ["getty@tty1.service"])

        let disk = try #require(c.disk)
        #expect(disk.type == "gpt")
        #expect(disk.minSize == 20 << 30)
        let gib: Int64 = 1 << 30
        let boot = Blueprint.FilesystemSpec(partType: "0fc63daf-8483-4772-8e79-3d69d8477de4", mountpoint: "/boot",
                                            fsType: "ext4", label: "boot", minSize: gib)
        let data = Blueprint.FilesystemSpec(mountpoint: "/data", fsType: "xfs", label: "data", minSize: 10 * gib)
        let volumes: [Blueprint.FilesystemSpec] = [
            .init(name: "rootlv", mountpoint: "/", fsType: "ext4", label: "root", minSize: 4 * gib),
            .init(name: "var_loglv", mountpoint: "/var/log", fsType: "ext4", minSize: 1536 << 20),
            .init(name: "swaplv", mountpoint: nil, fsType: "swap", minSize: 512 << 20),
        ]
        let vg = Blueprint.VolumeGroup(name: "mainvg", minSize: 8 * gib, logicalVolumes: volumes,
                                       partType: "e6d6d379-f507-44c2-a23c-238f2a3df928")
        let expected: [Blueprint.DiskPartition] = [.plain(boot), .plain(data), .lvm(vg)]
        #expect(disk.partitions == expected, "generated LV names follow the mountpoint")
        #expect(c.filesystems.isEmpty)
        #expect(c.partitioningMode == nil)

        #expect(c.directories == [
            .init(path: "/etc/myapp", user: "alice", group: "1300", mode: 0o750, ensureParents: true),
            .init(path: "/srv/data"),
        ])
        #expect(c.files == [
            .init(path: "/etc/myapp/config.ini", user: "1200", group: "developers", mode: 0o640, data: "[main]\nanswer = 42\n"),
            .init(path: "/usr/local/bin/hello", mode: 0o755, data: "#!/bin/sh\necho hello\n"),
        ])

        #expect(c.repositories.count == 2)
        let example = c.repositories[0]
        #expect(example.id == "example")
        #expect(example.name == "Example stable")
        #expect(example.baseURLs == ["https://deb.example.org/debian", "http://mirror.example.org/debian"])
        #expect(example.suites == ["bookworm", "bookworm-updates"])
        #expect(example.components == ["main", "contrib"])
        #expect(example.gpgKeys.count == 1 && example.gpgKeys[0].hasPrefix("-----BEGIN PGP PUBLIC KEY BLOCK-----"))
        #expect(example.gpgCheck && example.enabled && example.installFrom)
        #expect(example.priority == 600)
        #expect(c.repositories[1] == .init(id: "local-test", baseURLs: ["file:///srv/repo"], suites: ["./"], components: [],
                                           gpgCheck: false, installFrom: true),
                "a flat suite has no components")

        #expect(c.caCerts.count == 1 && c.caCerts[0].contains("BEGIN CERTIFICATE"))
        let sshd = try #require(c.sshd)
        #expect(sshd.config.map(\.0) == ["AllowGroups", "ClientAliveInterval", "LoginGraceTime", "MaxAuthTries",
                                        "PasswordAuthentication", "PermitRootLogin", "Port", "X11Forwarding"])
        #expect(sshd.config.map(\.1) == ["sudo developers", "300", "1m30s", "3", "no", "prohibit-password", "2222", "no"])
        #expect(c.firstBoot == [
            .init(name: "hello", contents: "#!/bin/sh\necho \"first boot\" > /var/log/hello\n"),
            .init(name: "script-2", contents: "apt-get update", ignoreFailure: true),
        ])
    }

    @Test func filesystemCustomizations() throws {
        let bp = try Blueprint.load(path: Fixtures.path("filesystems.toml"))
        #expect(bp.customizations.partitioningMode == .lvm)
        #expect(bp.customizations.filesystems == [
            .init(mountpoint: "/", minSize: 4 << 30), .init(mountpoint: "/var", minSize: 2_147_483_648),
            .init(mountpoint: "/home", minSize: 500 << 20), .init(mountpoint: "/boot", minSize: 1 << 30),
        ])
        #expect(bp.customizations.disk == nil)
    }

    @Test(arguments: ["full", "every-key", "filesystems"])
    func jsonAndTOMLGiveTheSameBlueprint(_ fixture: String) throws {
        var toml = try Blueprint.load(path: Fixtures.path("\(fixture).toml"))
        var json = try Blueprint.load(path: Fixtures.path("\(fixture).json"))
        #expect(json.origin.file.hasSuffix("\(fixture).json"))
        #expect(CanonicalJSON.encode(toml.json()) == CanonicalJSON.encode(json.json()))
        toml.origin = BlueprintOrigin()
        json.origin = BlueprintOrigin()
        #expect(toml == json)
    }

    /// `json()` feeds the request's seed: a change to any field must change it.
    @Test func everyFieldChangesTheJSON() throws {
        let base = try Blueprint.load(path: Fixtures.path("every-key.toml"))
        let changes: [(String, (inout Blueprint) -> Void)] = [
            ("name", { $0.name += "x" }), ("description", { $0.description += "x" }), ("version", { $0.version = "9.9.9" }),
            ("distro", { $0.distro = nil }), ("architecture", { $0.architecture = "aarch64" }),
            ("package version", { $0.packages[2].version = "2.37*" }), ("modules", { $0.modules = [] }),
            ("groups", { $0.groups.append("web-server") }), ("minimal", { $0.minimal = false }),
            ("hostname", { $0.customizations.hostname = nil }), ("timezone", { $0.customizations.timezone = "UTC" }),
            ("ntpservers", { $0.customizations.ntpServers.removeLast() }),
            ("kernel name", { $0.customizations.kernel?.name = nil }), ("kernel append", { $0.customizations.kernel?.append = "quiet" }),
            ("locale", { $0.customizations.locale?.keyboard = "us" }),
            ("firewall ports", { $0.customizations.firewall?.ports.removeFirst() }),
            ("firewall services", { $0.customizations.firewall?.disabledServices = [] }),
            ("firewall zones", { $0.customizations.firewall?.zones[0].sources.removeLast() }),
            ("user expiredate", { $0.customizations.users[0].expireDate = nil }),
            ("user force_password_reset", { $0.customizations.users[0].forcePasswordReset = false }),
            ("user password", { $0.customizations.users[1].password = "other" }),
            ("group gid", { $0.customizations.groups[0].gid = nil }), ("sshkey", { $0.customizations.sshKeys.removeLast() }),
            ("services", { $0.customizations.services.masked = [] }),
            ("filesystem", { $0.customizations.filesystems = [.init(mountpoint: "/var", minSize: 1)] }),
            ("disk type", { $0.customizations.disk?.type = "dos" }), ("disk minsize", { $0.customizations.disk?.minSize = nil }),
            ("partition label", { if case .plain(var fs) = $0.customizations.disk!.partitions[0] { fs.label = nil; $0.customizations.disk!.partitions[0] = .plain(fs) } }),
            ("partition part_type", { if case .plain(var fs) = $0.customizations.disk!.partitions[0] { fs.partType = nil; $0.customizations.disk!.partitions[0] = .plain(fs) } }),
            ("volume group part_type", { if case .lvm(var vg) = $0.customizations.disk!.partitions[2] { vg.partType = nil; $0.customizations.disk!.partitions[2] = .lvm(vg) } }),
            ("logical volume name", { if case .lvm(var vg) = $0.customizations.disk!.partitions[2] { vg.logicalVolumes[1].name = "loglv"; $0.customizations.disk!.partitions[2] = .lvm(vg) } }),
            ("partitioning_mode", { $0.customizations.partitioningMode = .raw }),
            ("directory mode", { $0.customizations.directories[1].mode = 0o700 }),
            ("directory ensure_parents", { $0.customizations.directories[1].ensureParents = true }),
            ("file data", { $0.customizations.files[1].data += "#" }), ("file owner", { $0.customizations.files[1].user = "0" }),
            ("repository suites", { $0.customizations.repositories[0].suites.removeLast() }),
            ("repository components", { $0.customizations.repositories[0].components.removeLast() }),
            ("repository gpgcheck", { $0.customizations.repositories[0].gpgCheck = false }),
            ("repository enabled", { $0.customizations.repositories[0].enabled = false }),
            ("repository priority", { $0.customizations.repositories[0].priority = nil }),
            ("repository install_from", { $0.customizations.repositories[0].installFrom = false }),
            ("cacerts", { $0.customizations.caCerts = [] }),
            ("sshd", { $0.customizations.sshd?.config.removeLast() }), ("sshd absent", { $0.customizations.sshd = nil }),
            ("firstboot name", { $0.customizations.firstBoot[1].name = "update" }),
            ("firstboot ignore_failure", { $0.customizations.firstBoot[1].ignoreFailure = false }),
        ]
        let original = CanonicalJSON.encode(base.json())
        for (what, change) in changes {
            var bp = base
            change(&bp)
            #expect(bp != base, "\(what): the change did nothing")
            #expect(CanonicalJSON.encode(bp.json()) != original, "\(what) is missing from json()")
        }
    }

    @Test func generatedNamesAvoidGivenOnes() throws {
        let text = """
            name = "lv"
            [[customizations.disk.partitions]]
            type = "lvm"
            [[customizations.disk.partitions.logical_volumes]]
            name = "rootlv"
            mountpoint = "/srv"
            fs_type = "ext4"
            minsize = "3G"
            [[customizations.disk.partitions.logical_volumes]]
            mountpoint = "/"
            fs_type = "ext4"
            minsize = "3G"
            [[customizations.disk.partitions.logical_volumes]]
            fs_type = "swap"
            minsize = "1G"
            [[customizations.disk.partitions.logical_volumes]]
            fs_type = "swap"
            minsize = "1G"
            """
        let disk = try #require(try Blueprint.parse(toml: text).customizations.disk)
        guard case .lvm(let vg) = disk.partitions.first else { Issue.record("no volume group"); return }
        #expect(vg.name == "rootvg")
        #expect(vg.minSize == 0)
        #expect(vg.logicalVolumes.map(\.name) == ["rootlv", "rootlv2", "swaplv", "swaplv2"])
    }

    @Test func jsonNullIsAbsent() throws {
        let bp = try Blueprint.parse(json: #"{"name": "n", "distro": null, "customizations": {"hostname": null, "kernel": null}}"#)
        #expect(bp.distro == nil)
        #expect(bp.customizations == Blueprint.Customizations())
    }

    @Test func exampleBlueprintLoads() throws {
        let bp = try Blueprint.load(path: Fixtures.repository.appendingPathComponent("examples/blueprints/base.toml").path)
        #expect(bp.name == "base")
        #expect(bp.packageNames == ["openssh-server"])
        #expect(bp.customizations.users.map(\.name) == ["kiln"])
        #expect(bp.customizations.users.first?.groups == ["sudo"])
        #expect(bp.customizations.services.enabled == ["ssh.service"])
        #expect(bp.customizations.timezone == "UTC")
    }

    @Test func minimalBlueprintHasDefaults() throws {
        let bp = try Blueprint.parse(toml: "name = \"tiny\"\n")
        #expect(bp.packages.isEmpty)
        #expect(bp.customizations == Blueprint.Customizations())
        #expect(bp.distro == nil)
        #expect(!bp.minimal)
    }

    @Test func missingFileNamesThePath() {
        let e = #expect(throws: BlueprintError.self) { try Blueprint.load(path: "/nonexistent/bp.toml") }
        #expect(e?.description.contains("/nonexistent/bp.toml") == true)
        #expect(e?.description.contains("does not exist") == true)
    }

    @Test(arguments: [
        ("2147483648", Int64(2_147_483_648)), ("2 GiB", 2 << 30), ("500 MiB", 500 << 20), ("1G", 1 << 30),
        ("1.5 GiB", 1536 << 20), ("3 GB", 3_000_000_000), ("10kB", 10_000), ("4 KiB", 4096), ("1 TiB", 1 << 40),
        (" 512M ", 512 << 20), ("7 B", 7),
    ])
    func sizes(_ text: String, _ bytes: Int64) throws {
        #expect(try BlueprintRules.parseSize(text).get() == bytes)
    }

    @Test(arguments: ["", "GiB", "2 gigs", "1.5", "0.1 B", "-1 GiB", "1..5 GiB", "1 gib", "99999999999 TiB"])
    func badSizes(_ text: String) {
        #expect(throws: BlueprintRules.SizeProblem.self) { try BlueprintRules.parseSize(text).get() }
    }

    @Test func mountpointPolicyFollowsOsbuild() {
        let fs = BlueprintRules.filesystemMountpoints, disk = BlueprintRules.diskMountpoints
        for ok in ["/", "/home", "/var", "/var/log", "/opt", "/srv", "/tmp", "/usr", "/boot", "/app", "/data", "/data/x"] {
            #expect(fs.problem(ok) == nil, "\(ok)")
        }
        for bad in ["/etc", "/etc/x", "/usr/share", "/sys", "/proc", "/dev", "/run", "/bin", "/sbin", "/lib", "/lib64",
                    "/lost+found", "/sysroot", "/var/run", "/var/lock", "/boot/efi"] {
            #expect(fs.problem(bad) != nil, "\(bad)")
        }
        #expect(disk.problem("/boot/efi") == nil, "a disk layout describes its own ESP")
    }

    @Test func tomlLineIndexFindsKeys() {
        let text = """
        name = "x"

        [customizations]
        hostname = "h"

        [[customizations.user]]
        name = "a"

        [[customizations.user]]
        name = "b"
        groups = ["x",
                  "y"]
        [customizations.services]
        enabled = ["a"]
        """
        let lines = TOMLLineIndex.lines(of: text)
        #expect(lines["name"] == 1)
        #expect(lines["customizations"] == 3)
        #expect(lines["customizations.hostname"] == 4)
        #expect(lines["customizations.user[0]"] == 6)
        #expect(lines["customizations.user[1].name"] == 10)
        #expect(lines["customizations.user[1].groups"] == 11)
        #expect(lines["customizations.services.enabled"] == 14)
        let origin = BlueprintOrigin(file: "f", lines: lines)
        #expect(origin.line(of: "customizations.user[1].groups[1]") == 11)
    }

    @Test func tomlLineIndexRestartsNestedArrays() {
        let text = """
        name = "x"
        [[customizations.disk.partitions]]
        type = "lvm"
        [[customizations.disk.partitions.logical_volumes]]
        name = "a"
        [[customizations.disk.partitions.logical_volumes]]
        name = "b"
        [[customizations.disk.partitions]]
        type = "lvm"
        [[customizations.disk.partitions.logical_volumes]]
        name = "c"
        """
        let lines = TOMLLineIndex.lines(of: text)
        #expect(lines["customizations.disk.partitions[0].logical_volumes[1].name"] == 7)
        #expect(lines["customizations.disk.partitions[1].logical_volumes[0].name"] == 11)
        #expect(lines["customizations.disk.partitions[1].logical_volumes[2].name"] == nil)
    }
}
