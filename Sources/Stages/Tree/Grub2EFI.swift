import Foundation

/// The removable-path EFI binary, built with the host's `grub-mkimage` from
/// the tree's own module directory, with an early config that finds the
/// root filesystem by UUID and loads `/boot/grub/grub.cfg` from it.
package struct Grub2EFI: Stage {
    package static let type = "org.kiln.grub2.efi"
    package static let placement = Placement.tree

    package struct Options: Codable, Sendable {
        package var target: String
        package var rootFsUUID: String
        package var filename: String?

        enum CodingKeys: String, CodingKey {
            case target, filename
            case rootFsUUID = "root_fs_uuid"
        }

        package init(target: String, rootFsUUID: String, filename: String? = nil) {
            self.target = target
            self.rootFsUUID = rootFsUUID
            self.filename = filename
        }
    }

    static let defaultFilenames = ["x86_64-efi": "/boot/efi/EFI/BOOT/BOOTX64.EFI", "arm64-efi": "/boot/efi/EFI/BOOT/BOOTAA64.EFI"]
    static let packages = ["x86_64-efi": "grub-efi-amd64-bin", "arm64-efi": "grub-efi-arm64-bin"]
    /// Modules built into the image; those a module directory lacks (e.g. efi_uga on arm64) are skipped.
    static let modules = ["part_gpt", "part_msdos", "fat", "ext2", "search", "search_fs_uuid", "search_label", "normal",
                         "configfile", "linux", "boot", "echo", "test", "serial", "terminal", "efi_gop", "efi_uga",
                         "all_video", "gzio", "loadenv", "ls", "cat", "reboot", "halt"]

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        guard let defaultName = Self.defaultFilenames[options.target] else {
            throw StageError.invalidOptions(reason: "\(Self.type): target \"\(options.target)\" is not x86_64-efi or arm64-efi")
        }
        guard Grub2Config.isUUID(options.rootFsUUID) else {
            throw StageError.invalidOptions(reason: "\(Self.type): root_fs_uuid \"\(options.rootFsUUID)\" is not a filesystem UUID")
        }
        let moduleDir = try context.path("/usr/lib/grub/\(options.target)")
        guard FileManager.default.fileExists(atPath: moduleDir + "/normal.mod") else {
            throw StageError.treeInconsistent(reason: "\(Self.type): /usr/lib/grub/\(options.target) is missing from the tree; add the \(Self.packages[options.target]!) package")
        }
        let early = context.scratch + "/grub-early.cfg"
        try Self.earlyConfig(options.rootFsUUID).write(toFile: early, atomically: true, encoding: .utf8)
        let output = try context.path(options.filename ?? defaultName)
        try FileManager.default.createDirectory(atPath: (output as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let modules = Self.modules.filter { FileManager.default.fileExists(atPath: "\(moduleDir)/\($0).mod") }
        try await context.run(["grub-mkimage", "-O", options.target, "-d", moduleDir, "-p", "/boot/grub",
                               "-c", early, "-o", output] + modules)
    }

    static func earlyConfig(_ uuid: String) -> String {
        """
        search --no-floppy --fs-uuid --set=root \(uuid)
        set prefix=($root)/boot/grub
        configfile $prefix/grub.cfg

        """
    }
}
