import Crypto
import Foundation
import Manifest

// The disk a blueprint asks for, with osbuild-composer's semantics:
// `[[customizations.filesystem]]` grows or adds mountpoints on the image
// type's table (plain partitions or logical volumes, by `partitioning_mode`);
// `[customizations.disk]` is a whole table, to which Kiln adds what the image
// type needs to boot. Checks that need the image type (sizes, the four
// primary partitions of DOS, what GRUB and the ESP need) throw BlueprintError.
extension DiskLayout {
    /// The filesystem holding `/` gets at least this: a Debian system with its
    /// packages (osbuild likewise requires 1 GiB for `/` plus 2 GiB for `/usr`).
    package static let rootMinimumBytes: Int64 = 2 << 30
    /// The `/boot` partition Kiln adds when `/` is on LVM (as osbuild does).
    package static let bootBytes: Int64 = 1 << 30
    /// Kiln builds disks up to this size (and a DOS table addresses no more).
    package static let maximumBytes: Int64 = 2 << 40
    /// FAT32 needs 65525 clusters: an ESP smaller than this cannot be made.
    package static let espMinimumBytes: Int64 = 33 << 20
    /// mkfs.xfs refuses smaller filesystems.
    package static let xfsMinimumBytes: Int64 = 300 << 20
    /// org.kiln.mkfs.ext4 makes at least 1024 blocks of 4 KiB.
    package static let ext4MinimumBytes: Int64 = 4 << 20
    /// Name of the volume group `partitioning_mode` lvm / auto-lvm creates (osbuild's).
    package static let rootVolumeGroup = "rootvg"

    /// osbuild's floor for a mountpoint of `[[customizations.filesystem]]`: 1 GiB, 500 MiB for `/boot`.
    static func filesystemFloor(_ mountpoint: String) -> Int64 { mountpoint == "/boot" ? 500 << 20 : 1 << 30 }

    /// The disk of `definition` with the `filesystem`/`disk` customizations of `blueprint`
    /// (`disk` wins when both are given).
    package static func make(_ definition: ImageDefinition, blueprint: Blueprint,
                             ids: DeterministicIDs) throws(BlueprintError) -> DiskLayout {
        let c = blueprint.customizations
        let builder = Builder(architecture: definition.architecture, imageBytes: definition.imageType.diskSize,
                              origin: blueprint.origin, ids: ids)
        let layout: DiskLayout
        if let disk = c.disk {
            layout = try builder.custom(disk)
        } else if !c.filesystems.isEmpty {
            layout = try builder.mountpoints(c.filesystems, mode: c.partitioningMode)
        } else {
            layout = try builder.mountpoints([], mode: .raw)
        }
        if layout.label == .gpt, layout.partitions.count > 128 {
            let key = c.disk != nil ? "customizations.disk.partitions" : "customizations.filesystem"
            throw builder.error(key, "a GPT table holds at most 128 partitions, and this one needs \(layout.partitions.count); put filesystems into an LVM volume group")
        }
        if layout.sizeBytes > maximumBytes {
            let key = c.disk != nil ? "customizations.disk" : "customizations.filesystem"
            throw builder.error(key, "the disk would be \(describe(bytes: layout.sizeBytes)), more than the \(describe(bytes: maximumBytes)) Kiln builds; make the partitions smaller")
        }
        return layout
    }

    /// `3 GiB`, `300 MiB`, `1.5 GiB`, `2176 MiB`, `4096 bytes`; `about 3.0 TiB` when no unit gives it exactly in a few digits.
    package static func describe(bytes: Int64) -> String {
        let units: [(String, Int64)] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        let fitting = units.filter { bytes >= $0.1 }
        for (unit, size) in fitting where bytes / size < 10000 {
            if bytes % size == 0 { return "\(bytes / size) \(unit)" }
            if (bytes * 10) % size == 0 { return "\(bytes * 10 / size / 10).\(bytes * 10 / size % 10) \(unit)" }
        }
        guard let (unit, size) = fitting.first else { return "\(bytes) bytes" }
        let tenths = (bytes * 10 + size / 2) / size
        return "about \(tenths / 10).\(tenths % 10) \(unit)"
    }

