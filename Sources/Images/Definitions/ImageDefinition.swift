import Manifest

/// What a distro/architecture/image type needs beyond the blueprint: the base
/// package set, the disk layout, the boot loader and the default configuration.
package struct ImageDefinition: Sendable, Hashable {
    package var distro: Distro
    package var architecture: Architecture
    package var imageType: ImageType

    package init(distro: Distro, architecture: Architecture, imageType: ImageType) throws(DefinitionError) {
        try distro.check(architecture)
        self.distro = distro
        self.architecture = architecture
        self.imageType = imageType
    }

    /// Packages of a minimal bootable system, on top of the Priority
    /// required/essential set and apt that every depsolve includes.
    ///
    /// Networking is systemd-networkd: `systemd-network-generator` turns the
    /// kernel's `ip=dhcp` into a DHCP `.network` for every ethernet link, and
    /// systemd-resolved provides DNS. `usr-is-merged` satisfies bookworm's
    /// `usrmerge | usr-is-merged` dependency without the conversion script
    /// (the tree is merged-/usr from the start).
    package var basePackages: [String] {
        var p = [
            "systemd-sysv", "udev", "dbus", "initramfs-tools", "zstd", "e2fsprogs", "dosfstools",
            "systemd-resolved", "netbase", "sudo", "ca-certificates", "less", "vim-tiny", "usr-is-merged",
        ]
        switch architecture {
        case .x86_64: p += ["linux-image-amd64", "grub-efi-amd64-bin", "grub-pc-bin"]
        case .aarch64: p += ["linux-image-arm64", "grub-efi-arm64-bin"]
        }
        return p
    }

    /// Services every image enables (besides those of the blueprint).
    package var baseServices: [String] {
        ["systemd-networkd.service", "systemd-network-generator.service", "systemd-resolved.service"]
    }

    /// Kernel command line: serial console for headless use, DHCP on every ethernet link.
    package var kernelOptions: String {
        switch architecture {
        case .x86_64: "console=tty0 console=ttyS0,115200 ip=dhcp"
        case .aarch64: "console=ttyAMA0,115200 ip=dhcp"
        }
    }

    /// GRUB's `serial` command, x86_64 only (on arm64 the EFI console is the serial port).
    package var grubSerial: String? { architecture == .x86_64 ? "serial --unit=0 --speed=115200" : nil }
    package var grubTerminal: [String] { architecture == .x86_64 ? ["console", "serial"] : ["console"] }
    package var grubTimeout: Int { 1 }
    /// `i386-pc` on x86_64 (the image boots with BIOS and UEFI), nil elsewhere.
    package var biosTarget: String? { architecture == .x86_64 ? "i386-pc" : nil }

    package var defaultHostname: String { "debian" }
    package var defaultTimezone: String { "UTC" }
    package var defaultLanguage: String { "C.UTF-8" }
    package var defaultTarget: String { "multi-user.target" }

    /// The disk of this image type, its UUIDs derived from `ids`.
    package func diskLayout(ids: DeterministicIDs) -> DiskLayout {
        DiskLayout(architecture: architecture, sizeBytes: imageType.diskSize, ids: ids)
    }
}
