import Foundation
import Manifest
import Testing
@testable import Images

/// The disks `[[customizations.filesystem]]` and `[customizations.disk]` give,
/// and the manifest that writes and boots them.
@Suite struct DiskLayoutTests {
    typealias FS = Blueprint.FilesystemSpec
    static let gib: Int64 = 1 << 30
    static let mib: Int64 = 1 << 20

    func request(_ c: (inout Blueprint.Customizations) -> Void, arch: Architecture = .x86_64,
                 type: ImageType = .qcow2) -> ImageRequest {
        var bp = Blueprint(name: "disk-test", origin: BlueprintOrigin(file: "bp.toml"))
        c(&bp.customizations)
        return ImageRequest(blueprint: bp, distro: .debian12, architecture: arch, imageType: type)
    }

    func layout(_ r: ImageRequest) throws -> DiskLayout {
        let def = try ImageDefinition(distro: r.distro, architecture: r.architecture, imageType: r.imageType)
        return try def.diskLayout(ids: DeterministicIDs(seed: r.seed), blueprint: r.blueprint)
    }

    func error(_ r: ImageRequest) -> BlueprintError? {
        #expect(throws: BlueprintError.self) { try layout(r) }
    }

    func manifest(_ r: ImageRequest) async throws -> BuildManifest {
        try await ManifestGenerator(resolver: FixedPackages()).manifest(for: r)
    }

    func stages(_ m: BuildManifest, _ pipeline: String, _ type: String) -> [ManifestStage] {
        m.pipeline(named: pipeline)?.stages.filter { $0.type == type } ?? []
    }

