import Foundation
import Manifest
import StageOptions

/// `org.kiln.mkfs.xfs`: makes an XFS filesystem in a region of the disk image
/// and fills it from a directory of the input tree. mkfs.xfs has no way to
/// write at an offset or to copy a tree with owners, modes, links and
/// extended attributes, so this stage attaches a loop device to the region,
/// mounts it and copies with `cp -a`; loop device and mount are released
/// whatever happens. The feature set is pinned (Linux 6.1 LTS defaults) so a
/// newer host cannot make a filesystem the image's kernel or GRUB cannot read.
package struct MkfsXfs: Stage {
    package typealias Options = MkfsXfsOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly
    package static let inputs: [String: InputKind] = ["tree": .pipelineTree]

    /// mkfs.xfs refuses smaller filesystems.
    static let minimumBytes: UInt64 = 300 << 20

    /// The V5 features mkfs.xfs 6.1 enables, written out (as xfsprogs' `lts_6.1`
    /// profile, with nrext64 under [inode] where mkfs.xfs 6.1 takes it). GRUB
    /// 2.06 reads all of them; nrext64 it does not.
    static let config = """
        [metadata]
        crc=1
        finobt=1
        rmapbt=0
        reflink=1
        bigtime=1
        inobtcount=1

        [inode]
        sparse=1
        nrext64=0

        """

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let uuid = try Identifier.uuid(options.uuid, field: "\(Self.type): options.uuid")
        if let label = options.label, label.utf8.count > 12 || label.contains(" ") {
            throw AssemblyError.badIdentifier(
                field: "\(Self.type): options.label", value: label, expected: "an XFS label of at most 12 bytes without spaces")
        }
        _ = try context.inputDirectory(options.source ?? "/")  // checked before anything is written
        let region = try context.region("device")
        guard region.length >= Self.minimumBytes, region.offset % 512 == 0 else {
            throw AssemblyError.regionTooSmall(path: region.path, offset: region.offset, size: region.length, needed: Self.minimumBytes)
        }
        let config = context.scratch + "/mkfs.xfs.conf"
        try Self.config.write(toFile: config, atomically: true, encoding: .utf8)
        let mountpoint = context.scratch + "/xfs"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        try await region.clear(in: context)
        try await LoopDevice.with(region, in: context) { device in
            var argv = ["mkfs.xfs", "-q", "-f", "-K", "-c", "options=\(config)", "-m", "uuid=\(uuid)"]
            if let label = options.label { argv += ["-L", label] }
            try await context.run(argv + [device])
            // Mount, copy and unmount in one program: on a scheduler each
            // assembly program runs in a mount namespace of its own, so the
            // file system is mounted only there and its unmount (which writes
            // the log and every dirty page to the device) is not held off by
            // a copy of the mount in another assembly's namespace.
            let mounts = MountSet(commands: context.commands)
            try await mounts.releasing {
                mounts.track(mountpoint)  // unmounted if the program is stopped between its mount and its unmount
                try await SourceView.with(
                    options.source ?? "/", inTree: try context.inputTree("tree"), excluding: options.exclude ?? [], context: context
                ) { view in
                    try await context.run(["sh", "-c", Self.fill, "kiln-mkfs-xfs", device, mountpoint, view])
                }
            }
        }
    }

    /// `$1` the device, `$2` the mount point, `$3` the tree; nouuid: the same
    /// image may be assembled twice at once on this host. The unmount is
    /// checked, so that everything is on the device before the loop device goes.
    static let fill = """
        mount -t xfs -o nouuid "$1" "$2" || exit
        cp -a --sparse=always "$3/." "$2/"; copied=$?
        umount "$2" || exit
        exit $copied
        """
}
