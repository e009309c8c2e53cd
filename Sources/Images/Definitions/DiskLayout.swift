import Manifest

/// A GPT disk laid out like Debian's cloud images: on x86_64 a BIOS boot
/// partition at sector 2048 (3 MiB), the ESP at 8192 (124 MiB) and the root
/// filesystem from 262144 to the end; on aarch64 the ESP at 2048 (127 MiB)
/// and root from 262144. All sizes in 512-byte sectors.
package struct DiskLayout: Sendable, Hashable {
    package static let sectorSize: Int64 = 512
    package static let biosBootType = "21686148-6449-6E6F-744E-656564454649"
    package static let espType = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"

    package enum Role: String, Sendable, Hashable { case biosBoot = "bios", esp, root }

    package struct Partition: Sendable, Hashable {
        package var role: Role
        package var name: String
        package var start: Int64
        package var size: Int64
        package var type: String
        package var uuid: String
    }

    package var sizeBytes: Int64
    package var uuid: String
    package var partitions: [Partition]
    /// UUID of the root ext4 filesystem.
    package var rootFilesystemUUID: String
    /// FAT volume ID of the ESP (8 hex digits).
    package var espVolumeID: String

    package var sectors: Int64 { sizeBytes / Self.sectorSize }

    package func partition(_ role: Role) -> Partition? { partitions.first { $0.role == role } }
    /// 0-based index of the partition in the table.
    package func index(of role: Role) -> Int? { partitions.firstIndex { $0.role == role } }

    package init(architecture: Architecture, sizeBytes: Int64, ids: DeterministicIDs) {
        let mib: Int64 = 2048
        let rootStart: Int64 = 262_144
        // GPT keeps its backup header and entries in the last 33 sectors; end root on a MiB boundary before them.
        let rootEnd = ((sizeBytes / Self.sectorSize - 33) / mib) * mib
        var parts: [Partition] = []
        if architecture == .x86_64 {
            parts.append(Partition(role: .biosBoot, name: "BIOS", start: 2048, size: 3 * mib,
                                   type: Self.biosBootType, uuid: ids.uuid("bios-partition")))
            parts.append(Partition(role: .esp, name: "ESP", start: 8192, size: 124 * mib,
                                   type: Self.espType, uuid: ids.uuid("esp-partition")))
        } else {
            parts.append(Partition(role: .esp, name: "ESP", start: 2048, size: 127 * mib,
                                   type: Self.espType, uuid: ids.uuid("esp-partition")))
        }
        parts.append(Partition(role: .root, name: "root", start: rootStart, size: rootEnd - rootStart,
                               type: architecture.rootPartitionType, uuid: ids.uuid("root-partition")))
        self.sizeBytes = sizeBytes
        self.uuid = ids.uuid("disk")
        self.partitions = parts
        self.rootFilesystemUUID = ids.uuid("root-filesystem")
        self.espVolumeID = ids.fatVolumeID("esp-filesystem")
    }
}