    /// Builds layouts for one image type and blueprint.
    struct Builder {
        let architecture: Architecture
        let imageBytes: Int64
        let origin: BlueprintOrigin
        let ids: DeterministicIDs

        func error(_ keyPath: String, _ reason: String) -> BlueprintError {
            origin.error(keyPath, .invalid(reason: reason))
        }

        func sectors(_ bytes: Int64) -> Int64 { (bytes + DiskLayout.sectorSize - 1) / DiskLayout.sectorSize }

        // MARK: [[customizations.filesystem]]

        /// The image type's table with `/` and `/boot/efi` grown to their minimum sizes and the
        /// other mountpoints added: plain ext4 partitions (`raw`), or logical volumes of `rootvg`
        /// next to the root volume (`lvm`; `auto-lvm` when a mountpoint other than `/`, `/boot`
        /// or `/boot/efi` is asked for) with a plain `/boot`.
        func mountpoints(_ filesystems: [Blueprint.Filesystem], mode: Blueprint.PartitioningMode?) throws(BlueprintError) -> DiskLayout {
            var rootBytes = DiskLayout.rootMinimumBytes
            var espBytes: Int64 = 0
            var extra: [(mountpoint: String, bytes: Int64, keyPath: String)] = []
            for (i, fs) in filesystems.enumerated() {
                let key = "customizations.filesystem[\(i)]"
                try checkSize(fs.minSize, at: key + ".minsize", allowZero: true)
                switch fs.mountpoint {
                case "/": rootBytes = max(rootBytes, fs.minSize)
                case "/boot/efi": espBytes = max(espBytes, fs.minSize)
                default: extra.append((fs.mountpoint, max(fs.minSize, DiskLayout.filesystemFloor(fs.mountpoint)), key))
                }
            }
            let boot = extra.first { $0.mountpoint == "/boot" }
            let lvm = switch mode {
            case .raw: false
            case .lvm: true
            case .autoLVM, nil: extra.contains { $0.mountpoint != "/boot" }
            }
            var layout = DiskLayout.unplaced(label: .gpt, ids: ids)
            layout.partitions = DiskLayout.bootPartitions(architecture: architecture, label: .gpt, esp: true, ids: ids)
            if let esp = layout.partitions.firstIndex(where: { $0.role == .esp }) {
                layout.partitions[esp].size = max(layout.partitions[esp].size, sectors(espBytes))
            }
            let rootFS = Filesystem(type: .ext4, mountpoint: "/", uuid: ids.uuid("root-filesystem"), label: "root")
            if lvm {
                var vg = VolumeGroup(name: DiskLayout.rootVolumeGroup, uuid: ids.lvmID("vg:\(DiskLayout.rootVolumeGroup)"),
                                     pvUUID: ids.lvmID("pv:\(DiskLayout.rootVolumeGroup)"), logicalVolumes: [])
                var names: Set<String> = []
                func add(_ fs: Filesystem, bytes: Int64, grows: Bool, keyPath: String?) {
                    let name = Self.unique(BlueprintRules.defaultLogicalVolumeName(mountpoint: fs.mountpoint), in: names)
                    names.insert(name)
                    vg.logicalVolumes.append(LogicalVolume(name: name, uuid: ids.lvmID("lv:\(vg.name)/\(name)"),
                                                           extents: VolumeGroup.extents(for: sectors(bytes)),
                                                           filesystem: fs, grows: grows, keyPath: keyPath))
                }
                add(rootFS, bytes: rootBytes, grows: true, keyPath: nil)
                for e in extra where e.mountpoint != "/boot" {
                    add(Filesystem(type: .ext4, mountpoint: e.mountpoint, uuid: ids.uuid("filesystem:\(e.mountpoint)"), keyPath: e.keyPath),
                        bytes: e.bytes, grows: false, keyPath: e.keyPath)
                }
                layout.partitions.append(Partition(role: .lvm, name: vg.name, size: 0, type: DiskLayout.lvmType,
                                                   uuid: ids.uuid("root-partition"), content: .volumeGroup(vg)))
                layout.partitions.append(plain("/boot", type: .ext4, bytes: boot?.bytes ?? DiskLayout.bootBytes, label: .gpt,
                                               keyPath: boot?.keyPath))
            } else {
                layout.partitions.append(Partition(role: .root, name: "root", size: sectors(rootBytes), type: architecture.rootPartitionType,
                                                   uuid: ids.uuid("root-partition"), content: .filesystem(rootFS)))
                for e in extra { layout.partitions.append(plain(e.mountpoint, type: .ext4, bytes: e.bytes, label: .gpt, keyPath: e.keyPath)) }
            }
            return layout.placed(minimumBytes: imageBytes)
        }

