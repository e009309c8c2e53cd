import Manifest

/// A disk image: its partition table (GPT or DOS), the filesystems on the
/// partitions and the LVM volume groups with their logical volumes. All
/// positions and sizes are in 512-byte sectors.
///
/// Without customizations it is laid out like Debian's cloud images: on
/// x86_64 a BIOS boot partition at sector 2048 (3 MiB), the ESP at 8192
/// (124 MiB) and the root filesystem from 262144 to the end; on aarch64 the
/// ESP at 2048 (127 MiB) and root from 262144. `DiskLayout+Blueprint.swift`
/// adds what `[[customizations.filesystem]]` and `[customizations.disk]` ask for.
package struct DiskLayout: Sendable, Hashable {
    package static let sectorSize: Int64 = 512
    /// One MiB in sectors: every partition starts and ends on a MiB boundary.
    package static let mib: Int64 = 2048
    /// GPT keeps its backup header and entries in the last 33 sectors.
    static let gptFooter: Int64 = 33

    package static let biosBootType = "21686148-6449-6E6F-744E-656564454649"
    package static let espType = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    /// Extended boot loader partition (the discoverable-partitions type for a separate `/boot`).
    package static let xbootldrType = "BC13C2FF-59E6-4262-A352-B275FD6F7172"
    package static let linuxDataType = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    package static let lvmType = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
    package static let swapType = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"

    package enum Label: String, Sendable, Hashable { case gpt, dos }

    /// What a partition is for.
    package enum Role: String, Sendable, Hashable {
        case biosBoot = "bios", esp, root, boot, data, swap, lvm
    }

    package enum FilesystemType: String, Sendable, Hashable, CaseIterable {
        case ext4, xfs, vfat, swap
    }

    /// A filesystem (or swap area) and how `/etc/fstab` mounts it.
    package struct Filesystem: Sendable, Hashable {
        package var type: FilesystemType
        /// nil for swap.
        package var mountpoint: String?
        /// A UUID for ext4, xfs and swap; the 8-hex-digit volume ID for vfat.
        package var uuid: String
        package var label: String?
        /// Where the blueprint asked for it (`customizations.disk.partitions[2]`), for messages; nil when Kiln added it.
        package var keyPath: String?

        package init(type: FilesystemType, mountpoint: String?, uuid: String, label: String? = nil, keyPath: String? = nil) {
            self.type = type
            self.mountpoint = mountpoint
            self.uuid = uuid
            self.label = label
            self.keyPath = keyPath
        }

        /// The UUID as blkid, fstab and GRUB's `search --fs-uuid` spell it.
        package var fsUUID: String { type == .vfat ? DeterministicIDs.fatUUID(uuid) : uuid }
    }

    /// A linear logical volume: `extents` physical extents right after those of the volumes before it.
    package struct LogicalVolume: Sendable, Hashable {
        package var name: String
        /// LVM's 32-character identifier (shown as 6-4-4-4-4-4-6).
        package var uuid: String
        package var extents: Int64
        package var filesystem: Filesystem
        /// Takes the volume group's free extents when the disk is laid out.
        package var grows: Bool
        package var keyPath: String?
    }

    /// A volume group on one physical volume (the partition).
    package struct VolumeGroup: Sendable, Hashable {
        /// 4 MiB extents, as LVM's default.
        package static let extentSize: Int64 = 8192
        /// The first extent starts 1 MiB into the physical volume (label and metadata area before it).
        package static let peStart: Int64 = 2048

        package var name: String
        package var uuid: String
        package var pvUUID: String
        package var logicalVolumes: [LogicalVolume]

        /// Sectors the physical volume needs for its volumes.
        package var minimumSectors: Int64 {
            Self.peStart + logicalVolumes.reduce(0) { $0 + $1.extents } * Self.extentSize
        }

        /// Extents needed to hold `sectors`.
        package static func extents(for sectors: Int64) -> Int64 { (sectors + extentSize - 1) / extentSize }
    }

    package enum Content: Sendable, Hashable {
        /// Nothing Kiln formats (the BIOS boot partition).
        case none
        case filesystem(Filesystem)
        case volumeGroup(VolumeGroup)
    }

    package struct Partition: Sendable, Hashable {
        package var role: Role
        /// GPT partition name (ignored for DOS).
        package var name: String
        package var start: Int64
        package var size: Int64
        /// GPT type GUID, or DOS type as two hex digits.
        package var type: String
        /// GPT partition UUID (ignored for DOS).
        package var uuid: String
        /// DOS active flag.
        package var bootable: Bool
        package var content: Content
        /// Where the blueprint asked for it, for messages; nil when Kiln added it.
        package var keyPath: String?

        package init(role: Role, name: String, start: Int64 = 0, size: Int64, type: String, uuid: String,
                     bootable: Bool = false, content: Content, keyPath: String? = nil) {
            self.role = role
            self.name = name
            self.start = start
            self.size = size
            self.type = type
            self.uuid = uuid
            self.bootable = bootable
            self.content = content
            self.keyPath = keyPath
        }

        package var volumeGroup: VolumeGroup? {
            if case .volumeGroup(let vg) = content { return vg }
            return nil
        }

        package var filesystem: Filesystem? {
            if case .filesystem(let fs) = content { return fs }
            return nil
        }
    }

    /// A filesystem with the region of the disk it occupies.
    package struct Volume: Sendable, Hashable {
        package var filesystem: Filesystem
        /// First sector on the disk.
        package var start: Int64
        package var size: Int64
        /// 0-based index of the partition in the table (of the volume group's partition for a logical volume).
        package var partitionIndex: Int
        /// The volume group and logical volume of a filesystem on LVM.
        package var volumeGroup: String?
        package var logicalVolume: String?
    }

    package var label: Label
    package var sizeBytes: Int64
    /// GPT: the disk's UUID; DOS: the 8-hex-digit disk identifier.
    package var uuid: String
    /// In table order (partition N is `partitions[N - 1]`); the partition holding `/` lies last on the disk.
    package var partitions: [Partition]

    package var sectors: Int64 { sizeBytes / Self.sectorSize }

    package func partition(_ role: Role) -> Partition? { partitions.first { $0.role == role } }
    /// 0-based index of the partition in the table.
    package func index(of role: Role) -> Int? { partitions.firstIndex { $0.role == role } }

    /// Every filesystem and swap area with its region, in table order (a volume group's in its order).
    package var volumes: [Volume] {
        var out: [Volume] = []
        for (i, p) in partitions.enumerated() {
            switch p.content {
            case .none: break
            case .filesystem(let fs): out.append(Volume(filesystem: fs, start: p.start, size: p.size, partitionIndex: i))
            case .volumeGroup(let vg):
                var extent: Int64 = 0
                for lv in vg.logicalVolumes {
                    out.append(Volume(filesystem: lv.filesystem,
                                      start: p.start + VolumeGroup.peStart + extent * VolumeGroup.extentSize,
                                      size: lv.extents * VolumeGroup.extentSize, partitionIndex: i,
                                      volumeGroup: vg.name, logicalVolume: lv.name))
                    extent += lv.extents
                }
            }
        }
        return out
    }

    package func volume(mountpoint: String) -> Volume? { volumes.first { $0.filesystem.mountpoint == mountpoint } }

    /// The root filesystem.
    package var root: Volume {
        guard let root = volume(mountpoint: "/") else { preconditionFailure("a DiskLayout always has a root filesystem") }
        return root
    }

    /// The filesystem that holds `/boot`: a separate one, or root.
    package var boot: Volume { volume(mountpoint: "/boot") ?? root }
    /// Whether `/boot` is a filesystem of its own (GRUB's paths are then relative to it).
    package var hasSeparateBoot: Bool { volume(mountpoint: "/boot") != nil }

    /// UUID of the root filesystem.
    package var rootFilesystemUUID: String { root.filesystem.uuid }
    /// FAT volume ID of the ESP (8 hex digits).
    package var espVolumeID: String? { volume(mountpoint: "/boot/efi")?.filesystem.uuid }

    package var volumeGroups: [VolumeGroup] { partitions.compactMap(\.volumeGroup) }
    package var usesLVM: Bool { !volumeGroups.isEmpty }
    package func uses(_ type: FilesystemType) -> Bool { volumes.contains { $0.filesystem.type == type } }

    /// The image type's disk without customizations.
    package init(architecture: Architecture, sizeBytes: Int64, ids: DeterministicIDs) {
        var layout = Self.unplaced(label: .gpt, ids: ids)
        layout.partitions = Self.bootPartitions(architecture: architecture, label: .gpt, esp: true, ids: ids)
        layout.partitions.append(Partition(role: .root, name: "root", size: 0, type: architecture.rootPartitionType,
                                           uuid: ids.uuid("root-partition"),
                                           content: .filesystem(Filesystem(type: .ext4, mountpoint: "/", uuid: ids.uuid("root-filesystem"),
                                                                           label: "root"))))
        self = layout.placed(minimumBytes: sizeBytes)
    }

    /// A layout with no partitions yet.
    static func unplaced(label: Label, ids: DeterministicIDs) -> DiskLayout {
        DiskLayout(label: label, sizeBytes: 0, uuid: label == .gpt ? ids.uuid("disk") : ids.fatVolumeID("dos-disk-id"),
                   partitions: [])
    }

    private init(label: Label, sizeBytes: Int64, uuid: String, partitions: [Partition]) {
        self.label = label
        self.sizeBytes = sizeBytes
        self.uuid = uuid
        self.partitions = partitions
    }

    /// What the firmware needs at the start of the disk: on x86_64 with GPT a
    /// BIOS boot partition at 1 MiB (3 MiB) and, when `esp`, the ESP at 4 MiB
    /// (124 MiB); otherwise the ESP at 1 MiB (127 MiB). The next partition
    /// starts at 128 MiB either way. With DOS, BIOS GRUB lives in the gap
    /// before the first partition instead.
    static func bootPartitions(architecture: Architecture, label: Label, esp: Bool, ids: DeterministicIDs) -> [Partition] {
        var parts: [Partition] = []
        let mib = Self.mib
        if architecture == .x86_64, label == .gpt {
            parts.append(Partition(role: .biosBoot, name: "BIOS", start: mib, size: 3 * mib, type: Self.biosBootType,
                                   uuid: ids.uuid("bios-partition"), content: .none))
        }
        if esp {
            let start = parts.isEmpty ? mib : 4 * mib
            parts.append(Partition(role: .esp, name: "ESP", start: start, size: 128 * mib - start,
                                   type: label == .gpt ? Self.espType : "ef", uuid: ids.uuid("esp-partition"),
                                   content: .filesystem(Self.espFilesystem(ids: ids))))
        }
        return parts
    }

    static func espFilesystem(ids: DeterministicIDs, label: String? = "ESP", keyPath: String? = nil) -> Filesystem {
        Filesystem(type: .vfat, mountpoint: "/boot/efi", uuid: ids.fatVolumeID("esp-filesystem"), label: label, keyPath: keyPath)
    }

    /// The index of the partition that holds `/` (directly or in its volume group).
    var rootContainerIndex: Int? {
        partitions.firstIndex { p in
            switch p.content {
            case .filesystem(let fs): fs.mountpoint == "/"
            case .volumeGroup(let vg): vg.logicalVolumes.contains { $0.filesystem.mountpoint == "/" }
            case .none: false
            }
        }
    }

    /// Positions every partition and sizes the disk, as osbuild's `relayout`:
    /// partitions in table order, each on a MiB boundary at or after its
    /// requested start, except the one holding `/`, which comes last on the
    /// disk and takes what remains of `minimumBytes` (the disk grows when the
    /// partitions need more). A volume group's growing volume takes the
    /// group's free extents. Sizes already in the partitions are minimums.
    func placed(minimumBytes: Int64) -> DiskLayout {
        var layout = self
        let mib = Self.mib
        func alignUp(_ s: Int64) -> Int64 { (s + mib - 1) / mib * mib }
        let rootIndex = rootContainerIndex
        var cursor = mib
        for i in layout.partitions.indices where i != rootIndex {
            var p = layout.partitions[i]
            if let vg = p.volumeGroup { p.size = max(p.size, vg.minimumSectors) }
            p.start = alignUp(max(cursor, p.start))
            p.size = alignUp(max(p.size, 1))
            cursor = p.start + p.size
            layout.partitions[i] = p
        }
        let footer = label == .gpt ? Self.gptFooter : 0
        var end = cursor
        if let rootIndex {
            var root = layout.partitions[rootIndex]
            root.start = alignUp(max(cursor, root.start))
            let needed = max(root.size, root.volumeGroup?.minimumSectors ?? 0)
            end = root.start + alignUp(max(needed, 1))
            layout.partitions[rootIndex] = root
        }
        let sectors = alignUp(max(minimumBytes / Self.sectorSize, end + footer))
        layout.sizeBytes = sectors * Self.sectorSize
        if let rootIndex {
            // The root container ends on the last MiB boundary before the GPT footer.
            var root = layout.partitions[rootIndex]
            root.size = (sectors - footer) / mib * mib - root.start
            if case .volumeGroup(var vg) = root.content, let grower = vg.logicalVolumes.firstIndex(where: \.grows) {
                let total = (root.size - VolumeGroup.peStart) / VolumeGroup.extentSize
                let others = vg.logicalVolumes.enumerated().filter { $0.offset != grower }.reduce(0) { $0 + $1.element.extents }
                vg.logicalVolumes[grower].extents = max(vg.logicalVolumes[grower].extents, total - others)
                root.content = .volumeGroup(vg)
            }
            layout.partitions[rootIndex] = root
        }
        return layout
    }
}
