import Foundation

// Options of the assembly stages that write a disk image: its size, the
// partition table, filesystems, swap, LVM and BIOS GRUB.

/// A size in bytes as a manifest writes it: an integer, or a string of
/// digits with an optional unit (`kB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`,
/// `TB`, `TiB`), as osbuild accepts.
package struct ByteSize: Codable, Sendable, Hashable {
    package let bytes: UInt64
    /// How the manifest wrote it, kept so the option round-trips.
    private let written: String?

    package init(bytes: UInt64) {
        self.init(bytes: bytes, written: nil)
    }

    private init(bytes: UInt64, written: String?) {
        self.bytes = bytes
        self.written = written
    }

    package init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(UInt64.self) {
            self.init(bytes: n)
        } else {
            let text = try c.decode(String.self)
            guard let bytes = Self.parse(text) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: Self.notASize(field: "size", value: text))
            }
            self.init(bytes: bytes, written: text)
        }
    }

    package func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if let written { try c.encode(written) } else { try c.encode(bytes) }
    }

    /// What is wrong with `value` of option `field`, which is not a size.
    package static func notASize(field: String, value: String) -> String {
        "\(field): \"\(value)\" is not a size; use bytes as an integer or a string such as \"3221225472\", \"512 MiB\" or \"3 GiB\""
    }

    private static let units: [(String, UInt64)] = [
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
        ("kB", 1_000), ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
        ("B", 1),
    ]

    package static func parse(_ text: String) -> UInt64? {
        var s = Substring(text.trimmingCharacters(in: .whitespaces))
        var factor: UInt64 = 1
        for (suffix, f) in units where s.hasSuffix(suffix) {
            s = s.dropLast(suffix.count)
            factor = f
            break
        }
        s = Substring(s.trimmingCharacters(in: .whitespaces))
        guard !s.isEmpty, s.allSatisfy(\.isASCII), let n = UInt64(s) else { return nil }
        let (product, overflow) = n.multipliedReportingOverflow(by: factor)
        return overflow ? nil : product
    }
}

/// `org.osbuild.truncate`: a file of the output tree created or resized.
package struct TruncateOptions: StageOptionsType {
    package static let stageType = "org.osbuild.truncate"

    /// File in the output tree.
    package let filename: String
    /// New size in bytes (integer, or a string such as "3 GiB").
    package let size: ByteSize

    package init(filename: String, size: ByteSize) {
        (self.filename, self.size) = (filename, size)
    }
}

/// `org.osbuild.sfdisk`: the partition table of the device.
package struct SfdiskOptions: StageOptionsType {
    package static let stageType = "org.osbuild.sfdisk"

    package struct Partition: Codable, Sendable {
        /// First sector.
        package let start: UInt64?
        /// Size in sectors; absent means up to the end of the disk.
        package let size: UInt64?
        /// GPT type GUID or DOS type code (`83`, `ef`, …).
        package let type: String?
        /// Partition UUID (GPT).
        package let uuid: String?
        /// Partition name (GPT).
        package let name: String?
        /// Active flag (DOS).
        package let bootable: Bool?
        /// GPT attribute bits (0–63).
        package let attrs: [Int]?
        /// Partition number (1-based); default: the next free one.
        package let partnum: Int?

        package init(
            start: UInt64? = nil, size: UInt64? = nil, type: String? = nil, uuid: String? = nil, name: String? = nil,
            bootable: Bool? = nil, attrs: [Int]? = nil, partnum: Int? = nil
        ) {
            (self.start, self.size, self.type, self.uuid, self.name, self.bootable, self.attrs, self.partnum) = (
                start, size, type, uuid, name, bootable, attrs, partnum
            )
        }
    }

    /// `gpt`, `dos` (or its alias `mbr`).
    package let label: String
    /// Disk identifier: a UUID for GPT, 8 hex digits (optionally `0x…`) for DOS.
    package let uuid: String
    package let partitions: [Partition]?

    package init(label: String, uuid: String, partitions: [Partition]? = nil) {
        (self.label, self.uuid, self.partitions) = (label, uuid, partitions)
    }
}

/// `org.kiln.mkfs.fat`: a FAT filesystem on the device, filled from the input tree.
package struct MkfsFatOptions: StageOptionsType {
    package static let stageType = "org.kiln.mkfs.fat"

    /// Volume ID: 8 hex digits.
    package let volid: String
    /// Volume label, at most 11 characters.
    package let label: String?
    /// 12, 16 or 32; default: mkfs.fat's choice for the size.
    package let fat_size: Int?
    /// Directory of the input tree whose contents fill the filesystem
    /// (default `/` when there is an input `tree`; empty otherwise).
    package let source: String?

    package init(volid: String, label: String? = nil, fat_size: Int? = nil, source: String? = nil) {
        (self.volid, self.label, self.fat_size, self.source) = (volid, label, fat_size, source)
    }
}

/// `org.kiln.mkfs.ext4`: an ext4 filesystem on the device, filled from the input tree.
package struct MkfsExt4Options: StageOptionsType {
    package static let stageType = "org.kiln.mkfs.ext4"

    package let uuid: String
    /// Volume label, at most 16 bytes.
    package let label: String?
    /// Directory of the input tree that fills the filesystem (default `/`).
    package let source: String?
    /// The complete feature list; default `MkfsExt4.defaultFeatures`.
    package let features: [String]?
    /// Directories below `source` (absolute tree paths) that stay empty: mountpoints of other filesystems.
    package let exclude: [String]?

    package init(uuid: String, label: String? = nil, source: String? = nil, features: [String]? = nil, exclude: [String]? = nil) {
        (self.uuid, self.label, self.source, self.features, self.exclude) = (uuid, label, source, features, exclude)
    }
}

