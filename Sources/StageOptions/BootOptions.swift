// Options of the tree stages a disk image boots with: fstab, the kernel
// command line, the initramfs and GRUB.

/// `org.osbuild.fstab`: `/etc/fstab`.
package struct FstabOptions: StageOptionsType {
    package static let stageType = "org.osbuild.fstab"

    package struct Filesystem: Codable, Sendable {
        package var uuid: String?
        package var label: String?
        package var partuuid: String?
        package var device: String?
        package var vfsType: String
        package var path: String
        package var options: String?
        package var freq: Int?
        package var passno: Int?

        enum CodingKeys: String, CodingKey {
            case uuid, label, partuuid, device, path, options, freq, passno
            case vfsType = "vfs_type"
        }

        package init(
            uuid: String? = nil, label: String? = nil, partuuid: String? = nil, device: String? = nil, vfsType: String,
            path: String, options: String? = nil, freq: Int? = nil, passno: Int? = nil
        ) {
            (self.uuid, self.label, self.partuuid, self.device, self.vfsType, self.path, self.options, self.freq, self.passno) = (
                uuid, label, partuuid, device, vfsType, path, options, freq, passno
            )
        }
    }

    package var filesystems: [Filesystem]

    package init(filesystems: [Filesystem]) {
        self.filesystems = filesystems
    }
}

/// `org.osbuild.kernel-cmdline`: the kernel command line the boot loader stages read.
package struct KernelCmdlineOptions: StageOptionsType {
    package static let stageType = "org.osbuild.kernel-cmdline"

    package var rootFsUUID: String?
    package var kernelOpts: String?

    enum CodingKeys: String, CodingKey {
        case rootFsUUID = "root_fs_uuid"
        case kernelOpts = "kernel_opts"
    }

    package init(rootFsUUID: String? = nil, kernelOpts: String? = nil) {
        (self.rootFsUUID, self.kernelOpts) = (rootFsUUID, kernelOpts)
    }
}

/// `org.kiln.initramfs`: the tree's initramfs, built by Kiln.
package struct InitramfsOptions: StageOptionsType, Equatable {
    package static let stageType = "org.kiln.initramfs"

    /// Extra module names (with their dependencies) beyond `MODULES=most`.
    package var modules: [String]?
    /// `zstd`, `gzip`, `xz`, `lz4` or `none`; absent: the tree's `COMPRESS`, else `zstd`.
    package var compression: String?

    package init(modules: [String]? = nil, compression: String? = nil) {
        (self.modules, self.compression) = (modules, compression)
    }
}

/// `org.kiln.grub2.config`: GRUB's configuration and environment.
package struct Grub2ConfigOptions: StageOptionsType {
    package static let stageType = "org.kiln.grub2.config"

    package var rootFsUUID: String
    package var kernelOpts: String?
    package var timeout: Int?
    /// A GRUB `serial` command, e.g. `serial --unit=0 --speed=115200`.
    package var serial: String?
    package var terminal: [String]?
    package var biosTarget: String?
    package var uefiTarget: String?
    /// UUID of a separate `/boot` filesystem; absent: `/boot` is on the root filesystem.
    package var bootFsUUID: String?
    /// `ext4` (default) or `xfs`: the filesystem GRUB reads `/boot` from.
    package var bootFsType: String?

    enum CodingKeys: String, CodingKey {
        case rootFsUUID = "root_fs_uuid"
        case kernelOpts = "kernel_opts"
        case timeout, serial, terminal
        case biosTarget = "bios_target"
        case uefiTarget = "uefi_target"
        case bootFsUUID = "boot_fs_uuid"
        case bootFsType = "boot_fs_type"
    }

    package init(
        rootFsUUID: String, kernelOpts: String? = nil, timeout: Int? = nil, serial: String? = nil,
        terminal: [String]? = nil, biosTarget: String? = nil, uefiTarget: String? = nil,
        bootFsUUID: String? = nil, bootFsType: String? = nil
    ) {
        (
            self.bootFsUUID, self.bootFsType, self.rootFsUUID, self.kernelOpts, self.timeout, self.serial, self.terminal, self.biosTarget,
            self.uefiTarget
        ) = (bootFsUUID, bootFsType, rootFsUUID, kernelOpts, timeout, serial, terminal, biosTarget, uefiTarget)
    }
}

/// `org.kiln.grub2.efi`: the GRUB EFI binary on the EFI system partition.
package struct Grub2EFIOptions: StageOptionsType {
    package static let stageType = "org.kiln.grub2.efi"

    package var target: String
    package var rootFsUUID: String
    package var filename: String?
    /// UUID of a separate `/boot` filesystem; absent: `/boot` is on the root filesystem.
    package var bootFsUUID: String?
    /// `ext4` (default) or `xfs`: its module goes into the image.
    package var bootFsType: String?

    enum CodingKeys: String, CodingKey {
        case target, filename
        case rootFsUUID = "root_fs_uuid"
        case bootFsUUID = "boot_fs_uuid"
        case bootFsType = "boot_fs_type"
    }

    package init(target: String, rootFsUUID: String, filename: String? = nil, bootFsUUID: String? = nil, bootFsType: String? = nil) {
        (self.bootFsUUID, self.bootFsType, self.target, self.rootFsUUID, self.filename) = (bootFsUUID, bootFsType, target, rootFsUUID, filename)
    }
}
