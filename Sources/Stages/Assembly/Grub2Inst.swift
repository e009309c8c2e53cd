import Foundation
import Manifest
import StageOptions

#if canImport(Glibc)
import Glibc
#endif

/// `org.osbuild.grub2.inst`: makes a disk image BIOS-bootable without
/// grub-install: builds GRUB's core image with grub-mkimage, writes it at
/// `location` (the BIOS boot partition), and puts GRUB's boot sector into
/// the MBR, patched to load it.
package struct Grub2Inst: Stage {
    package typealias Options = Grub2InstOptions
    package typealias Core = Grub2InstOptions.Core
    package typealias Prefix = Grub2InstOptions.Prefix
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly
    package static let inputs: [String: InputKind] = ["tree": .pipelineTree]

    /// Offsets GRUB's boot.img and diskboot.img use (grub/include/grub/i386/pc/boot.h).
    enum Layout {
        static let kernelSector = 0x5C
        static let bootDrive = 0x64
        static let driveCheck = 0x66
        static let mbrCodeEnd = 440
        static let firstBlocklistStart = 0x200 - 12
        static let firstBlocklistLength = 0x200 - 4
    }

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        guard options.platform == "i386-pc" else {
            throw StageError.invalidOptions(
                reason:
                    "\(Self.type): options.platform: \"\(options.platform)\" is not supported; Kiln installs BIOS GRUB (i386-pc) only, UEFI uses org.kiln.grub2.efi"
            )
        }
        guard options.sectorSize ?? 512 == 512 else {
            throw StageError.invalidOptions(reason: "\(Self.type): options.sector-size: only 512-byte sectors are supported")
        }
        guard options.core.type == "mkimage" else {
            throw StageError.invalidOptions(reason: "\(Self.type): options.core.type: \"\(options.core.type)\" is not \"mkimage\"")
        }
        guard let location = options.location, location > 0 else {
            throw StageError.invalidOptions(reason: "\(Self.type): options.location: give the first sector of the BIOS boot partition")
        }
        let disk = try context.outputFile(options.filename)
        guard FileManager.default.fileExists(atPath: disk) else { throw AssemblyError.missingImage(path: disk, stage: Self.type) }

        let modules = try moduleDirectory(context)
        let coreImage = context.scratch + "/core.img"
        try await context.run(
            [
                "grub-mkimage", "-O", "i386-pc", "-d", modules, "-o", coreImage,
                "-p", try Self.prefix(options.prefix),
            ] + (try Self.modules(options.core)))

        var core = try [UInt8](Data(contentsOf: URL(fileURLWithPath: coreImage)))
        let room = try await room(at: location, disk: disk, context: context)
        guard UInt64(core.count) <= room, core.count > 512 else {
            throw AssemblyError.coreImageTooLarge(bytes: UInt64(core.count), room: room, location: location)
        }
        // diskboot.img (the core image's first sector) loads the rest from its
        // first blocklist: the sectors right after it.
        DiskFile.putLE(location + 1, into: &core, at: Layout.firstBlocklistStart)
        let sectors = DiskFile.getLE(core, at: Layout.firstBlocklistLength, width: 2)
        guard sectors * 512 + 512 >= UInt64(core.count) else {
            throw StageError.treeInconsistent(
                reason:
                    "\(coreImage): its blocklist covers \(sectors) sectors, less than the image; grub-mkimage from \(modules) is not what Kiln expects"
            )
        }
        try DiskFile.write(core, to: disk, offset: location * 512)

        let bootImage = try [UInt8](Data(contentsOf: URL(fileURLWithPath: modules + "/boot.img")))
        guard bootImage.count == 512 else {
            throw StageError.treeInconsistent(reason: "\(modules)/boot.img is \(bootImage.count) bytes, not one sector")
        }
        var mbr = try DiskFile.read(disk, offset: 0, count: 512)
        mbr.replaceSubrange(0..<Layout.mbrCodeEnd, with: bootImage[0..<Layout.mbrCodeEnd])
        DiskFile.putLE(location, into: &mbr, at: Layout.kernelSector)
        mbr[Layout.bootDrive] = 0xFF  // use the drive the BIOS booted from (%dl)
        mbr[Layout.driveCheck] = 0x90  // nop out the floppy/hard-disk drive check
        mbr[Layout.driveCheck + 1] = 0x90
        try DiskFile.write(mbr, to: disk, offset: 0)
    }

    /// GRUB's i386-pc modules: from the input tree when it has them, else the host's.
    func moduleDirectory(_ context: StageContext) throws -> String {
        var searched: [String] = []
        if context.inputs["tree"] != nil {
            let tree = try context.inputTree("tree")
            let inTree = tree + "/usr/lib/grub/i386-pc"
            searched.append(inTree)
            if TreeFiles.exists("/usr/lib/grub/i386-pc/boot.img", in: tree) {
                // Found without following a link, and nothing in it may be one: grub-mkimage
                // reads the modules by name and would follow a link out of the tree.
                let directory = try ConfinedPath("/usr/lib/grub/i386-pc", in: tree, kind: .directory)
                for name in try FileManager.default.contentsOfDirectory(atPath: directory.host).sorted() {
                    var st = stat()
                    if fstatat(directory.fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0, st.st_mode & S_IFMT == S_IFLNK {
                        throw StageError.badPath(
                            path: "/usr/lib/grub/i386-pc/" + name,
                            reason: "is a symbolic link in the input tree; grub-mkimage would read what it points to: make it a regular file")
                    }
                }
                return directory.host
            }
        }
        let host = "/usr/lib/grub/i386-pc"
        searched.append(host)
        if FileManager.default.fileExists(atPath: host + "/boot.img") { return host }
        throw AssemblyError.missingGrubModules(platform: "i386-pc", searched: searched)
    }

    /// Where GRUB finds its directory: `(,gptN)/boot/grub` on the disk it
    /// booted from, N counting from 1.
    static func prefix(_ prefix: Prefix) throws -> String {
        guard prefix.path.hasPrefix("/") else {
            throw StageError.invalidOptions(reason: "\(type): options.prefix.path: \"\(prefix.path)\" must start with /")
        }
        guard let kind = prefix.type else { return prefix.path }
        guard kind == "partition", let number = prefix.number, number >= 0 else {
            throw StageError.invalidOptions(reason: "\(type): options.prefix: a partition prefix needs type \"partition\" and a number (from 0)")
        }
        return "(,\(try partitionModule(prefix.partlabel ?? "gpt", field: "prefix.partlabel").name)\(number + 1))\(prefix.path)"
    }

    static func modules(_ core: Core) throws -> [String] {
        let fs: String =
            switch core.filesystem {
            case "ext4": "ext2"
            case "xfs", "btrfs", "iso9660": core.filesystem
            default:
                throw StageError.invalidOptions(
                    reason: "\(type): options.core.filesystem: \"\(core.filesystem)\" is not one of ext4, xfs, btrfs, iso9660")
            }
        return ["biosdisk", try partitionModule(core.partlabel, field: "core.partlabel").module, fs, "search", "search_fs_uuid"]
    }

    static func partitionModule(_ label: String, field: String) throws -> (module: String, name: String) {
        switch label {
        case "gpt": ("part_gpt", "gpt")
        case "dos", "mbr": ("part_msdos", "msdos")
        default: throw StageError.invalidOptions(reason: "\(type): options.\(field): \"\(label)\" is not gpt or dos")
        }
    }

    /// Bytes free for the core image at `location`: to the end of the
    /// partition that starts there, or up to the first partition (MBR gap).
    func room(at location: UInt64, disk: String, context: StageContext) async throws -> UInt64 {
        let table = try await PartitionTableDump.read(disk, in: context)
        if let p = table.partitions.first(where: { $0.start <= location && location < $0.start + $0.size }) {
            return (p.start + p.size - location) * 512
        }
        let next = table.partitions.map(\.start).filter { $0 > location }.min() ?? location
        return (next - location) * 512
    }
}
