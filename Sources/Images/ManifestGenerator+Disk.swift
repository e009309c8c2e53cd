import Manifest
import StageOptions

// The disk side of the manifest: the partition table and filesystems the
// blueprint's `filesystem`/`disk` customizations ask for, the `image`
// pipeline that writes them, and the stages a disk boots with.
extension ManifestGenerator {
    /// The disk of the request's image type, with the blueprint's customizations.
    static func diskLayout(
        _ request: ImageRequest, _ def: ImageDefinition,
        _ ids: DeterministicIDs
    ) throws(BlueprintError) -> DiskLayout {
        try def.diskLayout(ids: ids, blueprint: request.blueprint)
    }

    /// Checks the blueprint's `filesystem`/`disk` customizations against the image type: the
    /// layout they give must be one Kiln can build and boot. Image types without a disk (tar,
    /// container) ignore them, as osbuild-composer does.
    static func validateDisk(_ request: ImageRequest) throws(BlueprintError) {
        let c = request.blueprint.customizations
        guard c.disk != nil || !c.filesystems.isEmpty, request.imageType.isDisk,
            let def = try? ImageDefinition(
                distro: request.distro, architecture: request.architecture,
                imageType: request.imageType)
        else { return }
        _ = try def.diskLayout(ids: DeterministicIDs(seed: request.seed), blueprint: request.blueprint)
    }

    /// Packages the disk layout needs in the tree: lvm2 (the initramfs activates the root
    /// volume group with it) and xfsprogs (fsck.xfs, xfs_growfs).
    static func diskPackages(_ request: ImageRequest) -> [String] {
        let c = request.blueprint.customizations
        guard request.imageType.isDisk, c.disk != nil || !c.filesystems.isEmpty,
            let def = try? ImageDefinition(distro: request.distro, architecture: request.architecture, imageType: request.imageType),
            let disk = try? def.diskLayout(ids: DeterministicIDs(seed: request.seed), blueprint: request.blueprint)
        else { return [] }
        var packages: [String] = []
        if disk.usesLVM { packages.append("lvm2") }
        if disk.uses(.xfs) { packages.append("xfsprogs") }
        return packages
    }

    /// fstab, kernel command line, initramfs and GRUB: what a disk image boots with.
    static func bootStages(_ request: ImageRequest, _ def: ImageDefinition, _ disk: DiskLayout) -> [ManifestStage] {
        let arch = request.architecture
        let rootUUID = disk.rootFilesystemUUID
        var stages: [ManifestStage] = []
        stages.append(ManifestStage(FstabOptions(filesystems: fstab(disk))))
        stages.append(ManifestStage(KernelCmdlineOptions(rootFsUUID: rootUUID, kernelOpts: kernelOptions(request, def))))
        stages.append(ManifestStage(InitramfsOptions()))
        let bootFsUUID = disk.hasSeparateBoot ? disk.boot.filesystem.fsUUID : nil
        let bootFsType = disk.boot.filesystem.type != .ext4 ? disk.boot.filesystem.type.rawValue : nil
        stages.append(
            ManifestStage(
                Grub2ConfigOptions(
                    rootFsUUID: rootUUID, kernelOpts: kernelOptions(request, def), timeout: def.grubTimeout, serial: def.grubSerial,
                    terminal: def.grubTerminal, biosTarget: def.biosTarget, uefiTarget: arch.grubEFITarget,
                    bootFsUUID: bootFsUUID, bootFsType: bootFsType)))
        stages.append(
            ManifestStage(
                Grub2EFIOptions(
                    target: arch.grubEFITarget, rootFsUUID: rootUUID, filename: "/boot/efi/EFI/BOOT/\(arch.efiBinary)",
                    bootFsUUID: bootFsUUID, bootFsType: bootFsType)))
        return stages
    }

    /// `/etc/fstab` entries: `/` first, then the other mountpoints (parents before
    /// children), then swap; everything by filesystem UUID.
    static func fstab(_ disk: DiskLayout) -> [FstabOptions.Filesystem] {
        let filesystems = disk.volumes.map(\.filesystem).sorted { a, b in
            switch (a.mountpoint, b.mountpoint) {
            case (nil, nil): return (a.keyPath ?? "") < (b.keyPath ?? "")
            case (nil, _): return false
            case (_, nil): return true
            case (let x?, let y?): return x == "/" ? y != "/" : y == "/" ? false : x < y
            }
        }
        return filesystems.map { fs in
            let (options, passno): (String, Int) =
                switch (fs.type, fs.mountpoint) {
                case (.swap, _): ("sw", 0)
                case (.ext4, "/"): ("errors=remount-ro", 1)
                case (.vfat, "/boot/efi"): ("umask=0077", 2)
                case (.xfs, _): ("defaults", 0)  // fsck.xfs does nothing; XFS checks itself when mounted
                default: ("defaults", 2)
                }
            return FstabOptions.Filesystem(
                uuid: fs.fsUUID, vfsType: fs.type.rawValue, path: fs.mountpoint ?? "none",
                options: options, freq: 0, passno: passno)
        }
    }

