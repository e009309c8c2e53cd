import Manifest

// The disk side of the manifest: the partition table and filesystems the
// blueprint's `filesystem`/`disk` customizations ask for, the `image`
// pipeline that writes them, and the stages a disk boots with.
extension ManifestGenerator {
    /// The disk of the request's image type, with the blueprint's customizations.
    static func diskLayout(_ request: ImageRequest, _ def: ImageDefinition,
                           _ ids: DeterministicIDs) throws(BlueprintError) -> DiskLayout {
        def.diskLayout(ids: ids)
    }

    /// Checks the blueprint's `filesystem`/`disk` customizations against the image type.
    static func validateDisk(_ request: ImageRequest) throws(BlueprintError) {}

    /// Packages the disk layout needs in the tree (lvm2, xfsprogs, …).
    static func diskPackages(_ request: ImageRequest) -> [String] { [] }

    /// fstab, kernel command line, initramfs and GRUB: what a disk image boots with.
    static func bootStages(_ request: ImageRequest, _ def: ImageDefinition, _ disk: DiskLayout) -> [ManifestStage] {
        let arch = request.architecture
        let rootUUID = disk.rootFilesystemUUID
        var stages: [ManifestStage] = []
        stages.append(ManifestStage(type: "org.osbuild.fstab", options: [
            "filesystems": [
                ["uuid": .string(rootUUID), "vfs_type": "ext4", "path": "/", "options": "errors=remount-ro",
                 "freq": 0, "passno": 1],
                ["uuid": .string(DeterministicIDs.fatUUID(disk.espVolumeID)), "vfs_type": "vfat", "path": "/boot/efi",
                 "options": "umask=0077", "freq": 0, "passno": 2],
            ],
        ]))
        stages.append(ManifestStage(type: "org.osbuild.kernel-cmdline", options: [
            "root_fs_uuid": .string(rootUUID), "kernel_opts": .string(kernelOptions(request, def)),
        ]))
        stages.append(ManifestStage(type: "org.kiln.initramfs"))
        var grub: [String: JSONValue] = [
            "root_fs_uuid": .string(rootUUID), "kernel_opts": .string(kernelOptions(request, def)),
            "timeout": .int(Int64(def.grubTimeout)), "terminal": strings(def.grubTerminal),
            "uefi_target": .string(arch.grubEFITarget),
        ]
        if let serial = def.grubSerial { grub["serial"] = .string(serial) }
        if let bios = def.biosTarget { grub["bios_target"] = .string(bios) }
        stages.append(ManifestStage(type: "org.kiln.grub2.config", options: grub))
        stages.append(ManifestStage(type: "org.kiln.grub2.efi", options: [
            "target": .string(arch.grubEFITarget), "root_fs_uuid": .string(rootUUID),
            "filename": .string("/boot/efi/EFI/BOOT/\(arch.efiBinary)"),
        ]))
        return stages
    }

    static func imagePipeline(_ request: ImageRequest, _ def: ImageDefinition, _ disk: DiskLayout) -> Pipeline {
        let tree: [String: Input] = ["tree": .tree("os")]
        func device(start: Int64, size: Int64) -> [String: Device] {
            ["device": Device(type: "org.osbuild.loopback",
                              options: ["filename": .string(rawFile), "start": .int(start), "size": .int(size)])]
        }
        var stages: [ManifestStage] = [
            ManifestStage(type: "org.osbuild.truncate", options: ["filename": .string(rawFile), "size": .int(disk.sizeBytes)]),
            ManifestStage(type: "org.osbuild.sfdisk", options: [
                "label": "gpt", "uuid": .string(disk.uuid),
                "partitions": .array(disk.partitions.map { p in
                    .object(["start": .int(p.start), "size": .int(p.size), "type": .string(p.type),
                             "uuid": .string(p.uuid), "name": .string(p.name)])
                }),
            ], devices: device(start: 0, size: disk.sectors)),
        ]
        if let esp = disk.partition(.esp) {
            stages.append(ManifestStage(type: "org.kiln.mkfs.fat", options: [
                "volid": .string(disk.espVolumeID), "label": "ESP", "fat_size": 32, "source": "/boot/efi",
            ], inputs: tree, devices: device(start: esp.start, size: esp.size)))
        }
        if let root = disk.partition(.root) {
            stages.append(ManifestStage(type: "org.kiln.mkfs.ext4", options: [
                "uuid": .string(disk.rootFilesystemUUID), "label": "root", "source": "/",
            ], inputs: tree, devices: device(start: root.start, size: root.size)))
        }
        if let platform = def.biosTarget, let bios = disk.partition(.biosBoot), let rootIndex = disk.index(of: .root) {
            stages.append(ManifestStage(type: "org.osbuild.grub2.inst", options: [
                "filename": .string(rawFile), "platform": .string(platform), "location": .int(bios.start),
                "core": ["type": "mkimage", "partlabel": "gpt", "filesystem": "ext4"],
                "prefix": ["type": "partition", "partlabel": "gpt", "number": .int(Int64(rootIndex)), "path": "/boot/grub"],
            ], inputs: tree))
        }
        return Pipeline(name: "image", stages: stages)
    }

}
