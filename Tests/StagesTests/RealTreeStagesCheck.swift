import Foundation
import KilnTestSupport
import Testing
@testable import Stages

/// Runs the configuration stages on a real installed tree and compares the
/// unit links with what the host's `systemctl --root` makes. Runs only when
/// `KILN_REAL_TREE` names a tree made by `org.kiln.debian.install` (it is
/// copied first); `KILN_REAL_TREE_ARCH` is its architecture (default amd64).
@Suite(.serialized)
struct RealTreeStagesCheck {
    static let env = ProcessInfo.processInfo.environment

    @Test(.enabled(if: env["KILN_REAL_TREE"] != nil))
    func stagesOnRealTree() async throws {
        let source = try #require(Self.env["KILN_REAL_TREE"])
        let arch = Self.env["KILN_REAL_TREE_ARCH"] ?? "amd64"
        let mine = try TreeStageFixture(stageType: "real")
        let theirs = try TreeStageFixture(stageType: "real")
        defer { mine.remove(); theirs.remove() }
        for f in [mine, theirs] {
            try FileManager.default.removeItem(atPath: f.tree)
            try await f.context.run(["cp", "-a", source, f.tree])
        }
        let units = ["systemd-networkd.service", "getty@ttyS0.service", "serial-getty@ttyS1.service", "systemd-networkd-wait-online.service"]
        try await SystemdUnits().run(.init(enabledServices: units, maskedServices: ["apt-daily.timer"], defaultTarget: "multi-user.target"), in: mine.context)
        // The host's systemctl is the reference, run by the test (stages may not run it).
        for args in [["enable"] + units, ["mask", "apt-daily.timer"], ["set-default", "multi-user.target"]] {
            #expect(try await runChild("/usr/bin/systemctl", ["--root=\(theirs.tree)"] + args).status == 0)
        }
        func links(_ tree: String) throws -> [String] {
            var result: [String] = []
            let root = tree + "/etc/systemd/system"
            for case let rel as String in FileManager.default.enumerator(atPath: root)! {
                if let dest = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(root)/\(rel)") {
                    result.append("\(rel) -> \((dest as NSString).lastPathComponent)")
                }
            }
            return result.sorted()
        }
        let a = try links(mine.tree), b = try links(theirs.tree)
        print("kiln only: \(Set(a).subtracting(b).sorted())\nsystemctl only: \(Set(b).subtracting(a).sorted())")
        #expect(a == b)

        try await Users().run(.init(users: ["admin": .init(groups: ["users"], key: "ssh-ed25519 AAAA admin@example")]), in: mine.context)
        let id = try await Sandbox(tree: mine.tree, commands: mine.context.commands).output(["id", "admin"])
        print(id)
        #expect(id.contains("uid=1000(admin)") && id.contains("users"))
        try await Timezone().run(.init(zone: "Europe/Berlin"), in: mine.context)
        let date = try await Sandbox(tree: mine.tree, commands: mine.context.commands).output(["date", "+%Z", "-d", "2024-01-01"])
        #expect(date == "CET\n")
        if TreeFiles.exists("/usr/sbin/locale-gen", in: mine.tree) {
            try await SystemLocale().run(.init(language: "de_DE.UTF-8"), in: mine.context)
            let locales = try await Sandbox(tree: mine.tree, commands: mine.context.commands).output(["locale", "-a"])
            #expect(locales.contains("de_DE.utf8"))
        }
        let target = arch == "arm64" ? "arm64-efi" : "x86_64-efi"
        if FileManager.default.fileExists(atPath: mine.tree + "/usr/lib/grub/\(target)") {
            try await Grub2Config().run(.init(rootFsUUID: "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75", kernelOpts: "console=ttyS0", timeout: 0, uefiTarget: target), in: mine.context)
            try await Grub2EFI().run(.init(target: target, rootFsUUID: "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75"), in: mine.context)
            let file = try await runChild("/usr/bin/file", ["-b", mine.tree + (arch == "arm64" ? "/boot/efi/EFI/BOOT/BOOTAA64.EFI" : "/boot/efi/EFI/BOOT/BOOTX64.EFI")]).output
            print(file)
            #expect(file.contains("EFI application"))
        }
    }
}
