import Foundation
import Manifest
import Testing

@testable import Stages

/// systemd units, hostname, time zone, locale, fstab, kernel command line,
/// machine-id, apt sources and GRUB configuration on small fake trees.
struct TreeConfigStagesTests {
    func link(_ f: TreeStageFixture, _ path: String) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: f.tree + path)
    }

    func unitTree() throws -> TreeStageFixture {
        let f = try TreeStageFixture(stageType: SystemdUnits.type)
        try f.write(
            "/lib/systemd/system/ssh.service",
            "[Unit]\nDescription=ssh\n[Service]\nExecStart=/usr/sbin/sshd\n[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n")
        try f.write("/lib/systemd/system/getty@.service", "[Service]\nExecStart=agetty\n[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n")
        try f.write("/usr/lib/systemd/system/multi-user.target", "[Unit]\nDescription=Multi-User\n")
        try f.write("/usr/lib/systemd/system/graphical.target", "[Unit]\nDescription=Graphical\n")
        try f.write("/lib/systemd/system/timers.target", "[Unit]\n")
        try f.write("/lib/systemd/system/fstrim.timer", "[Timer]\nOnCalendar=weekly\n[Install]\nWantedBy=timers.target\n")
        return f
    }

    @Test func systemdEnableMaskDefaultTarget() async throws {
        let f = try unitTree()
        defer { f.remove() }
        try await SystemdUnits().run(
            .init(
                enabledServices: ["ssh.service", "getty@ttyS0.service", "getty@.service"],
                maskedServices: ["fstrim.timer"], defaultTarget: "multi-user.target"), in: f.context)
        #expect(
            link(f, "/etc/systemd/system/multi-user.target.wants/ssh.service") == "/usr/lib/systemd/system/ssh.service"
                || link(f, "/etc/systemd/system/multi-user.target.wants/ssh.service") == "/lib/systemd/system/ssh.service")
        #expect(link(f, "/etc/systemd/system/sshd.service") != nil, "Alias= link")
        #expect(link(f, "/etc/systemd/system/getty.target.wants/getty@ttyS0.service")?.hasSuffix("getty@.service") == true)
        #expect(link(f, "/etc/systemd/system/getty.target.wants/getty@tty1.service") != nil, "DefaultInstance=")
        #expect(link(f, "/etc/systemd/system/fstrim.timer") == "/dev/null")
        #expect(link(f, "/etc/systemd/system/default.target") == "/usr/lib/systemd/system/multi-user.target")

        try await SystemdUnits().run(.init(disabledServices: ["ssh.service"]), in: f.context)
        #expect(link(f, "/etc/systemd/system/multi-user.target.wants/ssh.service") == nil)
        #expect(link(f, "/etc/systemd/system/sshd.service") == nil)
        #expect(link(f, "/etc/systemd/system/fstrim.timer") == "/dev/null", "disable keeps masks")
    }

    /// systemd-networkd.service names systemd-networkd-wait-online.service in `Also=`:
    /// a blueprint that disables the second must not see it enabled again by the first.
    @Test func systemdDisabledWinsOverAlsoOfAnEnabledUnit() async throws {
        let f = try unitTree()
        defer { f.remove() }
        try f.write("/lib/systemd/system/a.service", "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlso=b.service\n")
        try f.write("/lib/systemd/system/b.service", "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")
        try await SystemdUnits().run(.init(enabledServices: ["a.service"], disabledServices: ["b.service"]), in: f.context)
        #expect(link(f, "/etc/systemd/system/multi-user.target.wants/a.service") == "/lib/systemd/system/a.service")
        #expect(link(f, "/etc/systemd/system/multi-user.target.wants/b.service") == nil, "disabled wins over Also=")
    }

    @Test func systemdUnknownUnitIsNamed() async throws {
        let f = try unitTree()
        defer { f.remove() }
        await #expect {
            try await SystemdUnits().run(.init(enabledServices: ["nginx.service"]), in: f.context)
        } throws: { "\($0)".contains("\"nginx.service\"") }
        // Disabling a unit the tree does not have is nothing to do (cloud-init on a raw image, say).
        try await SystemdUnits().run(.init(enabledServices: ["ssh.service"], disabledServices: ["cloud-init.service"]), in: f.context)
        #expect(link(f, "/etc/systemd/system/multi-user.target.wants/ssh.service") != nil)
    }

    @Test func hostnameTimezoneFstabCmdline() async throws {
        let f = try TreeStageFixture()
        defer { f.remove() }
        try f.write("/usr/share/zoneinfo/Europe/Berlin", "TZif2")
        try await Hostname().run(.init(hostname: "kiln-vm"), in: f.context)
        try await Timezone().run(.init(zone: "Europe/Berlin"), in: f.context)
        try await Fstab().run(
            .init(filesystems: [
                .init(uuid: "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75", vfsType: "ext4", path: "/", options: "rw,discard,errors=remount-ro", passno: 1),
                .init(label: "ESP", vfsType: "vfat", path: "/boot/efi", options: "umask=0077", passno: 2),
            ]), in: f.context)
        try await KernelCmdline().run(.init(rootFsUUID: "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75", kernelOpts: "console=ttyS0"), in: f.context)

        #expect(f.read("/etc/hostname") == "kiln-vm\n")
        #expect(link(f, "/etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin")
        #expect(f.read("/etc/timezone") == "Europe/Berlin\n")
        let fstab = f.read("/etc/fstab")!.split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(
            fstab == [
                "UUID=6e4ff95f-f662-45ee-a82a-bdf44a2d0b75 / ext4 rw,discard,errors=remount-ro 0 1",
                "LABEL=ESP /boot/efi vfat umask=0077 0 2",
            ])
        #expect(f.read("/etc/kernel/cmdline") == "root=UUID=6e4ff95f-f662-45ee-a82a-bdf44a2d0b75 console=ttyS0\n")

        await #expect { try await Timezone().run(.init(zone: "Mars/Olympus"), in: f.context) } throws: { "\($0)".contains("Mars/Olympus") }
        await #expect(throws: StageError.self) { try await Hostname().run(.init(hostname: "bad name"), in: f.context) }
    }

    /// One host-name rule: what a blueprint refuses, the hostname stage of a
    /// hand-written manifest refuses too (the stage took "-web", "a..b" and
    /// 64-character labels before), and both take the same good names.
    @Test(arguments: ["-web", "web-", "a..b", ".lead", "trail.", String(repeating: "x", count: 64), "bad name", "ünï", ""])
    func theStageRefusesWhatABlueprintRefuses(_ name: String) async throws {
        let f = try TreeStageFixture()
        defer { f.remove() }
        #expect(HostName.problem(name) != nil)
        await #expect { try await Hostname().run(.init(hostname: name), in: f.context) } throws: {
            "\($0)".contains("not a valid host name") && "\($0)".contains("dot-separated labels")
        }
        #expect(f.read("/etc/hostname") == nil)
    }

    @Test(arguments: ["kiln-vm", "web1.example.org", "x", String(repeating: "a", count: 63) + ".b", "A-1"])
    func theStageTakesWhatABlueprintTakes(_ name: String) async throws {
        let f = try TreeStageFixture()
        defer { f.remove() }
        #expect(HostName.problem(name) == nil)
        try await Hostname().run(.init(hostname: name), in: f.context)
        #expect(f.read("/etc/hostname") == name + "\n")
    }

    @Test func localeCAndMissingLocalesPackage() async throws {
        let f = try TreeStageFixture()
        defer { f.remove() }
        try await SystemLocale().run(.init(language: "C.UTF-8"), in: f.context)
        #expect(f.read("/etc/default/locale") == "LANG=C.UTF-8\n")
        await #expect { try await SystemLocale().run(.init(language: "de_DE.UTF-8"), in: f.context) } throws: {
            "\($0)".contains("\"locales\"")
        }
        #expect(
            SystemLocale.enable("de_DE.UTF-8 UTF-8", in: "# en_US.UTF-8 UTF-8\n# de_DE.UTF-8 UTF-8\n")
                == "# en_US.UTF-8 UTF-8\nde_DE.UTF-8 UTF-8\n")
    }

    /// `locale -a` lists `de_DE.utf8`, and a blueprint may spell it so; SUPPORTED,
    /// locale.gen and LANG spell the codeset `UTF-8`.
    @Test func localeCodesetAsLocaleListsIt() throws {
        let f = try TreeStageFixture()
        defer { f.remove() }
        try f.write("/usr/sbin/locale-gen", "", mode: 0o755)
        try f.write("/usr/share/i18n/SUPPORTED", "de_DE.UTF-8 UTF-8\nde_DE ISO-8859-1\nen_US.UTF-8 UTF-8\nen_US ISO-8859-1\n")
        try f.write("/etc/locale.gen", "# de_DE.UTF-8 UTF-8\n# en_US.UTF-8 UTF-8\n")
        let configured = try SystemLocale.configure(.init(language: "de_DE.utf8", generate: ["en_US.UTF-8"]), in: f.tree)
        #expect(configured.language == "de_DE.UTF-8")
        #expect(configured.lines == ["de_DE.UTF-8 UTF-8", "en_US.UTF-8 UTF-8"])
        #expect(f.read("/etc/locale.gen") == "de_DE.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n")
        #expect(f.read("/etc/default/locale") == "LANG=de_DE.UTF-8\n")
        #expect(SystemLocale.normalized("sr_RS.Utf8@latin") == "sr_RS.UTF-8@latin")
        #expect(SystemLocale.normalized("ja_JP.eucJP") == "ja_JP.eucJP", "other codesets as given")
    }

    @Test func machineIDAndAptSources() async throws {
        let f = try TreeStageFixture()
        defer { f.remove() }
        try f.write("/etc/machine-id", "0123456789abcdef0123456789abcdef\n")
        try f.write("/var/lib/dbus/machine-id", "0123456789abcdef0123456789abcdef\n")
        try f.write("/etc/apt/sources.list", "")
        try await MachineID().run(.init(firstBoot: .yes), in: f.context)
        #expect(f.read("/etc/machine-id") == "uninitialized\n")
        #expect(!TreeFiles.exists("/var/lib/dbus/machine-id", in: f.tree))
        try await MachineID().run(.init(firstBoot: .no), in: f.context)
        #expect(f.read("/etc/machine-id") == "")

        try await AptSources().run(
            .init(sources: [
                .init(
                    uris: ["http://deb.debian.org/debian"], suites: ["bookworm", "bookworm-updates"], components: ["main"],
                    signedBy: "/usr/share/keyrings/debian-archive-keyring.gpg"),
                .init(uris: ["http://security.debian.org/debian-security"], suites: ["bookworm-security"], components: ["main"]),
            ]), in: f.context)
        #expect(
            f.read("/etc/apt/sources.list.d/debian.sources") == """
                Types: deb
                URIs: http://deb.debian.org/debian
                Suites: bookworm bookworm-updates
                Components: main
                Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

                Types: deb
                URIs: http://security.debian.org/debian-security
                Suites: bookworm-security
                Components: main

                """)
        #expect(!TreeFiles.exists("/etc/apt/sources.list", in: f.tree))
    }

    @Test func grubConfigForNewestKernel() async throws {
        let f = try TreeStageFixture()
        defer { f.remove() }
        for v in ["6.1.0-9-amd64", "6.1.0-10-amd64"] {
            try f.write("/boot/vmlinuz-\(v)", "kernel")
            try f.write("/boot/initrd.img-\(v)", "initrd")
        }
        try f.write("/usr/lib/grub/x86_64-efi/normal.mod", "mod")
        try f.write("/usr/lib/grub/x86_64-efi/linux.mod", "mod")
        let uuid = "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75"
        try await Grub2Config().run(
            .init(
                rootFsUUID: uuid, kernelOpts: "console=ttyS0,115200", timeout: 0,
                serial: "serial --unit=0 --speed=115200", terminal: ["console", "serial"],
                uefiTarget: "x86_64-efi"), in: f.context)
        let cfg = try #require(f.read("/boot/grub/grub.cfg"))
        #expect(cfg.contains("\tlinux\t/boot/vmlinuz-6.1.0-10-amd64 root=UUID=\(uuid) ro console=ttyS0,115200\n"))
        #expect(cfg.contains("\tinitrd\t/boot/initrd.img-6.1.0-10-amd64\n"))
        #expect(cfg.contains("search --no-floppy --fs-uuid --set=root \(uuid)\n"))
        #expect(cfg.contains("serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\n"))
        #expect(cfg.contains("set timeout=0\n"))
        let defaults = try #require(f.read("/etc/default/grub"))
        #expect(defaults.contains("GRUB_CMDLINE_LINUX=\"console=ttyS0,115200\"\n"))
        #expect(defaults.contains("GRUB_TIMEOUT=0\n"))
        #expect(defaults.contains("GRUB_TERMINAL=\"console serial\"\n"))
        #expect(f.read("/boot/grub/x86_64-efi/linux.mod") == "mod")
        #expect(f.read("/boot/grub/grubenv")?.utf8.count == 1024)

        // No kernel → an error that says so; a missing module directory names the package.
        let empty = try TreeStageFixture()
        defer { empty.remove() }
        await #expect { try await Grub2Config().run(.init(rootFsUUID: uuid), in: empty.context) } throws: { "\($0)".contains("linux-image") }
        await #expect {
            try await Grub2Config().run(.init(rootFsUUID: uuid, biosTarget: "i386-pc"), in: f.context)
        } throws: { "\($0)".contains("grub-pc-bin") }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/lib/grub/x86_64-efi/normal.mod")))
    func grubEFIImageFromTreeModules() async throws {
        let f = try TreeStageFixture(stageType: Grub2EFI.type)
        defer { f.remove() }
        try FileManager.default.createDirectory(atPath: f.tree + "/usr/lib/grub", withIntermediateDirectories: true)
        try await f.context.run(["cp", "-a", "/usr/lib/grub/x86_64-efi", f.tree + "/usr/lib/grub/"])
        try await Grub2EFI().run(.init(target: "x86_64-efi", rootFsUUID: "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75"), in: f.context)
        let efi = try #require(FileManager.default.contents(atPath: f.tree + "/boot/efi/EFI/BOOT/BOOTX64.EFI"))
        #expect(efi.prefix(2) == Data("MZ".utf8), "a PE/COFF executable")
        #expect(efi.range(of: Data("search --no-floppy --fs-uuid --set=root 6e4ff95f-f662-45ee-a82a-bdf44a2d0b75".utf8)) != nil)
    }
}
