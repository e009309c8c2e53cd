import Manifest

// The disk side of the manifest: the partition table and filesystems the
// blueprint's `filesystem`/`disk` customizations ask for, the `image`
// pipeline that writes them, and the stages a disk boots with.
extension ManifestGenerator {
    /// The disk of the request's image type, with the blueprint's customizations.
    static func diskLayout(_ request: ImageRequest, _ def: ImageDefinition,
                           _ ids: DeterministicIDs) throws(BlueprintError) -> DiskLayout {
        try def.diskLayout(ids: ids, blueprint: request.blueprint)
    }

    /// Checks the blueprint's `filesystem`/`disk` customizations against the image type: the
    /// layout they give must be one Kiln can build and boot. Image types without a disk (tar,
    /// container) ignore them, as osbuild-composer does.
    static func validateDisk(_ request: ImageRequest) throws(BlueprintError) {
        let c = request.blueprint.customizations
        guard c.disk != nil || !c.filesystems.isEmpty, request.imageType.isDisk,
              let def = try? ImageDefinition(distro: request.distro, architecture: request.architecture,
                                             imageType: request.imageType) else { return }
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
        stages.append(ManifestStage(type: "org.osbuild.fstab", options: ["filesystems": .array(fstab(disk))]))
        stages.append(ManifestStage(type: "org.osbuild.kernel-cmdline", options: [
            "root_fs_uuid": .string(rootUUID), "kernel_opts": .string(kernelOptions(request, def)),
        ]))
        stages.append(ManifestStage(type: "org.kiln.initramfs"))
        var bootFS: [String: JSONValue] = [:]
        if disk.hasSeparateBoot { bootFS["boot_fs_uuid"] = .string(disk.boot.filesystem.fsUUID) }
        if disk.boot.filesystem.type != .ext4 { bootFS["boot_fs_type"] = .string(disk.boot.filesystem.type.rawValue) }
        var grub: [String: JSONValue] = [
            "root_fs_uuid": .string(rootUUID), "kernel_opts": .string(kernelOptions(request, def)),
            "timeout": .int(Int64(def.grubTimeout)), "terminal": strings(def.grubTerminal),
            "uefi_target": .string(arch.grubEFITarget),
        ]
        if let serial = def.grubSerial { grub["serial"] = .string(serial) }
        if let bios = def.biosTarget { grub["bios_target"] = .string(bios) }
        stages.append(ManifestStage(type: "org.kiln.grub2.config", options: grub.merging(bootFS) { $1 }))
        stages.append(ManifestStage(type: "org.kiln.grub2.efi", options: [
            "target": .string(arch.grubEFITarget), "root_fs_uuid": .string(rootUUID),
            "filename": .string("/boot/efi/EFI/BOOT/\(arch.efiBinary)"),
        ].merging(bootFS) { $1 }))
        return stages
    }

    /// `/etc/fstab` entries: `/` first, then the other mountpoints (parents before
    /// children), then swap; everything by filesystem UUID.
    static func fstab(_ disk: DiskLayout) -> [JSONValue] {
        let filesystems = disk.volumes.map(\.filesystem).sorted { a, b in
            switch (a.mountpoint, b.mountpoint) {
            case (nil, nil): return (a.keyPath ?? "") < (b.keyPath ?? "")
            case (nil, _): return false
            case (_, nil): return true
            case (let x?, let y?): return x == "/" ? y != "/" : y == "/" ? false : x < y
            }
        }
        return filesystems.map { fs in
            let (options, passno): (String, Int64) = switch (fs.type, fs.mountpoint) {
            case (.swap, _): ("sw", 0)
            case (.ext4, "/"): ("errors=remount-ro", 1)
            case (.vfat, "/boot/efi"): ("umask=0077", 2)
            case (.xfs, _): ("defaults", 0)  // fsck.xfs does nothing; XFS checks itself when mounted
            default: ("defaults", 2)
            }
            return .object(["uuid": .string(fs.fsUUID), "vfs_type": .string(fs.type.rawValue), "path": .string(fs.mountpoint ?? "none"),
                            "options": .string(options), "freq": 0, "passno": .int(passno)])
        }
    }

