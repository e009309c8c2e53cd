import Foundation
import Manifest
import StageOptions

#if canImport(Glibc)
import Glibc
#endif

/// `org.kiln.mkfs.fat`: makes a FAT filesystem straight into a region of the
/// disk image (`mkfs.fat --offset`) and copies a directory of the input tree
/// into it with mtools; no loop device, no mount.
package struct MkfsFat: Stage {
    package typealias Options = MkfsFatOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly
    package static let inputs: [String: InputKind] = ["tree": .pipelineTree]

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let volid = try Identifier.hex(options.volid, digits: 8, field: "\(Self.type): options.volid")
        if let label = options.label, label.count > 11 || !label.allSatisfy(\.isASCII) {
            throw AssemblyError.badIdentifier(
                field: "\(Self.type): options.label", value: label, expected: "a FAT label of at most 11 ASCII characters")
        }
        if let size = options.fat_size, ![12, 16, 32].contains(size) {
            throw StageError.invalidOptions(reason: "\(Self.type): options.fat_size: \(size) is not 12, 16 or 32")
        }
        let source: String? =
            if context.inputs["tree"] != nil || options.source != nil {
                try context.inputDirectory(options.source ?? "/")
            } else {
                nil
            }
        let region = try context.region("device")
        guard region.offset % 512 == 0 else {
            throw StageError.invalidOptions(reason: "\(Self.type): device region must start on a 512-byte sector, not byte \(region.offset)")
        }
        let sector = region.offset / 512
        if options.fat_size == 32, region.length / 512 < Self.fat32MinimumSectors {
            throw AssemblyError.regionTooSmall(
                path: region.path, offset: region.offset, size: region.length,
                needed: Self.fat32MinimumSectors * 512)
        }
        let environment = ["MTOOLS_SKIP_CHECK": "1"]

        try await region.clear(in: context)
        // --invariant first: it sets a fixed serial and time, and -i after it wins.
        var argv = ["mkfs.fat", "--invariant", "-i", volid, "--offset", String(sector), "-h", String(sector)]
        if let size = options.fat_size { argv += ["-F", String(size)] }
        if options.fat_size == 32 { argv += ["-s", String(Self.fat32SectorsPerCluster(sectors: region.length / 512))] }
        if let label = options.label { argv += ["-n", label] }
        argv += [region.path, String(region.length / 1024)]
        try await context.run(argv, environment: environment)

        guard let source else { return }
        // mtools stamps the directories it creates with the current time unless
        // SOURCE_DATE_EPOCH says otherwise: use the same time as the ext4 stage.
        var copyEnvironment = environment
        copyEnvironment["SOURCE_DATE_EPOCH"] = String(try MkfsExt4.timestamp(source))
        try await ReadOnlyView.with(options.source ?? "/", inTree: try context.inputTree("tree"), in: context) { view in
            let entries = try FileManager.default.contentsOfDirectory(atPath: view).sorted()
            guard !entries.isEmpty else { return }
            try Self.refuseLinks(in: view, source: options.source ?? "/")
            try await context.run(
                ["mcopy", "-s", "-p", "-m", "-Q", "-i", "\(region.path)@@\(region.offset)"]
                    + entries.map { view + "/" + $0 } + ["::/"],
                environment: copyEnvironment)
        }
    }

    /// FAT holds no symbolic links, and mcopy copies what a link points to,
    /// wherever that is: a link anywhere in the source is refused.
    static func refuseLinks(in view: String, source: String) throws {
        guard let walk = FileManager.default.enumerator(atPath: view) else { return }
        while let relative = walk.nextObject() as? String {
            var st = stat()
            guard lstat(view + "/" + relative, &st) == 0 else { continue }
            if st.st_mode & S_IFMT == S_IFLNK {
                let inTree = (source == "/" ? "" : source) + "/" + relative
                throw StageError.badPath(
                    path: inTree,
                    reason:
                        "is a symbolic link; a FAT filesystem cannot hold one and Kiln does not copy what it points to: make it a regular file in the tree"
                )
            }
        }
    }

    /// FAT32 needs at least 65525 clusters, or tools that go by the cluster
    /// count (mtools, some firmware) take it for FAT16. mkfs.fat's default
    /// cluster size leaves a 124 MiB ESP short of that; use the largest
    /// cluster (up to 4 KiB) that keeps enough of them.
    /// 65525 one-sector clusters, two FATs of 4 bytes per cluster, 32 reserved sectors.
    static let fat32MinimumSectors: UInt64 = 65525 + 2 * (65527 * 4 / 512 + 1) + 32

    static func fat32SectorsPerCluster(sectors: UInt64) -> Int {
        let usable = sectors - sectors / 50 - 64  // minus reserved sectors and two FATs, roughly
        return [8, 4, 2].first { usable / UInt64($0) >= 65525 + 16 } ?? 1
    }
}