        /// A plain partition Kiln adds for a mountpoint.
        func plain(_ mountpoint: String, type: FilesystemType, bytes: Int64, label: Label, keyPath: String?) -> Partition {
            let role: Role = mountpoint == "/boot" ? .boot : .data
            let fs = Filesystem(type: type, mountpoint: mountpoint, uuid: ids.uuid("filesystem:\(mountpoint)"),
                                label: mountpoint == "/boot" ? "boot" : nil, keyPath: keyPath)
            return Partition(role: role, name: Self.partitionName(mountpoint), size: sectors(bytes),
                             type: Self.partitionType(role, label: label, architecture: architecture),
                             uuid: ids.uuid("partition:\(mountpoint)"), content: .filesystem(fs), keyPath: keyPath)
        }

        // MARK: [customizations.disk]

        /// The user's table in their order, after what booting needs (on x86_64 with GPT the
        /// BIOS boot partition; the ESP unless they gave `/boot/efi`; a 1 GiB ext4 `/boot` when
        /// `/` is on LVM without one), with a root filesystem added when none was given (a
        /// logical volume in the first volume group, else a plain partition at the end).
        func custom(_ disk: Blueprint.Disk) throws(BlueprintError) -> DiskLayout {
            let label: Label
            switch disk.type ?? "gpt" {
            case "gpt": label = .gpt
            case "dos": label = .dos
            case let other: throw error("customizations.disk.type", "\"\(other)\" is not a partition table type; use \"gpt\" or \"dos\"")
            }
            if let minSize = disk.minSize { try checkSize(minSize, at: "customizations.disk.minsize", allowZero: true) }

            var hasESP = false, hasBoot = false, hasRoot = false, rootOnLVM = false, hasVolumeGroup = false
            for p in disk.partitions {
                switch p {
                case .plain(let fs):
                    hasESP = hasESP || fs.mountpoint == "/boot/efi"
                    hasBoot = hasBoot || fs.mountpoint == "/boot"
                    hasRoot = hasRoot || fs.mountpoint == "/"
                case .lvm(let vg):
                    hasVolumeGroup = true
                    if vg.logicalVolumes.contains(where: { $0.mountpoint == "/" }) { hasRoot = true; rootOnLVM = true }
                }
            }
            var layout = DiskLayout.unplaced(label: label, ids: ids)
            layout.partitions = DiskLayout.bootPartitions(architecture: architecture, label: label, esp: !hasESP, ids: ids)
            if !hasBoot, rootOnLVM || (!hasRoot && hasVolumeGroup) {
                layout.partitions.append(plain("/boot", type: .ext4, bytes: DiskLayout.bootBytes, label: label, keyPath: nil))
            }
            var groupNames: [String: String] = [:]
            for (i, p) in disk.partitions.enumerated() {
                let key = "customizations.disk.partitions[\(i)]"
                switch p {
                case .plain(let spec):
                    layout.partitions.append(try plainPartition(spec, keyPath: key, label: label))
                case .lvm(let spec):
                    var name = spec.name
                    if name.isEmpty { name = Self.unique("vg", in: Set(groupNames.keys), alwaysNumber: true) }
                    if let first = groupNames[name] {
                        throw error(key + ".name", "volume group \"\(name)\" is already defined at \(first); give each volume group its own name")
                    }
                    groupNames[name] = key
                    layout.partitions.append(try lvmPartition(spec, name: name, keyPath: key, label: label))
                }
            }
            if !hasRoot {
                let rootFS = Filesystem(type: .ext4, mountpoint: "/", uuid: ids.uuid("root-filesystem"), label: "root")
                if let i = layout.partitions.firstIndex(where: { $0.volumeGroup != nil }), var vg = layout.partitions[i].volumeGroup {
                    let name = Self.unique("rootlv", in: Set(vg.logicalVolumes.map(\.name)))
                    vg.logicalVolumes.append(LogicalVolume(name: name, uuid: ids.lvmID("lv:\(vg.name)/\(name)"),
                                                           extents: VolumeGroup.extents(for: sectors(DiskLayout.rootMinimumBytes)),
                                                           filesystem: rootFS, grows: false, keyPath: nil))
                    layout.partitions[i].content = .volumeGroup(vg)
                } else {
                    layout.partitions.append(Partition(role: .root, name: "root", size: sectors(DiskLayout.rootMinimumBytes),
                                                       type: Self.partitionType(.root, label: label, architecture: architecture),
                                                       uuid: ids.uuid("root-partition"), content: .filesystem(rootFS)))
                }
            }
            if label == .dos, layout.partitions.count > 4 {
                let added = layout.partitions.filter { $0.keyPath == nil }.map { $0.filesystem?.mountpoint ?? $0.role.rawValue }
                throw error("customizations.disk.partitions", "a dos partition table holds at most 4 primary partitions, and this one needs \(layout.partitions.count) (\(disk.partitions.count) given, plus \(added.joined(separator: ", ")) that \(architecture.rawValue) needs to boot); use type = \"gpt\", or put filesystems into an LVM volume group")
            }
            if label == .dos, let boot = layout.partitions.firstIndex(where: { $0.filesystem?.mountpoint == "/boot" })
                ?? layout.partitions.firstIndex(where: { $0.filesystem?.mountpoint == "/" }) {
                layout.partitions[boot].bootable = true  // some BIOSes only boot a disk with an active partition
            }
            return layout.placed(minimumBytes: max(imageBytes, disk.minSize ?? 0))
        }

