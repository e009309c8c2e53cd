import Foundation
import StageOptions

/// The removable-path EFI binary, built with the host's `grub-mkimage` from
/// the tree's own module directory, with an early config that finds the
/// filesystem holding `/boot` by UUID (root, or `boot_fs_uuid` when `/boot`
/// is separate) and loads GRUB's `grub.cfg` from it.
package struct Grub2EFI: Stage {
    package typealias Options = Grub2EFIOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    static let defaultFilenames = ["x86_64-efi": "/boot/efi/EFI/BOOT/BOOTX64.EFI", "arm64-efi": "/boot/efi/EFI/BOOT/BOOTAA64.EFI"]
    static let packages = ["x86_64-efi": "grub-efi-amd64-bin", "arm64-efi": "grub-efi-arm64-bin"]
    /// Modules built into the image; those a module directory lacks (e.g. efi_uga on arm64) are skipped.
    static let modules = [
        "part_gpt", "part_msdos", "fat", "ext2", "search", "search_fs_uuid", "search_label", "normal",
        "configfile", "linux", "boot", "echo", "test", "serial", "terminal", "efi_gop", "efi_uga",
        "all_video", "gzio", "loadenv", "ls", "cat", "reboot", "halt",
    ]

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        guard let defaultName = Self.defaultFilenames[options.target] else {
            throw StageError.invalidOptions(reason: "\(Self.type): target \"\(options.target)\" is not x86_64-efi or arm64-efi")
        }
        for (key, uuid) in [("root_fs_uuid", options.rootFsUUID), ("boot_fs_uuid", options.bootFsUUID)] {
            if let uuid, !Grub2Config.isUUID(uuid) {
                throw StageError.invalidOptions(reason: "\(Self.type): \(key) \"\(uuid)\" is not a filesystem UUID")
            }
        }
        let fsModule = try Grub2Config.filesystemModule(options.bootFsType, stage: Self.type)
        let moduleDir = try context.path("/usr/lib/grub/\(options.target)")
        guard FileManager.default.fileExists(atPath: moduleDir + "/normal.mod") else {
            throw StageError.treeInconsistent(
                reason: "\(Self.type): /usr/lib/grub/\(options.target) is missing from the tree; add the \(Self.packages[options.target]!) package")
        }
        let early = context.scratch + "/grub-early.cfg"
        let separate = options.bootFsUUID != nil && options.bootFsUUID != options.rootFsUUID
        try Self.earlyConfig(options.bootFsUUID ?? options.rootFsUUID, grubDirectory: separate ? "/grub" : "/boot/grub")
            .write(toFile: early, atomically: true, encoding: .utf8)
        let output = try context.path(options.filename ?? defaultName)
        try FileManager.default.createDirectory(atPath: (output as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let modules = (Self.modules + (Self.modules.contains(fsModule) ? [] : [fsModule])).filter {
            FileManager.default.fileExists(atPath: "\(moduleDir)/\($0).mod")
        }
        try await context.run(
            [
                "grub-mkimage", "-O", options.target, "-d", moduleDir, "-p", "/boot/grub",
                "-c", early, "-o", output,
            ] + modules)
    }

    static func earlyConfig(_ uuid: String, grubDirectory: String = "/boot/grub") -> String {
        """
        search --no-floppy --fs-uuid --set=root \(uuid)
        set prefix=($root)\(grubDirectory)
        configfile $prefix/grub.cfg

        """
    }
}