    /// Truncate, partition table, then each partition's filesystem (a volume group and then its
    /// volumes' filesystems, written at their extents), then BIOS GRUB on x86_64.
    static func imagePipeline(_ request: ImageRequest, _ def: ImageDefinition, _ disk: DiskLayout) -> Pipeline {
        func device(start: Int64, size: Int64) -> [String: Device] {
            ["device": .loopback(filename: rawFile, start: start, size: size)]
        }
        let gpt = disk.label == .gpt
        var stages: [ManifestStage] = [
            ManifestStage(TruncateOptions(filename: rawFile, size: ByteSize(bytes: UInt64(disk.sizeBytes)))),
            ManifestStage(
                SfdiskOptions(
                    label: disk.label.rawValue, uuid: disk.uuid,
                    partitions: disk.partitions.map { p in
                        .init(
                            start: UInt64(p.start), size: UInt64(p.size), type: p.type, uuid: gpt ? p.uuid : nil, name: gpt ? p.name : nil,
                            bootable: p.bootable ? true : nil)
                    }), devices: device(start: 0, size: disk.sectors)),
        ]
        let volumes = disk.volumes
        for (index, partition) in disk.partitions.enumerated() {
            if let vg = partition.volumeGroup {
                stages.append(
                    ManifestStage(
                        LVM2CreateOptions(
                            vg_name: vg.name, vg_uuid: vg.uuid, pv_uuid: vg.pvUUID,
                            volumes: vg.logicalVolumes.map { .init(name: $0.name, uuid: $0.uuid, extents: $0.extents) }),
                        devices: device(start: partition.start, size: partition.size)))
            }
            for volume in volumes where volume.partitionIndex == index {
                stages.append(mkfs(volume, among: volumes, device: device(start: volume.start, size: volume.size)))
            }
        }
        if let platform = def.biosTarget {
            let boot = disk.boot
            // GPT: the core image goes into the BIOS boot partition; DOS: into the gap before the first partition.
            let location = disk.label == .gpt ? disk.partition(.biosBoot)?.start : 1
            if let location {
                stages.append(
                    ManifestStage(
                        Grub2InstOptions(
                            filename: rawFile, platform: platform, location: UInt64(location),
                            core: .init(type: "mkimage", partlabel: disk.label.rawValue, filesystem: boot.filesystem.type.rawValue),
                            prefix: .init(
                                type: "partition", partlabel: disk.label.rawValue, number: boot.partitionIndex,
                                path: disk.hasSeparateBoot ? "/grub" : "/boot/grub")),
                        inputs: ["tree": .tree("os")]))
            }
        }
        return Pipeline(name: "image", stages: stages)
    }

    /// The stage that makes `volume`'s filesystem, filled from its mountpoint in the `os` tree
    /// with the mountpoints of the filesystems below it left empty.
    static func mkfs(_ volume: DiskLayout.Volume, among volumes: [DiskLayout.Volume], device: [String: Device]) -> ManifestStage {
        let fs = volume.filesystem
        let tree: [String: Input] = ["tree": .tree("os")]
        func exclude(below mountpoint: String) -> [String]? {
            nonEmpty(excludedMountpoints(under: mountpoint, among: volumes.compactMap(\.filesystem.mountpoint)))
        }
        guard let mountpoint = fs.mountpoint else {
            return ManifestStage(MkswapOptions(uuid: fs.uuid, label: fs.label), devices: device)
        }
        switch fs.type {
        case .vfat:
            let fatSize = mountpoint == "/boot/efi" ? 32 : nil
            return ManifestStage(
                MkfsFatOptions(volid: fs.uuid, label: fs.label, fat_size: fatSize, source: mountpoint),
                inputs: tree, devices: device)
        case .xfs:
            return ManifestStage(
                MkfsXfsOptions(uuid: fs.uuid, label: fs.label, source: mountpoint, exclude: exclude(below: mountpoint)),
                inputs: tree, devices: device)
        default:
            return ManifestStage(
                MkfsExt4Options(uuid: fs.uuid, label: fs.label, source: mountpoint, exclude: exclude(below: mountpoint)),
                inputs: tree, devices: device)
        }
    }

    /// The mountpoints right below `mountpoint` (`/var` but not `/var/log` when both are below `/`).
    static func excludedMountpoints(under mountpoint: String, among all: [String]) -> [String] {
        func isBelow(_ path: String, _ parent: String) -> Bool {
            path != parent && (parent == "/" || path.hasPrefix(parent + "/"))
        }
        let below = all.filter { isBelow($0, mountpoint) }
        return below.filter { path in !below.contains { isBelow(path, $0) } }.sorted()
    }
}