        func plainPartition(_ spec: Blueprint.FilesystemSpec, keyPath: String, label: Label) throws(BlueprintError) -> Partition {
            let fs = try filesystem(spec, keyPath: keyPath)
            let mountpoint = fs.mountpoint
            let role: Role = switch mountpoint {
            case "/": .root
            case "/boot": .boot
            case "/boot/efi": .esp
            case nil: .swap
            default: .data
            }
            var type = Self.partitionType(role, label: label, architecture: architecture)
            if let given = spec.partType {
                if let problem = BlueprintRules.partTypeProblem(given, table: label.rawValue) {
                    throw error(keyPath + ".part_type", problem)
                }
                type = given
            }
            var bytes = spec.minSize
            if role == .root { bytes = max(bytes, DiskLayout.rootMinimumBytes) }
            let purpose = mountpoint ?? keyPath
            let uuid = switch role {
            case .root: ids.uuid("root-partition")
            case .esp: ids.uuid("esp-partition")
            default: ids.uuid("partition:\(purpose)")
            }
            let name = spec.label ?? (role == .esp ? "ESP" : mountpoint.map(Self.partitionName) ?? "swap")
            return Partition(role: role, name: name, size: sectors(bytes), type: type, uuid: uuid, content: .filesystem(fs), keyPath: keyPath)
        }

