import Foundation

/// LVM2's on-disk format for a physical volume with one metadata area and
/// one volume group of linear volumes (lvm2's `format_text`, label type
/// `LVM2 001`): the label in sector 1, the metadata area header at 4 KiB,
/// the volume group's text metadata right after it, extents from 1 MiB.
/// Checked against what lvm2 2.03 writes and reads on this machine.
package struct LVM2Metadata: Sendable {
    package static let extentSectors: Int64 = 8192
    package static let peStartSectors: Int64 = 2048
    static let mdaOffset = 4096
    static let mdaSize = 1024 * 1024 - 4096
    static let mdaHeaderSize = 512
    static let mdaMagic = Array(" LVM2 x[5A%r0N*>".utf8)
    /// lvm2's CRC: CRC-32 (reflected 0xEDB88320) seeded with this value, without the final inversion.
    static let crcSeed: UInt32 = 0xF597_A6CF

    package let vgName: String
    package let vgID: String
    package let pvID: String
    package let deviceSectors: Int64
    package let volumes: [(name: String, id: String, extents: Int64)]
    package let creationHost: String
    package let creationTime: Int64

    /// Checks names and identifiers as lvm2 does.
    package init(vgName: String, vgID: String, pvID: String, deviceSectors: Int64,
                 volumes: [(String, String, Int64)], creationHost: String, creationTime: Int64) throws {
        let field = LVM2Create.type + ": options"
        guard Self.validName(vgName) else {
            throw StageError.invalidOptions(reason: "\(field).vg_name: \"\(vgName)\" is not an LVM name (letters, digits, + _ . -, not starting with -)")
        }
        self.vgName = vgName
        self.vgID = try Self.identifier(vgID, field: field + ".vg_uuid")
        self.pvID = try Self.identifier(pvID, field: field + ".pv_uuid")
        guard !volumes.isEmpty else { throw StageError.invalidOptions(reason: "\(field).volumes: give at least one logical volume") }
        var seen = Set<String>()
        var checked: [(String, String, Int64)] = []
        for (i, v) in volumes.enumerated() {
            guard Self.validName(v.0), v.0 != "snapshot", v.0 != "pvmove", seen.insert(v.0).inserted else {
                throw StageError.invalidOptions(reason: "\(field).volumes[\(i)].name: \"\(v.0)\" is not a usable, distinct logical volume name")
            }
            guard v.2 > 0 else { throw StageError.invalidOptions(reason: "\(field).volumes[\(i)].extents: must be at least 1") }
            checked.append((v.0, try Self.identifier(v.1, field: "\(field).volumes[\(i)].uuid"), v.2))
        }
        guard !creationHost.contains("\""), !creationHost.contains("\\"), !creationHost.contains("\n") else {
            throw StageError.invalidOptions(reason: "\(field).creation_host: must not contain quotes, backslashes or newlines")
        }
        self.volumes = checked.map { (name: $0.0, id: $0.1, extents: $0.2) }
        self.deviceSectors = deviceSectors
        self.creationHost = creationHost
        self.creationTime = creationTime
    }

    /// Sectors the physical volume needs: the metadata, then every extent of every volume.
    package var neededSectors: Int64 { Self.peStartSectors + volumes.reduce(0) { $0 + $1.extents } * Self.extentSectors }
    package var extentCount: Int64 { (deviceSectors - Self.peStartSectors) / Self.extentSectors }

    /// The first MiB of the physical volume: label, metadata area header and metadata text.
    package func headerBytes() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(Self.peStartSectors) * 512)
        // Label header, sector 1.
        let label = 512
        put(Array("LABELONE".utf8), into: &bytes, at: label)
        DiskFile.putLE(1, into: &bytes, at: label + 8)  // sector_xl
        DiskFile.putLE(32, into: &bytes, at: label + 20, width: 4)  // offset_xl: the PV header follows
        put(Array("LVM2 001".utf8), into: &bytes, at: label + 24)
        // PV header.
        var at = label + 32
        put(Array(Self.raw(pvID).utf8), into: &bytes, at: at)
        at += 32
        DiskFile.putLE(UInt64(deviceSectors * 512), into: &bytes, at: at)
        at += 8
        // Data areas: one from pe_start (size 0: to the end), then the terminator.
        DiskFile.putLE(UInt64(Self.peStartSectors * 512), into: &bytes, at: at)
        at += 32
        // Metadata areas: one at 4 KiB, then the terminator.
        DiskFile.putLE(UInt64(Self.mdaOffset), into: &bytes, at: at)
        DiskFile.putLE(UInt64(Self.mdaSize), into: &bytes, at: at + 8)
        at += 32
        // PV header extension: version 2, flags PV_EXT_USED (in a volume group), no bootloader areas.
        DiskFile.putLE(2, into: &bytes, at: at, width: 4)
        DiskFile.putLE(1, into: &bytes, at: at + 4, width: 4)
        DiskFile.putLE(UInt64(Self.crc(bytes[(label + 20)..<(label + 512)])), into: &bytes, at: label + 16, width: 4)

        // Metadata text (NUL-terminated), 512 bytes into the metadata area.
        let text = Array(self.text.utf8) + [0]
        put(text, into: &bytes, at: Self.mdaOffset + Self.mdaHeaderSize)
        // Metadata area header.
        let mda = Self.mdaOffset
        put(Self.mdaMagic, into: &bytes, at: mda + 4)
        DiskFile.putLE(1, into: &bytes, at: mda + 20, width: 4)  // version
        DiskFile.putLE(UInt64(Self.mdaOffset), into: &bytes, at: mda + 24)  // start
        DiskFile.putLE(UInt64(Self.mdaSize), into: &bytes, at: mda + 32)  // size
        // raw_locn[0]: where the text is, relative to the area, its size and checksum.
        DiskFile.putLE(UInt64(Self.mdaHeaderSize), into: &bytes, at: mda + 40)
        DiskFile.putLE(UInt64(text.count), into: &bytes, at: mda + 48)
        DiskFile.putLE(UInt64(Self.crc(text[...])), into: &bytes, at: mda + 56, width: 4)
        DiskFile.putLE(UInt64(Self.crc(bytes[(mda + 4)..<(mda + Self.mdaHeaderSize)])), into: &bytes, at: mda, width: 4)
        return bytes
    }

    /// The volume group in lvm2's text format, as lvm2 writes it.
    package var text: String {
        var lines = [
            "\(vgName) {",
            "id = \"\(Self.dashed(vgID))\"",
            "seqno = 1",
            "format = \"lvm2\"",
            "status = [\"RESIZEABLE\", \"READ\", \"WRITE\"]",
            "flags = []",
            "extent_size = \(Self.extentSectors)",
            "max_lv = 0",
            "max_pv = 0",
            "metadata_copies = 0",
            "",
            "physical_volumes {",
            "",
            "pv0 {",
            "id = \"\(Self.dashed(pvID))\"",
            "",
            "status = [\"ALLOCATABLE\"]",
            "flags = []",
            "dev_size = \(deviceSectors)",
            "pe_start = \(Self.peStartSectors)",
            "pe_count = \(extentCount)",
            "}",
            "}",
            "",
            "logical_volumes {",
        ]
        var extent: Int64 = 0
        for v in volumes {
            lines += [
                "",
                "\(v.name) {",
                "id = \"\(Self.dashed(v.id))\"",
                "status = [\"READ\", \"WRITE\", \"VISIBLE\"]",
                "flags = []",
                "creation_time = \(creationTime)",
                "creation_host = \"\(creationHost)\"",
                "segment_count = 1",
                "",
                "segment1 {",
                "start_extent = 0",
                "extent_count = \(v.extents)",
                "",
                "type = \"striped\"",
                "stripe_count = 1",
                "",
                "stripes = [",
                "\"pv0\", \(extent)",
                "]",
                "}",
                "}",
            ]
            extent += v.extents
        }
        lines += [
            "}",
            "",
            "}",
            "# Generated by Kiln (org.kiln.lvm2.create)",
            "",
            "contents = \"Text Format Volume Group\"",
            "version = 1",
            "",
            "description = \"\"",
            "",
            "creation_host = \"\(creationHost)\"",
            "creation_time = \(creationTime)",
            "",
        ]
        return lines.joined(separator: "\n")
    }

    static func validName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 127 && name != "." && name != ".." && name.first != "-"
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+_.-".contains($0)) }
    }

    static let idCharacters = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#")

    /// The 32 identifier characters of `value` (dashes removed), checked.
    static func identifier(_ value: String, field: String) throws -> String {
        let raw = raw(value)
        guard raw.count == 32, raw.allSatisfy(idCharacters.contains) else {
            throw AssemblyError.badIdentifier(field: field, value: value, expected: "an LVM identifier (32 letters and digits, optionally as 6-4-4-4-4-4-6)")
        }
        return raw
    }

    static func raw(_ id: String) -> String { id.replacingOccurrences(of: "-", with: "") }

    /// `xxxxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxxxx`, as lvm2 prints identifiers.
    static func dashed(_ raw: String) -> String {
        var out = ""
        var rest = Substring(raw)
        for group in [6, 4, 4, 4, 4, 4, 6] {
            if !out.isEmpty { out += "-" }
            out += rest.prefix(group)
            rest = rest.dropFirst(group)
        }
        return out
    }

    private func put(_ source: [UInt8], into bytes: inout [UInt8], at offset: Int) {
        bytes.replaceSubrange(offset..<(offset + source.count), with: source)
    }

    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var c = crcSeed
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c
    }
}
