import Foundation
import Testing
@testable import Stages

/// What the tree stages write when `/boot` is a filesystem of its own, on XFS,
/// or when filesystems are mounted where the tree has no directory yet.
@Suite struct SeparateBootStagesTests {
    static let root = "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75"
    static let boot = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"

    @Test func grubPathsAreRelativeToASeparateBoot() async throws {
        let f = try TreeStageFixture()
        defer { f.remove() }
        try f.write("/boot/vmlinuz-6.1.0-10-amd64", "kernel")
        try f.write("/boot/initrd.img-6.1.0-10-amd64", "initrd")
        try f.write("/usr/lib/grub/x86_64-efi/normal.mod", "mod")
        try await Grub2Config().run(.init(rootFsUUID: Self.root, kernelOpts: "quiet", uefiTarget: "x86_64-efi",
                                          bootFsUUID: Self.boot, bootFsType: "xfs"), in: f.context)
        let cfg = try #require(f.read("/boot/grub/grub.cfg"))
        #expect(cfg.contains("\tsearch --no-floppy --fs-uuid --set=root \(Self.boot)\n"))
        #expect(cfg.contains("\tlinux\t/vmlinuz-6.1.0-10-amd64 root=UUID=\(Self.root) ro quiet\n"), "the kernel is found on /boot, root is mounted by UUID")
        #expect(cfg.contains("\tinitrd\t/initrd.img-6.1.0-10-amd64\n"))
        #expect(cfg.contains("\tinsmod xfs\n") && !cfg.contains("insmod ext2"))
        #expect(cfg.contains("\tinsmod part_msdos\n"), "DOS tables are read too")

        // Same boot filesystem as root: the usual /boot paths.
        try await Grub2Config().run(.init(rootFsUUID: Self.root, uefiTarget: "x86_64-efi", bootFsUUID: Self.root), in: f.context)
        #expect(try #require(f.read("/boot/grub/grub.cfg")).contains("\tlinux\t/boot/vmlinuz-6.1.0-10-amd64 root=UUID=\(Self.root) ro\n"))

        await #expect(throws: StageError.self) {
            try await Grub2Config().run(.init(rootFsUUID: Self.root, bootFsType: "btrfs"), in: f.context)
        }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/lib/grub/x86_64-efi/xfs.mod")))
    func efiImageFindsASeparateXfsBoot() async throws {
        let f = try TreeStageFixture(stageType: Grub2EFI.type)
        defer { f.remove() }
        try FileManager.default.createDirectory(atPath: f.tree + "/usr/lib/grub", withIntermediateDirectories: true)
        try await f.context.run(["cp", "-a", "/usr/lib/grub/x86_64-efi", f.tree + "/usr/lib/grub/"])
        try await Grub2EFI().run(.init(target: "x86_64-efi", rootFsUUID: Self.root, bootFsUUID: Self.boot, bootFsType: "xfs"),
                                 in: f.context)
        let efi = try #require(FileManager.default.contents(atPath: f.tree + "/boot/efi/EFI/BOOT/BOOTX64.EFI"))
        #expect(efi.range(of: Data("search --no-floppy --fs-uuid --set=root \(Self.boot)\nset prefix=($root)/grub\n".utf8)) != nil)
        #expect(f.log.contains(" xfs"), "the xfs module is built in")
    }

    @Test func fstabCreatesMissingMountpointsButNeverThroughALink() async throws {
        let f = try TreeStageFixture()
        defer { f.remove() }
        try TreeFiles.symlink("/run", at: "/var/run", in: f.tree)
        let fs: (String, String) -> Fstab.Filesystem = { path, type in
            Fstab.Filesystem(uuid: Self.boot, vfsType: type, path: path)
        }
        try await Fstab().run(.init(filesystems: [fs("/", "ext4"), fs("/srv/data", "xfs"), fs("none", "swap")]), in: f.context)
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: f.tree + "/srv/data", isDirectory: &isDirectory) && isDirectory.boolValue)
        #expect(f.read("/etc/fstab")?.contains("UUID=\(Self.boot) none swap defaults 0 0") == true)
        await #expect { try await Fstab().run(.init(filesystems: [fs("/var/run/x", "ext4")]), in: f.context) }
            throws: { "\($0)".contains("/var/run is not a directory") }
    }
}