        func lvmPartition(_ spec: Blueprint.VolumeGroup, name: String, keyPath: String, label: Label) throws(BlueprintError) -> Partition {
            try checkSize(spec.minSize, at: keyPath + ".minsize", allowZero: true)
            var vg = VolumeGroup(name: name, uuid: ids.lvmID("vg:\(name)"), pvUUID: ids.lvmID("pv:\(name)"), logicalVolumes: [])
            var named: [String: String] = [:]
            for (j, lv) in spec.logicalVolumes.enumerated() {
                let key = "\(keyPath).logical_volumes[\(j)]"
                if let mp = lv.mountpoint, mp == "/boot" || mp == "/boot/efi" {
                    throw error(key + ".mountpoint", "\(mp) must be a plain partition: GRUB\(mp == "/boot/efi" ? " and the firmware" : "") cannot read it from LVM; move it out of the volume group into its own partition")
                }
                let fs = try filesystem(lv, keyPath: key)
                var lvName = lv.name ?? ""
                if lvName.isEmpty {
                    lvName = Self.unique(BlueprintRules.defaultLogicalVolumeName(mountpoint: fs.mountpoint),
                                         in: Set(named.keys).union(spec.logicalVolumes.compactMap(\.name)))
                } else if let first = named[lvName] {
                    throw error(key + ".name", "logical volume \"\(lvName)\" is already defined at \(first) in volume group \"\(name)\"; give each logical volume its own name")
                }
                named[lvName] = key
                let bytes = fs.mountpoint == "/" ? max(lv.minSize, DiskLayout.rootMinimumBytes) : lv.minSize
                vg.logicalVolumes.append(LogicalVolume(name: lvName, uuid: ids.lvmID("lv:\(name)/\(lvName)"),
                                                       extents: VolumeGroup.extents(for: sectors(bytes)), filesystem: fs,
                                                       grows: false, keyPath: key))
            }
            var type = Self.partitionType(.lvm, label: label, architecture: architecture)
            if let given = spec.partType {
                if let problem = BlueprintRules.partTypeProblem(given, table: label.rawValue) { throw error(keyPath + ".part_type", problem) }
                type = given
            }
            let hasRoot = vg.logicalVolumes.contains { $0.filesystem.mountpoint == "/" }
            return Partition(role: .lvm, name: name, size: sectors(spec.minSize), type: type,
                             uuid: hasRoot ? ids.uuid("root-partition") : ids.uuid("partition:vg:\(name)"),
                             content: .volumeGroup(vg), keyPath: keyPath)
        }

        /// The filesystem of a partition or logical volume, checked against what its type and mountpoint need.
        func filesystem(_ spec: Blueprint.FilesystemSpec, keyPath: String) throws(BlueprintError) -> Filesystem {
            guard let type = FilesystemType(rawValue: spec.fsType) else {
                throw error(keyPath + ".fs_type", "\"\(spec.fsType)\" is not a filesystem Kiln makes; use ext4, xfs, vfat or swap")
            }
            let mountpoint = type == .swap ? nil : spec.mountpoint
            if type != .swap, mountpoint == nil {
                throw error(keyPath + ".mountpoint", "a \(type.rawValue) filesystem needs a mountpoint; add one, or use fs_type = \"swap\"")
            }
            try checkSize(spec.minSize, at: keyPath + ".minsize", allowZero: mountpoint == "/")
            let size = describe(bytes: spec.minSize)
            switch (type, mountpoint) {
            case (.vfat, "/"):
                throw error(keyPath + ".fs_type", "/ cannot be vfat (no owners, permissions or symbolic links); use ext4 or xfs")
            case (.vfat, "/boot/efi") where spec.minSize < DiskLayout.espMinimumBytes:
                throw error(keyPath + ".minsize", "the ESP (/boot/efi) needs at least \(describe(bytes: DiskLayout.espMinimumBytes)) for FAT32, not \(size); make it larger (Kiln's own is 124 MiB)")
            case (_, "/boot/efi") where type != .vfat:
                throw error(keyPath + ".fs_type", "/boot/efi is the EFI system partition and must be vfat, not \(type.rawValue)")
            case (.xfs, _) where spec.minSize < DiskLayout.xfsMinimumBytes:
                throw error(keyPath + ".minsize", "an xfs filesystem needs at least \(describe(bytes: DiskLayout.xfsMinimumBytes)) (mkfs.xfs refuses smaller ones), not \(size); make it larger or use ext4")
            case (.ext4, _) where spec.minSize < DiskLayout.ext4MinimumBytes && mountpoint != "/":
                throw error(keyPath + ".minsize", "an ext4 filesystem needs at least \(describe(bytes: DiskLayout.ext4MinimumBytes)), not \(size); make it larger")
            default: break
            }
            let purpose = mountpoint ?? keyPath
            let uuid: String = switch (type, mountpoint) {
            case (_, "/"): ids.uuid("root-filesystem")
            case (.vfat, "/boot/efi"): ids.fatVolumeID("esp-filesystem")
            case (.vfat, _): ids.fatVolumeID("filesystem:\(purpose)")
            default: ids.uuid("filesystem:\(purpose)")
            }
            var label = spec.label
            if label == nil, mountpoint == "/" { label = "root" }
            if label == nil, mountpoint == "/boot/efi" { label = "ESP" }
            return Filesystem(type: type, mountpoint: mountpoint, uuid: uuid, label: label, keyPath: keyPath)
        }

