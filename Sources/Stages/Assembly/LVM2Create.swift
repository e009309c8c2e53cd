import Foundation
import StageOptions

/// `org.kiln.lvm2.create`: makes a region of the disk image an LVM2 physical
/// volume holding one volume group with linear logical volumes, by writing
/// LVM's on-disk format (label, metadata area, text metadata) directly.
/// Nothing on the host sees or activates the group: no loop device, no lvm
/// command, no device-mapper. Every identifier is an option and the creation
/// time is fixed, so equal options give equal bytes. The volumes lie one
/// after another from the first extent (1 MiB into the region), in order, so
/// their filesystems can be written at known offsets by the mkfs stages.
package struct LVM2Create: Stage {
    package typealias Options = LVM2CreateOptions
    package typealias Volume = LVM2CreateOptions.Volume
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let region = try context.region("device")
        guard region.offset % 512 == 0, region.length % 512 == 0 else {
            throw StageError.invalidOptions(reason: "\(Self.type): the device region must be whole 512-byte sectors")
        }
        let time =
            options.creation_time
            ?? ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"].flatMap(Int64.init) ?? 0
        let metadata = try LVM2Metadata(
            vgName: options.vg_name, vgID: options.vg_uuid, pvID: options.pv_uuid,
            deviceSectors: Int64(region.length / 512),
            volumes: options.volumes.map { ($0.name, $0.uuid, $0.extents) },
            creationHost: options.creation_host ?? "kiln", creationTime: time)
        let needed = UInt64(metadata.neededSectors) * 512
        guard region.length >= needed else {
            throw AssemblyError.regionTooSmall(path: region.path, offset: region.offset, size: region.length, needed: needed)
        }
        try await region.clear(in: context)
        let header = metadata.headerBytes()
        try DiskFile.write(header, to: region.path, offset: region.offset)
        context.logger.debug("LVM2 metadata", metadata: ["vg": "\(options.vg_name)", "text": "\(metadata.text)"])
    }
}
