import Manifest

/// What a distro/architecture/image type needs beyond the blueprint: the base
/// package set, the disk layout, the boot loader and the default configuration.
package struct ImageDefinition: Sendable, Hashable {
    package var distro: Distro
    package var architecture: Architecture
    package var imageType: ImageType

    package init(distro: Distro, architecture: Architecture, imageType: ImageType) throws(DefinitionError) {
        try distro.check(architecture)
        guard imageType.architectures.contains(architecture) else {
            throw .unsupportedImageType(type: imageType.rawValue, architecture: architecture.rawValue,
                                        supported: imageType.architectures.map(\.rawValue))
        }
        self.distro = distro
        self.architecture = architecture
        self.imageType = imageType
    }

    /// Packages of a minimal bootable system, on top of the Priority
    /// required/essential set and apt that every depsolve includes.
    ///
    /// Networking is systemd-networkd: `systemd-network-generator` turns the
    /// kernel's `ip=dhcp` into a DHCP `.network` for every ethernet link, and
    /// systemd-resolved provides DNS. On bookworm, `usr-is-merged` satisfies
    /// the `usrmerge | usr-is-merged` dependency without the conversion script
    /// (the tree is merged-/usr from the start); trixie is merged-/usr by
    /// definition and nothing in its base set asks for either.
    package var basePackages: [String] {
        var p = [
            "systemd-sysv", "dbus", "zstd", "systemd-resolved", "netbase", "sudo", "ca-certificates", "less", "vim-tiny",
        ]
        if distro.codename == "bookworm" { p.append("usr-is-merged") }
        return p + bootPackages
    }

    /// What only a bootable disk needs: kernel, initramfs, udev, filesystem tools and GRUB's binaries.
    package var bootPackages: [String] {
        let common = ["udev", "initramfs-tools", "e2fsprogs", "dosfstools"]
        switch architecture {
        case .x86_64: return common + ["linux-image-amd64", "grub-efi-amd64-bin", "grub-pc-bin"]
        case .aarch64: return common + ["linux-image-arm64", "grub-efi-arm64-bin"]
        }
    }

    /// What the image must have: the base set, without the boot packages for
    /// tree and container types. A blueprint package that cannot be installed
    /// beside one of these is refused.
    package var requiredPackages: [String] {
        var p = basePackages
        if !imageType.isDisk { p.removeAll(where: Set(bootPackages).contains) }
        return p
    }

    /// What the image type adds on its own, in this order. A blueprint
    /// package that conflicts with one of them wins: the extra is dropped and
    /// the manifest's notes say so (docs/images.md, "What each type adds").
    package var extras: [ImageExtra] {
        var e: [ImageExtra] = []
        if imageType.isDisk {
            e.append(ImageExtra(name: "openssh-server", packages: ["openssh-server"],
                                why: "logging in with the blueprint's SSH keys, as on Debian's cloud images (host keys are made at first boot)"))
        }
        if let sources = imageType.cloudInitDataSources {
            // cloud-init calls `ip`; trixie's package no longer depends on iproute2.
            e.append(ImageExtra(name: "cloud-init", packages: ["cloud-init", "cloud-guest-utils", "iproute2"],
                                why: "reading the instance's user data from \(sources.joined(separator: " or ")) at first boot"))
        }
        if imageType == .qcow2 {
            e.append(ImageExtra(name: "qemu-guest-agent", packages: ["qemu-guest-agent"],
                                why: "letting the hypervisor ask the guest for its addresses and to freeze filesystems"))
        }
        return e
    }

    /// The packages to depsolve before the blueprint's: what the image must
    /// have, then every extra of its type.
    package var packages: [String] {
        requiredPackages + extras.flatMap(\.packages)
    }

    /// Services every image enables (besides those of the blueprint).
    package var baseServices: [String] {
        ["systemd-networkd.service", "systemd-network-generator.service", "systemd-resolved.service"]
    }

    /// Kernel command line: serial console for headless use, DHCP on every ethernet link.
    package var kernelOptions: String {
        let base = switch architecture {
        case .x86_64: "console=tty0 console=ttyS0,115200"
        case .aarch64: "console=ttyAMA0,115200"
        }
        // Azure and EC2 read the serial console's early output too.
        let extra = switch (imageType, architecture) {
        case (.vhd, .x86_64), (.ami, .x86_64): " earlyprintk=ttyS0,115200"
        default: ""
        }
        return base + extra + " ip=dhcp"
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

    /// The disk of this image type, its UUIDs derived from `ids`, with the
    /// blueprint's `filesystem`/`disk` customizations when it is given.
    package func diskLayout(ids: DeterministicIDs, blueprint: Blueprint? = nil) throws(BlueprintError) -> DiskLayout {
        guard let blueprint, imageType.isDisk else {
            return DiskLayout(architecture: architecture, sizeBytes: imageType.diskSize, ids: ids)
        }
        return try DiskLayout.make(self, blueprint: blueprint, ids: ids)
    }
}

/// A package (or a few that go together) an image type installs on its own,
/// and why: the blueprint's packages beat it.
package struct ImageExtra: Sendable, Hashable {
    /// The extra as a user knows it, e.g. `cloud-init`.
    package var name: String
    package var packages: [String]
    /// What it is for in this image type.
    package var why: String
}