        func checkSize(_ bytes: Int64, at keyPath: String, allowZero: Bool) throws(BlueprintError) {
            if bytes < 0 || (bytes == 0 && !allowZero) {
                throw error(keyPath, "must be more than 0; give the size, e.g. \"1 GiB\"")
            }
            if bytes > DiskLayout.maximumBytes {
                throw error(keyPath, "\(describe(bytes: bytes)) is more than the \(describe(bytes: DiskLayout.maximumBytes)) Kiln builds; give a smaller size")
            }
        }

        /// `base`, or `base00`, `base01`, … when taken (osbuild's naming).
        static func unique(_ base: String, in taken: Set<String>, alwaysNumber: Bool = false) -> String {
            if !alwaysNumber, !taken.contains(base) { return base }
            var n = 0
            while taken.contains(base + (n < 10 ? "0\(n)" : "\(n)")) { n += 1 }
            return base + (n < 10 ? "0\(n)" : "\(n)")
        }

        /// GPT partition name for a mountpoint: `/var/log` → `var-log`, at most 36 characters.
        static func partitionName(_ mountpoint: String) -> String {
            mountpoint == "/" ? "root" : String(mountpoint.dropFirst().replacingOccurrences(of: "/", with: "-").prefix(36))
        }

        static func partitionType(_ role: Role, label: Label, architecture: Architecture) -> String {
            switch (role, label) {
            case (.biosBoot, _): DiskLayout.biosBootType
            case (.esp, .gpt): DiskLayout.espType
            case (.esp, .dos): "ef"
            case (.root, .gpt): architecture.rootPartitionType
            case (.boot, .gpt): DiskLayout.xbootldrType
            case (.data, .gpt): DiskLayout.linuxDataType
            case (.swap, .gpt): DiskLayout.swapType
            case (.swap, .dos): "82"
            case (.lvm, .gpt): DiskLayout.lvmType
            case (.lvm, .dos): "8e"
            case (.root, .dos), (.boot, .dos), (.data, .dos): "83"
            }
        }
    }
}

extension DeterministicIDs {
    /// An LVM identifier for `purpose`: 32 letters and digits, shown as 6-4-4-4-4-4-6 groups as LVM prints them.
    package func lvmID(_ purpose: String) -> String {
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        let digest = SHA256.hash(data: Data("\(seed)/lvm/\(purpose)".utf8))
        let chars = digest.prefix(32).map { alphabet[Int($0) % alphabet.count] }
        var out = ""
        var i = 0
        for group in [6, 4, 4, 4, 4, 4, 6] {
            if !out.isEmpty { out += "-" }
            out += String(chars[i..<i + group])
            i += group
        }
        return out
    }
}
