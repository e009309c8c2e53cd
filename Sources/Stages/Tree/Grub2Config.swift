import Foundation
import StageOptions

/// `/boot/grub/grub.cfg` in the layout Debian's `grub-mkconfig` produces,
/// with one entry for the newest kernel, a consistent `/etc/default/grub`,
/// and GRUB's module directories copied to `/boot/grub/<target>`. When
/// `/boot` is a filesystem of its own (`boot_fs_uuid`), GRUB finds it by
/// UUID and its paths are relative to it (`/vmlinuz-…`).
package struct Grub2Config: Stage {
    package typealias Options = Grub2ConfigOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    static let targets: Set<String> = ["i386-pc", "x86_64-efi", "arm64-efi"]

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        for t in [options.biosTarget, options.uefiTarget].compactMap({ $0 }) where !Self.targets.contains(t) {
            throw StageError.invalidOptions(
                reason: "\(Self.type): GRUB target \"\(t)\" is not one of \(Self.targets.sorted().joined(separator: ", "))")
        }
        for (key, uuid) in [("root_fs_uuid", options.rootFsUUID), ("boot_fs_uuid", options.bootFsUUID)] {
            if let uuid, !Self.isUUID(uuid) {
                throw StageError.invalidOptions(reason: "\(Self.type): \(key) \"\(uuid)\" is not a filesystem UUID")
            }
        }
        _ = try Self.filesystemModule(options.bootFsType, stage: Self.type)
        let version = try Self.newestKernel(in: context.tree)
        var initrd: String? = "initrd.img-\(version)"
        if !TreeFiles.exists("/boot/" + initrd!, in: context.tree) {
            context.logger.warning(
                "no initramfs for the kernel; the boot entry has no initrd line",
                metadata: ["kernel": "\(version)", "expected": "/boot/\(initrd!)"])
            initrd = nil
        }
        try TreeFiles.write(Self.grubCfg(options, kernel: version, initrd: initrd), to: "/boot/grub/grub.cfg", in: context.tree, mode: 0o444)
        try TreeFiles.write(Self.defaultGrub(options), to: "/etc/default/grub", in: context.tree)
        try TreeFiles.write(Self.grubenv, to: "/boot/grub/grubenv", in: context.tree)

        for target in [options.biosTarget, options.uefiTarget].compactMap({ $0 }) {
            let source = try context.path("/usr/lib/grub/\(target)")
            guard FileManager.default.fileExists(atPath: source + "/normal.mod") else {
                let package = ["i386-pc": "grub-pc-bin", "x86_64-efi": "grub-efi-amd64-bin", "arm64-efi": "grub-efi-arm64-bin"][target]!
                throw StageError.treeInconsistent(
                    reason: "\(Self.type): /usr/lib/grub/\(target) is missing from the tree; add the \(package) package")
            }
            let dest = try context.path("/boot/grub/\(target)")
            try? FileManager.default.removeItem(atPath: dest)
            try await context.run(["cp", "-a", source, dest])
        }
    }

    /// Version of the newest `/boot/vmlinuz-*`.
    static func newestKernel(in tree: String) throws -> String {
        let boot = try TreePath.resolve("/boot", in: tree)
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: boot)) ?? [])
            .filter { $0.hasPrefix("vmlinuz-") }.map { String($0.dropFirst("vmlinuz-".count)) }
        guard let newest = versions.max(by: { versionLess($0, $1) }) else {
            throw StageError.treeInconsistent(reason: "\(type): no kernel (/boot/vmlinuz-*) in the tree; add a linux-image package")
        }
        return newest
    }

    /// Compares versions by runs of digits (numerically) and other characters; `~` sorts first.
    static func versionLess(_ a: String, _ b: String) -> Bool {
        func runs(_ s: String) -> [String] {
            var out: [String] = []
            for c in s {
                if let last = out.last, last.last!.isNumber == c.isNumber { out[out.count - 1].append(c) } else { out.append(String(c)) }
            }
            return out
        }
        let (ra, rb) = (runs(a), runs(b))
        for (x, y) in zip(ra, rb) where x != y {
            if let i = Int(x), let j = Int(y) { return i < j }
            if x.hasPrefix("~") != y.hasPrefix("~") { return x.hasPrefix("~") }
            return x < y
        }
        return ra.count < rb.count
    }

    static func isUUID(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 36 && s.allSatisfy { $0.isHexDigit || $0 == "-" }
    }

    /// GRUB's module for the filesystem `/boot` is on.
    static func filesystemModule(_ type: String?, stage: String) throws -> String {
        switch type ?? "ext4" {
        case "ext4": "ext2"
        case "xfs": "xfs"
        case let other: throw StageError.invalidOptions(reason: "\(stage): boot_fs_type \"\(other)\" is not ext4 or xfs")
        }
    }

    /// Whether `/boot` is its own filesystem, so that GRUB's paths are relative to it.
    static func separateBoot(_ o: Options) -> Bool { o.bootFsUUID != nil && o.bootFsUUID != o.rootFsUUID }

    /// `kernel` is the kernel version, `initrd` the initramfs' file name in `/boot`.
    static func grubCfg(_ o: Options, kernel: String, initrd: String?) -> String {
        let uuid = o.bootFsUUID ?? o.rootFsUUID
        let boot = separateBoot(o) ? "" : "/boot"
        let fs = (try? filesystemModule(o.bootFsType, stage: type)) ?? "ext2"
        let cmdline = (["root=UUID=\(o.rootFsUUID)", "ro"] + [o.kernelOpts].compactMap { $0 }.filter { !$0.isEmpty }).joined(separator: " ")
        var lines = [
            "#",
            "# DO NOT EDIT THIS FILE",
            "#",
            "# Written by Kiln (org.kiln.grub2.config) in the layout of grub-mkconfig.",
            "#",
            "",
            "### BEGIN /etc/grub.d/00_header ###",
            "if [ -s $prefix/grubenv ]; then",
            "  load_env",
            "fi",
            "set default=\"0\"",
            "",
            "insmod part_gpt",
            "insmod part_msdos",
            "insmod \(fs)",
            "search --no-floppy --fs-uuid --set=root \(uuid)",
        ]
        if let serial = o.serial { lines.append(serial) }
        if let terminal = o.terminal, !terminal.isEmpty {
            lines.append("terminal_input \(terminal.joined(separator: " "))")
            lines.append("terminal_output \(terminal.joined(separator: " "))")
        }
        lines += [
            "set timeout_style=menu",
            "set timeout=\(o.timeout ?? 5)",
            "### END /etc/grub.d/00_header ###",
            "",
            "### BEGIN /etc/grub.d/10_linux ###",
            "menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os --id 'gnulinux-simple-\(uuid)' {",
            "\tinsmod gzio",
            "\tinsmod part_gpt",
            "\tinsmod part_msdos",
            "\tinsmod \(fs)",
            "\tsearch --no-floppy --fs-uuid --set=root \(uuid)",
            "\techo\t'Loading Linux \(kernel) ...'",
            "\tlinux\t\(boot)/vmlinuz-\(kernel) \(cmdline)",
        ]
        if let initrd {
            lines += ["\techo\t'Loading initial ramdisk ...'", "\tinitrd\t\(boot)/\(initrd)"]
        }
        lines += ["}", "### END /etc/grub.d/10_linux ###", ""]
        return lines.joined(separator: "\n")
    }

    static func defaultGrub(_ o: Options) -> String {
        var lines = [
            "# Written by Kiln (org.kiln.grub2.config); /boot/grub/grub.cfg was generated from these values.",
            "GRUB_DEFAULT=0",
            "GRUB_TIMEOUT=\(o.timeout ?? 5)",
            "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`",
            "GRUB_CMDLINE_LINUX_DEFAULT=\"\"",
            "GRUB_CMDLINE_LINUX=\"\(o.kernelOpts ?? "")\"",
        ]
        if let terminal = o.terminal, !terminal.isEmpty { lines.append("GRUB_TERMINAL=\"\(terminal.joined(separator: " "))\"") }
        if let serial = o.serial { lines.append("GRUB_SERIAL_COMMAND=\"\(serial)\"") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// An empty GRUB environment block (1024 bytes), as grub-install leaves it.
    static var grubenv: String {
        let head = "# GRUB Environment Block\n"
        return head + String(repeating: "#", count: 1024 - head.utf8.count)
    }
}
