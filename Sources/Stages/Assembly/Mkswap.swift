import Foundation
import StageOptions

/// `org.osbuild.mkswap`: makes a swap area in a region of the disk image.
/// mkswap writes its one-page header into a sparse scratch file of the
/// region's size, and that page is copied to the region's start; the rest
/// of the region reads as zeros. No loop device.
package struct Mkswap: Stage {
    package typealias Options = MkswapOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly

    /// The header page: 4 KiB, the page size of every architecture Kiln builds for.
    static let pageSize: UInt64 = 4096

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let uuid = try Identifier.uuid(options.uuid, field: "\(Self.type): options.uuid")
        if let label = options.label, label.utf8.count > 16 {
            throw AssemblyError.badIdentifier(field: "\(Self.type): options.label", value: label, expected: "a swap label of at most 16 bytes")
        }
        let region = try context.region("device")
        // mkswap wants at least 10 pages.
        guard region.length >= 10 * Self.pageSize else {
            throw AssemblyError.regionTooSmall(path: region.path, offset: region.offset, size: region.length, needed: 10 * Self.pageSize)
        }
        let scratch = context.scratch + "/swap.img"
        try await context.run(["truncate", "--size", String(region.length / Self.pageSize * Self.pageSize), scratch])
        var argv = ["mkswap", "-q", "--pagesize", String(Self.pageSize), "--uuid", uuid]
        if let label = options.label { argv += ["--label", label] }
        try await context.run(argv + [scratch])
        let header = try DiskFile.read(scratch, offset: 0, count: Int(Self.pageSize))
        try await region.clear(in: context)
        try DiskFile.write(header, to: region.path, offset: region.offset)
        try? FileManager.default.removeItem(atPath: scratch)
    }
}
