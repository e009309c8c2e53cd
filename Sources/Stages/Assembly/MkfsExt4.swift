import Foundation
import Manifest
import StageOptions

#if canImport(Glibc)
import Glibc
#endif

/// `org.kiln.mkfs.ext4`: makes an ext4 filesystem straight into a region of
/// the disk image, filled from a directory of the input tree (`mkfs.ext4 -d`)
/// and owned by root; the mountpoints of other filesystems below it are kept
/// as empty directories (`exclude`). The feature set is pinned in a private mke2fs.conf so a
/// newer host cannot create a filesystem the image's GRUB cannot read.
package struct MkfsExt4: Stage {
    package typealias Options = MkfsExt4Options
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly
    package static let inputs: [String: InputKind] = ["tree": .pipelineTree]

    /// What bookworm's mke2fs makes for ext4, written out: GRUB 2.06 reads all
    /// of it (metadata_csum is read-only-compatible), and nothing newer
    /// (orphan_file, metadata_csum_seed, large_dir) slips in.
    package static let defaultFeatures = [
        "has_journal", "ext_attr", "resize_inode", "dir_index", "filetype", "extent", "64bit", "flex_bg",
        "sparse_super", "large_file", "huge_file", "dir_nlink", "extra_isize", "metadata_csum",
    ]

    static let blockSize: UInt64 = 4096

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let uuid = try Identifier.uuid(options.uuid, field: "\(Self.type): options.uuid")
        if let label = options.label, label.utf8.count > 16 {
            throw AssemblyError.badIdentifier(field: "\(Self.type): options.label", value: label, expected: "an ext4 label of at most 16 bytes")
        }
        let features = options.features ?? Self.defaultFeatures
        guard features.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "^" } }) else {
            throw StageError.invalidOptions(reason: "\(Self.type): options.features: feature names are letters, digits and \"_\"")
        }
        let source = try context.inputDirectory(options.source ?? "/")
        let region = try context.region("device")
        let blocks = region.length / Self.blockSize
        guard blocks >= 1024, region.offset % 512 == 0 else {
            throw AssemblyError.regionTooSmall(path: region.path, offset: region.offset, size: region.length, needed: 1024 * Self.blockSize)
        }

        let config = context.scratch + "/mke2fs.conf"
        try Self.config(features: features).write(toFile: config, atomically: true, encoding: .utf8)
        try await region.clear(in: context)
        var argv = [
            "mkfs.ext4", "-F", "-q", "-t", "ext4", "-b", String(Self.blockSize), "-U", uuid,
            "-E", "offset=\(region.offset),root_owner=0:0,nodiscard,hash_seed=\(uuid)",
            "-d", source,
        ]
        if let label = options.label { argv += ["-L", label] }
        argv += [region.path, String(blocks)]
        // mke2fs copies access times, and reading a fresh tree changes them: read it
        // through a read-only, noatime view so that equal trees give equal filesystems.
        try await SourceView.with(options.source ?? "/", inTree: try context.inputTree("tree"), excluding: options.exclude ?? [], context: context) {
            view in
            argv[argv.firstIndex(of: source)!] = view
            try await context.run(argv, environment: ["MKE2FS_CONFIG": config, "E2FSPROGS_FAKE_TIME": String(try Self.timestamp(source))])
        }
    }

    /// The filesystem's creation time, so that equal trees give equal bytes:
    /// SOURCE_DATE_EPOCH when set, else the source directory's mtime.
    static func timestamp(_ source: String) throws -> Int {
        if let epoch = ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"].flatMap(Int.init) { return epoch }
        let attributes = try FileManager.default.attributesOfItem(atPath: source)
        return Int((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)
    }

    /// A mke2fs.conf that states every feature, independent of the host's.
    static func config(features: [String]) -> String {
        """
        [defaults]
        \tbase_features = \(features.joined(separator: ","))
        \tdefault_mntopts = acl,user_xattr
        \tenable_periodic_fsck = 0
        \tblocksize = 4096
        \tinode_size = 256
        \tinode_ratio = 16384

        [fs_types]
        \text4 = {
        \t\tinode_size = 256
        \t}
        \tsmall = {
        \t\tinode_ratio = 4096
        \t}
        \tfloppy = {
        \t\tinode_ratio = 8192
        \t}
        \tbig = {
        \t\tinode_ratio = 32768
        \t}
        \thuge = {
        \t\tinode_ratio = 65536
        \t}

        """
    }
}