    /// Partitions start on MiB boundaries, do not overlap, lie inside the disk (before the
    /// backup GPT), and the one holding `/` is last on the disk.
    func checkGeometry(_ d: DiskLayout, sourceLocation: SourceLocation = #_sourceLocation) {
        let sorted = d.partitions.sorted { $0.start < $1.start }
        for (a, b) in zip(sorted, sorted.dropFirst()) {
            #expect(a.start + a.size <= b.start, "\(a.name) overlaps \(b.name)", sourceLocation: sourceLocation)
        }
        for p in d.partitions {
            #expect(p.start % 2048 == 0 && p.size % 2048 == 0 && p.size > 0, "\(p.name) is not MiB-aligned", sourceLocation: sourceLocation)
        }
        let end = sorted.last.map { $0.start + $0.size } ?? 0
        #expect(end <= d.sectors - (d.label == .gpt ? 33 : 0), sourceLocation: sourceLocation)
        #expect(d.sectors - end < 2048 + 33, "the last partition takes the rest of the disk", sourceLocation: sourceLocation)
        #expect(d.sizeBytes % (1 << 20) == 0, sourceLocation: sourceLocation)
        #expect(sorted.last?.start == d.partitions[d.root.partitionIndex].start, "/ is last on the disk", sourceLocation: sourceLocation)
        for v in d.volumes {
            let p = d.partitions[v.partitionIndex]
            #expect(v.start >= p.start && v.start + v.size <= p.start + p.size, "\(v.filesystem.mountpoint ?? "swap") outside its partition",
                    sourceLocation: sourceLocation)
        }
    }

    // MARK: [[customizations.filesystem]]

    @Test(arguments: [Architecture.x86_64, .aarch64])
    func withoutCustomizationsTheDiskIsDebiansCloudLayout(_ arch: Architecture) throws {
        let d = try layout(request({ _ in }, arch: arch))
        #expect(d.sizeBytes == 3 * Self.gib)
        #expect(d.partitions.map(\.start) == (arch == .x86_64 ? [2048, 8192, 262_144] : [2048, 262_144]))
        #expect(d.partitions.map(\.role) == (arch == .x86_64 ? [.biosBoot, .esp, .root] : [.esp, .root]))
        #expect(!d.usesLVM && !d.hasSeparateBoot)
        checkGeometry(d)
    }

    @Test func rawModeGrowsRootAndAddsPlainExt4Partitions() throws {
        let d = try layout(request { c in
            c.partitioningMode = .raw
            c.filesystems = [.init(mountpoint: "/", minSize: 5 * Self.gib), .init(mountpoint: "/home", minSize: 2 * Self.gib),
                             .init(mountpoint: "/var/log", minSize: 100 * Self.mib), .init(mountpoint: "/boot", minSize: 600 * Self.mib)]
        })
        checkGeometry(d)
        #expect(!d.usesLVM)
        // Table order: the image type's partitions, then the new ones as given; root stays partition 3.
        #expect(d.partitions.map { $0.filesystem?.mountpoint } == [nil, "/boot/efi", "/", "/home", "/var/log", "/boot"])
        #expect(d.volume(mountpoint: "/home")?.size == 2 * Self.gib / 512)
        #expect(d.volume(mountpoint: "/var/log")?.size == Self.gib / 512, "every new mountpoint gets at least 1 GiB, as osbuild")
        #expect(d.volume(mountpoint: "/boot")?.size == 600 * Self.mib / 512)
        #expect(d.volumes.allSatisfy { $0.filesystem.type == .ext4 || $0.filesystem.type == .vfat })
        #expect(d.root.size * 512 >= 5 * Self.gib)
        // The disk grew to hold them all: 128 MiB of boot partitions, 2 GiB + 1 GiB + 600 MiB + 5 GiB, 1 MiB for the backup GPT.
        #expect(d.sizeBytes == (128 + 2048 + 1024 + 600 + 5 * 1024 + 1) * Self.mib)
        #expect(d.partitions[3].type == DiskLayout.linuxDataType && d.partitions[5].type == DiskLayout.xbootldrType)
    }

    @Test func autoLVMPutsRootAndNewMountpointsIntoRootvgWithAPlainBoot() throws {
        let d = try layout(request { c in
            c.filesystems = [.init(mountpoint: "/home", minSize: 3 * Self.gib), .init(mountpoint: "/var/log", minSize: 0)]
        })
        checkGeometry(d)
        let vg = try #require(d.volumeGroups.first)
        #expect(vg.name == "rootvg")
        #expect(vg.logicalVolumes.map(\.name) == ["rootlv", "homelv", "var_loglv"])
        #expect(vg.logicalVolumes.map(\.filesystem.mountpoint) == ["/", "/home", "/var/log"])
        #expect(vg.logicalVolumes[1].extents * 4 == 3 * 1024 && vg.logicalVolumes[2].extents * 4 == 1024)
        #expect(vg.logicalVolumes[0].extents * 4 >= 2048, "root gets at least 2 GiB")
        // /boot is a plain 1 GiB ext4 partition: GRUB and the initramfs read it without LVM.
        let boot = try #require(d.volume(mountpoint: "/boot"))
        #expect(boot.logicalVolume == nil && boot.size == Self.gib / 512 && boot.filesystem.type == .ext4)
        #expect(d.partitions.map(\.role) == [.biosBoot, .esp, .lvm, .boot])
        #expect(d.partitions[2].type == DiskLayout.lvmType)
        // Root's volume takes every extent the others leave.
        let pv = d.partitions[2]
        #expect(vg.minimumSectors > pv.size - DiskLayout.VolumeGroup.extentSize)
        // Logical volumes lie one after another from 1 MiB into the physical volume.
        let homeLV = try #require(d.volume(mountpoint: "/home"))
        #expect(homeLV.start == pv.start + 2048 + vg.logicalVolumes[0].extents * 8192)
        #expect(homeLV.volumeGroup == "rootvg" && homeLV.logicalVolume == "homelv")
    }

    @Test func autoLVMStaysRawForRootAndBootOnly() throws {
        let d = try layout(request { c in
            c.filesystems = [.init(mountpoint: "/", minSize: 4 * Self.gib), .init(mountpoint: "/boot", minSize: Self.gib)]
        })
        #expect(!d.usesLVM)
        #expect(d.hasSeparateBoot)
        checkGeometry(d)
    }

    @Test func lvmModeAlwaysMakesRootALogicalVolume() throws {
        let d = try layout(request { c in
            c.partitioningMode = .lvm
            c.filesystems = [.init(mountpoint: "/", minSize: 4 * Self.gib)]
        })
        #expect(d.volumeGroups.map(\.name) == ["rootvg"])
        #expect(d.root.logicalVolume == "rootlv")
        #expect(d.root.size * 512 >= 4 * Self.gib)
        #expect(d.hasSeparateBoot)
        checkGeometry(d)
    }

    @Test func espGrowsToItsMinimumSize() throws {
        let d = try layout(request { c in c.filesystems = [.init(mountpoint: "/boot/efi", minSize: 500 * Self.mib)] })
        #expect(d.partition(.esp)?.size == 500 * Self.mib / 512)
        #expect(d.partition(.esp)?.start == 8192)
        checkGeometry(d)
    }

    // MARK: [customizations.disk]

    /// LVM root with an xfs /home and swap; Kiln adds BIOS boot, ESP and /boot.
    static func lvmDisk(_ c: inout Blueprint.Customizations) {
        c.disk = .init(partitions: [
            .lvm(.init(name: "vg0", logicalVolumes: [
                FS(name: "root", mountpoint: "/", fsType: "ext4", minSize: 3 * gib),
                FS(mountpoint: "/home", fsType: "xfs", label: "home", minSize: 512 * mib),
                FS(mountpoint: nil, fsType: "swap", minSize: 256 * mib),
            ])),
        ])
    }

    @Test func diskWithLVMRootGetsBootPartitionsAndAPlainBoot() throws {
        let d = try layout(request(Self.lvmDisk))
        checkGeometry(d)
        #expect(d.label == .gpt)
        #expect(d.partitions.map(\.role) == [.biosBoot, .esp, .boot, .lvm])
        let vg = try #require(d.volumeGroups.first)
        #expect(vg.name == "vg0")
        #expect(vg.logicalVolumes.map(\.name) == ["root", "homelv", "swaplv"])
        #expect(vg.logicalVolumes.map(\.extents) == [768, 128, 64], "sizes as given, in 4 MiB extents")
        #expect(d.root.logicalVolume == "root")
        #expect(d.volume(mountpoint: "/home")?.filesystem.type == .xfs)
        #expect(d.volume(mountpoint: "/home")?.filesystem.label == "home")
        #expect(d.volumes.contains { $0.filesystem.type == .swap && $0.logicalVolume == "swaplv" })
        #expect(d.boot.filesystem.mountpoint == "/boot" && d.boot.logicalVolume == nil)
        // Identifiers are LVM's 32 characters, distinct, and the same for the same request.
        let ids = [vg.uuid, vg.pvUUID] + vg.logicalVolumes.map(\.uuid)
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.replacingOccurrences(of: "-", with: "").count == 32 })
        #expect(try layout(request(Self.lvmDisk)) == d)
    }

    @Test func dosDiskOnX86UsesTheMBRGapAndAnESPOfTypeEF() throws {
        let d = try layout(request { c in
            c.disk = .init(type: "dos", minSize: 4 * Self.gib, partitions: [
                .plain(FS(mountpoint: "/", fsType: "xfs", minSize: 3 * Self.gib)),
                .plain(FS(mountpoint: nil, fsType: "swap", label: "swap", minSize: 512 * Self.mib)),
            ])
        })
        checkGeometry(d)
        #expect(d.label == .dos)
        #expect(d.sizeBytes == 4 * Self.gib)
        #expect(d.partitions.map(\.role) == [.esp, .root, .swap], "no BIOS boot partition: GRUB's core image goes before the first partition")
        #expect(d.partitions.map(\.type) == ["ef", "83", "82"])
        #expect(d.partitions.first?.start == 2048)
        #expect(d.partitions[1].bootable, "the partition holding /boot is active")
        #expect(d.uuid.count == 8 && d.uuid.allSatisfy(\.isHexDigit))
    }

    @Test func aarch64DosDiskGetsAnESP() throws {
        let d = try layout(request({ c in
            c.disk = .init(type: "dos", partitions: [.plain(FS(mountpoint: "/", fsType: "ext4", minSize: 0))])
        }, arch: .aarch64))
        #expect(d.partitions.map(\.role) == [.esp, .root])
        #expect(d.partition(.esp)?.type == "ef")
    }

    @Test func givenESPAndNoRootGetARootPartitionAtTheEnd() throws {
        let d = try layout(request { c in
            c.disk = .init(partitions: [.plain(FS(mountpoint: "/boot/efi", fsType: "vfat", label: "EFI", minSize: 200 * Self.mib)),
                                        .plain(FS(mountpoint: "/data", fsType: "ext4", minSize: Self.gib))])
        })
        checkGeometry(d)
        #expect(d.partitions.map(\.role) == [.biosBoot, .esp, .data, .root])
        #expect(d.partition(.esp)?.size == 200 * Self.mib / 512)
        #expect(d.volume(mountpoint: "/boot/efi")?.filesystem.label == "EFI")
        #expect(d.root.size * 512 >= 2 * Self.gib)
    }

    @Test func volumeGroupWithoutRootGetsARootVolumeAndBoot() throws {
        let d = try layout(request { c in
            c.disk = .init(partitions: [.lvm(.init(name: "data", logicalVolumes: [FS(mountpoint: "/srv", fsType: "ext4", minSize: Self.gib)]))])
        })
        #expect(d.volumeGroups.first?.logicalVolumes.map(\.name) == ["srvlv", "rootlv"])
        #expect(d.hasSeparateBoot)
        checkGeometry(d)
    }

    // MARK: errors

    @Test func dosTableWithMoreThanFourPartitionsIsRejected() {
        let e = error(request { c in
            c.disk = .init(type: "dos", partitions: [
                .plain(FS(mountpoint: "/", fsType: "ext4", minSize: 3 * Self.gib)),
                .plain(FS(mountpoint: "/home", fsType: "ext4", minSize: Self.gib)),
                .plain(FS(mountpoint: "/srv", fsType: "ext4", minSize: Self.gib)),
                .plain(FS(mountpoint: nil, fsType: "swap", minSize: Self.gib)),
            ])
        })
        #expect(e?.description == "bp.toml: customizations.disk.partitions: a dos partition table holds at most 4 primary partitions, and this one needs 5 (4 given, plus /boot/efi that x86_64 needs to boot); use type = \"gpt\", or put filesystems into an LVM volume group")
    }

    @Test func sizesKilnCannotMakeAreRejectedWithTheirKey() {
        let cases: [(Blueprint.Disk, String, String)] = [
            (.init(partitions: [.plain(FS(mountpoint: "/data", fsType: "xfs", minSize: 200 * Self.mib))]),
             "customizations.disk.partitions[0].minsize",
             "an xfs filesystem needs at least 300 MiB (mkfs.xfs refuses smaller ones), not 200 MiB; make it larger or use ext4"),
            (.init(partitions: [.plain(FS(mountpoint: "/boot/efi", fsType: "vfat", minSize: 16 * Self.mib))]),
             "customizations.disk.partitions[0].minsize",
             "the ESP (/boot/efi) needs at least 33 MiB for FAT32, not 16 MiB; make it larger (Kiln's own is 124 MiB)"),
            (.init(partitions: [.plain(FS(mountpoint: "/data", fsType: "ext4", minSize: 0))]),
             "customizations.disk.partitions[0].minsize", "must be more than 0; give the size, e.g. \"1 GiB\""),
            (.init(partitions: [.lvm(.init(name: "vg", logicalVolumes: [FS(mountpoint: "/data", fsType: "ext4", minSize: 3 << 40)]))]),
             "customizations.disk.partitions[0].logical_volumes[0].minsize", "3 TiB is more than the 2 TiB Kiln builds; give a smaller size"),
            (.init(minSize: 4 << 40, partitions: []),
             "customizations.disk.minsize", "4 TiB is more than the 2 TiB Kiln builds; give a smaller size"),
        ]
        for (disk, key, reason) in cases {
            let e = error(request { $0.disk = disk })
            #expect(e?.keyPath == key)
            #expect(e?.message == reason)
        }
    }

    @Test func aDiskAddingUpToMoreThanTheLimitIsRejected() {
        let e = error(request { c in
            c.disk = .init(partitions: [.plain(FS(mountpoint: "/a", fsType: "ext4", minSize: 3 << 39)),
                                        .plain(FS(mountpoint: "/b", fsType: "ext4", minSize: 3 << 39))])
        })
        #expect(e?.keyPath == "customizations.disk")
        #expect(e?.message.hasPrefix("the disk would be about 3.0 TiB, more than the 2 TiB Kiln builds") == true)
    }

    @Test func bootAndESPMustBePlainPartitions() {
        for mp in ["/boot", "/boot/efi"] {
            let e = error(request { c in
                c.disk = .init(partitions: [.lvm(.init(name: "vg", logicalVolumes: [FS(mountpoint: mp, fsType: "ext4", minSize: Self.gib)]))])
            })
            #expect(e?.keyPath == "customizations.disk.partitions[0].logical_volumes[0].mountpoint")
            #expect(e?.message.contains("must be a plain partition") == true)
        }
        let xfsESP = error(request { $0.disk = .init(partitions: [.plain(FS(mountpoint: "/boot/efi", fsType: "xfs", minSize: Self.gib))]) })
        #expect(xfsESP?.message == "/boot/efi is the EFI system partition and must be vfat, not xfs")
        let fatRoot = error(request { $0.disk = .init(partitions: [.plain(FS(mountpoint: "/", fsType: "vfat", minSize: Self.gib))]) })
        #expect(fatRoot?.keyPath == "customizations.disk.partitions[0].fs_type")
    }

    @Test func volumeGroupAndLogicalVolumeNamesMustNotClash() {
        let vgs = error(request { c in
            c.disk = .init(partitions: [
                .lvm(.init(name: "vg", logicalVolumes: [FS(mountpoint: "/", fsType: "ext4", minSize: 3 * Self.gib)])),
                .lvm(.init(name: "vg", logicalVolumes: [FS(mountpoint: "/srv", fsType: "ext4", minSize: Self.gib)])),
            ])
        })
        #expect(vgs?.description == "bp.toml: customizations.disk.partitions[1].name: volume group \"vg\" is already defined at customizations.disk.partitions[0]; give each volume group its own name")
        let lvs = error(request { c in
            c.disk = .init(partitions: [.lvm(.init(name: "vg", logicalVolumes: [
                FS(name: "data", mountpoint: "/", fsType: "ext4", minSize: 3 * Self.gib),
                FS(name: "data", mountpoint: "/srv", fsType: "ext4", minSize: Self.gib),
            ]))])
        })
        #expect(lvs?.keyPath == "customizations.disk.partitions[0].logical_volumes[1].name")
        #expect(lvs?.message.contains("logical volume \"data\" is already defined") == true)
    }

    @Test func partitionTypesMustSuitTheTable() {
        let e = error(request { c in
            c.disk = .init(type: "dos", partitions: [.plain(FS(partType: "0fc63daf-8483-4772-8e79-3d69d8477de4", mountpoint: "/",
                                                               fsType: "ext4", minSize: 3 * Self.gib))])
        })
        #expect(e?.keyPath == "customizations.disk.partitions[0].part_type")
    }

    @Test func imageTypesWithoutADiskIgnoreTheLayout() async throws {
        let r = request({ c in c.filesystems = [.init(mountpoint: "/home", minSize: Self.gib)] }, type: .tar)
        let m = try await manifest(r)
        #expect(m.pipeline(named: "image") == nil)
        #expect(!ManifestGenerator.packageNames(r, try ImageDefinition(distro: r.distro, architecture: r.architecture, imageType: .tar))
            .contains("lvm2"))
    }

    // MARK: manifests

    @Test func lvmManifestWritesTheGroupAndEachVolumeAtItsExtents() async throws {
        let r = request(Self.lvmDisk)
        let d = try layout(r)
        let m = try await manifest(r)
        let image = try #require(m.pipeline(named: "image")).stages.map(\.type)
        #expect(image == ["org.osbuild.truncate", "org.osbuild.sfdisk", "org.kiln.mkfs.fat", "org.kiln.mkfs.ext4",
                          "org.kiln.lvm2.create", "org.kiln.mkfs.ext4", "org.kiln.mkfs.xfs", "org.osbuild.mkswap",
                          "org.osbuild.grub2.inst"])
        let lvm = try #require(stages(m, "image", "org.kiln.lvm2.create").first)
        let vg = try #require(d.volumeGroups.first)
        #expect(lvm.options["vg_name"] == "vg0")
        #expect(lvm.options["volumes"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["root", "homelv", "swaplv"])
        #expect(lvm.options["volumes"]?.arrayValue?.compactMap { $0["extents"]?.int64Value } == vg.logicalVolumes.map(\.extents))
        #expect(lvm.devices["device"]?.options["start"] == .int(d.partitions[3].start))
        // Each filesystem is written where LVM will find its volume.
        let xfs = try #require(stages(m, "image", "org.kiln.mkfs.xfs").first)
        let home = try #require(d.volume(mountpoint: "/home"))
        #expect(xfs.devices["device"]?.options["start"] == .int(home.start))
        #expect(xfs.devices["device"]?.options["size"] == .int(home.size))
        #expect(xfs.options["source"] == "/home" && xfs.options["label"] == "home")
        // Root leaves the other filesystems' mountpoints empty; /boot leaves /boot/efi.
        let ext4 = stages(m, "image", "org.kiln.mkfs.ext4")
        #expect(ext4.first { $0.options["source"] == "/" }?.options["exclude"] == ["/boot", "/home"])
        #expect(ext4.first { $0.options["source"] == "/boot" }?.options["exclude"] == ["/boot/efi"])
        // BIOS GRUB loads its modules from /grub on the /boot partition (partition 3).
        let inst = try #require(stages(m, "image", "org.osbuild.grub2.inst").first)
        #expect(inst.options["prefix"] == ["type": "partition", "partlabel": "gpt", "number": 2, "path": "/grub"])
        #expect(inst.options["core"] == ["type": "mkimage", "partlabel": "gpt", "filesystem": "ext4"])
        // fstab: every filesystem and the swap area by UUID; root= is the root filesystem's UUID.
        let fstab = try #require(stages(m, "os", "org.osbuild.fstab").first?.options["filesystems"]?.arrayValue)
        #expect(fstab.compactMap { $0["path"]?.stringValue } == ["/", "/boot", "/boot/efi", "/home", "none"])
        #expect(fstab.compactMap { $0["vfs_type"]?.stringValue } == ["ext4", "ext4", "vfat", "xfs", "swap"])
        #expect(fstab.last?["uuid"]?.stringValue == d.volumes.first { $0.filesystem.type == .swap }?.filesystem.uuid)
        let grub = try #require(stages(m, "os", "org.kiln.grub2.config").first)
        #expect(grub.options["root_fs_uuid"]?.stringValue == d.rootFilesystemUUID)
        #expect(grub.options["boot_fs_uuid"]?.stringValue == d.boot.filesystem.uuid)
        #expect(stages(m, "os", "org.kiln.grub2.efi").first?.options["boot_fs_uuid"] == grub.options["boot_fs_uuid"])
        #expect(stages(m, "os", "org.osbuild.kernel-cmdline").first?.options["root_fs_uuid"]?.stringValue == d.rootFilesystemUUID)
        // The tree gets what the layout needs at boot.
        let names = ManifestGenerator.packageNames(r, try ImageDefinition(distro: r.distro, architecture: r.architecture, imageType: r.imageType))
        #expect(names.contains("lvm2") && names.contains("xfsprogs"))
    }

    /// The stages and options the disk layouts add are documented.
    @Test func diskStagesAndOptionsAreDocumented() async throws {
        let documented = try Fixtures.documentedStageOptions()
        let dos: (inout Blueprint.Customizations) -> Void = { c in
            c.disk = .init(type: "dos", partitions: [.plain(FS(mountpoint: "/boot", fsType: "xfs", minSize: Self.gib)),
                                                     .plain(FS(mountpoint: "/", fsType: "xfs", minSize: 3 * Self.gib))])
        }
        for r in [request(Self.lvmDisk), request(dos), request({ $0.filesystems = [.init(mountpoint: "/srv", minSize: Self.gib)] }, arch: .aarch64)] {
            for p in try await manifest(r).pipelines {
                for s in p.stages {
                    let keys = try #require(documented[s.type], "\(s.type) is not in docs/stages.md")
                    for k in s.options.keys { #expect(keys.contains(k), "\(s.type) option \(k) is not documented") }
                }
            }
        }
    }

    @Test func dosManifestPutsBIOSGrubIntoTheGapAndReadsXfs() async throws {
        let r = request { c in
            c.disk = .init(type: "dos", partitions: [.plain(FS(mountpoint: "/", fsType: "xfs", minSize: 3 * Self.gib))])
        }
        let m = try await manifest(r)
        let sfdisk = try #require(stages(m, "image", "org.osbuild.sfdisk").first)
        #expect(sfdisk.options["label"] == "dos")
        #expect(sfdisk.options["partitions"]?.arrayValue?.map { $0["type"] } == ["ef", "83"])
        #expect(sfdisk.options["partitions"]?.arrayValue?.last?["bootable"] == true)
        let inst = try #require(stages(m, "image", "org.osbuild.grub2.inst").first)
        #expect(inst.options["location"] == 1)
        #expect(inst.options["core"] == ["type": "mkimage", "partlabel": "dos", "filesystem": "xfs"])
        #expect(inst.options["prefix"] == ["type": "partition", "partlabel": "dos", "number": 1, "path": "/boot/grub"])
        #expect(stages(m, "os", "org.kiln.grub2.config").first?.options["boot_fs_type"] == "xfs")
        #expect(stages(m, "os", "org.kiln.grub2.config").first?.options["boot_fs_uuid"] == nil)
        #expect(stages(m, "os", "org.kiln.grub2.efi").first?.options["boot_fs_type"] == "xfs")
        let fstab = try #require(stages(m, "os", "org.osbuild.fstab").first?.options["filesystems"]?.arrayValue)
        #expect(fstab.first == ["uuid": .string(try layout(r).rootFilesystemUUID), "vfs_type": "xfs", "path": "/",
                                "options": "defaults", "freq": 0, "passno": 0])
    }
}