/// `org.kiln.mkfs.xfs`: an XFS filesystem on the device, filled from the input tree.
package struct MkfsXfsOptions: StageOptionsType {
    package static let stageType = "org.kiln.mkfs.xfs"

    package let uuid: String
    /// Volume label, at most 12 bytes.
    package let label: String?
    /// Directory of the input tree that fills the filesystem (default `/`).
    package let source: String?
    /// Directories below `source` (absolute tree paths) that stay empty: mountpoints of other filesystems.
    package let exclude: [String]?

    package init(uuid: String, label: String? = nil, source: String? = nil, exclude: [String]? = nil) {
        (self.uuid, self.label, self.source, self.exclude) = (uuid, label, source, exclude)
    }
}

/// `org.osbuild.mkswap`: swap space on the device.
package struct MkswapOptions: StageOptionsType {
    package static let stageType = "org.osbuild.mkswap"

    package let uuid: String
    /// At most 16 bytes.
    package let label: String?

    package init(uuid: String, label: String? = nil) {
        (self.uuid, self.label) = (uuid, label)
    }
}

/// `org.kiln.lvm2.create`: an LVM2 physical volume with one volume group of linear logical volumes.
package struct LVM2CreateOptions: StageOptionsType {
    package static let stageType = "org.kiln.lvm2.create"

    package struct Volume: Codable, Sendable {
        package let name: String
        package let uuid: String
        /// Size in 4 MiB extents.
        package let extents: Int64

        package init(name: String, uuid: String, extents: Int64) {
            (self.name, self.uuid, self.extents) = (name, uuid, extents)
        }
    }

    /// Volume group name.
    package let vg_name: String
    /// LVM identifiers: 32 letters and digits, optionally with the dashes LVM prints (6-4-4-4-4-4-6).
    package let vg_uuid: String
    package let pv_uuid: String
    package let volumes: [Volume]
    /// Recorded in the metadata; default `kiln`.
    package let creation_host: String?
    /// Seconds since 1970 recorded in the metadata; default SOURCE_DATE_EPOCH, else 0.
    package let creation_time: Int64?

    package init(
        vg_name: String, vg_uuid: String, pv_uuid: String, volumes: [Volume], creation_host: String? = nil,
        creation_time: Int64? = nil
    ) {
        (self.vg_name, self.vg_uuid, self.pv_uuid, self.volumes, self.creation_host, self.creation_time) = (
            vg_name, vg_uuid, pv_uuid, volumes, creation_host, creation_time
        )
    }
}

/// `org.osbuild.grub2.inst`: BIOS GRUB (boot.img and a core image) written into the disk image.
package struct Grub2InstOptions: StageOptionsType {
    package static let stageType = "org.osbuild.grub2.inst"

    package struct Core: Codable, Sendable {
        /// Only `mkimage`.
        package let type: String
        /// `gpt` or `dos`: which partition-table module goes into the core image.
        package let partlabel: String
        /// `ext4`, `xfs`, `btrfs` or `iso9660`: the filesystem module for the prefix.
        package let filesystem: String
        /// osbuild's name of the grub-mkimage program: only `grub-mkimage` or
        /// Fedora's `grub2-mkimage` is accepted, and either way the host's
        /// `grub-mkimage` runs. The manifest never chooses a program.
        package let binary: String?

        static let binaries: Set<String> = ["grub-mkimage", "grub2-mkimage"]

        enum CodingKeys: String, CodingKey { case type, partlabel, filesystem, binary }

        package init(type: String, partlabel: String, filesystem: String, binary: String? = nil) {
            (self.type, self.partlabel, self.filesystem, self.binary) = (type, partlabel, filesystem, binary)
        }

        /// Refuses any other `binary` while the manifest is validated, before anything runs.
        package init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            type = try c.decode(String.self, forKey: .type)
            partlabel = try c.decode(String.self, forKey: .partlabel)
            filesystem = try c.decode(String.self, forKey: .filesystem)
            binary = try c.decodeIfPresent(String.self, forKey: .binary)
            if let binary, !Self.binaries.contains(binary) {
                throw DecodingError.dataCorruptedError(
                    forKey: .binary, in: c,
                    debugDescription:
                        "\"\(binary)\" is not a program Kiln runs; a manifest cannot choose one. Remove the option (Kiln runs the host's grub-mkimage) or give \"grub-mkimage\" or \"grub2-mkimage\""
                )
            }
        }
    }

    package struct Prefix: Codable, Sendable {
        /// `partition`, or absent for a bare path.
        package let type: String?
        package let partlabel: String?
        /// Partition index, starting at zero.
        package let number: Int?
        /// GRUB's directory inside that partition, e.g. `/boot/grub`.
        package let path: String

        package init(type: String? = nil, partlabel: String? = nil, number: Int? = nil, path: String) {
            (self.type, self.partlabel, self.number, self.path) = (type, partlabel, number, path)
        }
    }

    /// Disk image in the output tree.
    package let filename: String
    /// Only `i386-pc`.
    package let platform: String
    /// Sector where the core image goes (the BIOS boot partition's first sector).
    package let location: UInt64?
    package let core: Core
    package let prefix: Prefix
    /// Only 512.
    package let sectorSize: UInt64?

    enum CodingKeys: String, CodingKey {
        case filename, platform, location, core, prefix
        case sectorSize = "sector-size"
    }

    package init(filename: String, platform: String, location: UInt64? = nil, core: Core, prefix: Prefix, sectorSize: UInt64? = nil) {
        (self.filename, self.platform, self.location, self.core, self.prefix, self.sectorSize) = (
            filename, platform, location, core, prefix, sectorSize
        )
    }
}