    /// Truncate, partition table, then each partition's filesystem (a volume group and then its
    /// volumes' filesystems, written at their extents), then BIOS GRUB on x86_64.
    static func imagePipeline(_ request: ImageRequest, _ def: ImageDefinition, _ disk: DiskLayout) -> Pipeline {
        func device(start: Int64, size: Int64) -> [String: Device] {
            ["device": Device(type: "org.osbuild.loopback",
                              options: ["filename": .string(rawFile), "start": .int(start), "size": .int(size)])]
        }
        var stages: [ManifestStage] = [
            ManifestStage(type: "org.osbuild.truncate", options: ["filename": .string(rawFile), "size": .int(disk.sizeBytes)]),
            ManifestStage(type: "org.osbuild.sfdisk", options: [
                "label": .string(disk.label.rawValue), "uuid": .string(disk.uuid),
                "partitions": .array(disk.partitions.map { p in
                    var o: [String: JSONValue] = ["start": .int(p.start), "size": .int(p.size), "type": .string(p.type)]
                    if disk.label == .gpt {
                        o["uuid"] = .string(p.uuid)
                        o["name"] = .string(p.name)
                    }
                    if p.bootable { o["bootable"] = true }
                    return .object(o)
                }),
            ], devices: device(start: 0, size: disk.sectors)),
        ]
        let volumes = disk.volumes
        for (index, partition) in disk.partitions.enumerated() {
            if let vg = partition.volumeGroup {
                stages.append(ManifestStage(type: "org.kiln.lvm2.create", options: [
                    "vg_name": .string(vg.name), "vg_uuid": .string(vg.uuid), "pv_uuid": .string(vg.pvUUID),
                    "volumes": .array(vg.logicalVolumes.map { lv in
                        .object(["name": .string(lv.name), "uuid": .string(lv.uuid), "extents": .int(lv.extents)])
                    }),
                ], devices: device(start: partition.start, size: partition.size)))
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
                stages.append(ManifestStage(type: "org.osbuild.grub2.inst", options: [
                    "filename": .string(rawFile), "platform": .string(platform), "location": .int(location),
                    "core": ["type": "mkimage", "partlabel": .string(disk.label.rawValue), "filesystem": .string(boot.filesystem.type.rawValue)],
                    "prefix": ["type": "partition", "partlabel": .string(disk.label.rawValue), "number": .int(Int64(boot.partitionIndex)),
                               "path": .string(disk.hasSeparateBoot ? "/grub" : "/boot/grub")],
                ], inputs: ["tree": .tree("os")]))
            }
        }
        return Pipeline(name: "image", stages: stages)
    }

    /// The stage that makes `volume`'s filesystem, filled from its mountpoint in the `os` tree
    /// with the mountpoints of the filesystems below it left empty.
    static func mkfs(_ volume: DiskLayout.Volume, among volumes: [DiskLayout.Volume], device: [String: Device]) -> ManifestStage {
        let fs = volume.filesystem
        let tree: [String: Input] = ["tree": .tree("os")]
        var options: [String: JSONValue] = [:]
        if let label = fs.label { options["label"] = .string(label) }
        guard let mountpoint = fs.mountpoint else {
            options["uuid"] = .string(fs.uuid)
            return ManifestStage(type: "org.osbuild.mkswap", options: options, devices: device)
        }
        options["source"] = .string(mountpoint)
        switch fs.type {
        case .vfat:
            options["volid"] = .string(fs.uuid)
            if mountpoint == "/boot/efi" { options["fat_size"] = 32 }
            return ManifestStage(type: "org.kiln.mkfs.fat", options: options, inputs: tree, devices: device)
        default:
            options["uuid"] = .string(fs.uuid)
            let below = excludedMountpoints(under: mountpoint, among: volumes.compactMap(\.filesystem.mountpoint))
            if !below.isEmpty { options["exclude"] = strings(below) }
            let type = fs.type == .xfs ? "org.kiln.mkfs.xfs" : "org.kiln.mkfs.ext4"
            return ManifestStage(type: type, options: options, inputs: tree, devices: device)
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
