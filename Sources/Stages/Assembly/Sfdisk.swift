import Foundation
import StageOptions

/// `org.osbuild.sfdisk`: writes a GPT or DOS partition table into a disk
/// image file with sfdisk(8).
package struct Sfdisk: Stage {
    package typealias Options = SfdiskOptions
    package typealias Partition = SfdiskOptions.Partition
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let region = try context.region("device")
        guard region.offset == 0 else {
            throw StageError.invalidOptions(
                reason: "\(Self.type): device \"device\" must be the whole disk image (start 0), not a region at byte \(region.offset)")
        }
        let script = try Self.script(options, device: region.path)
        let scriptPath = context.scratch + "/sfdisk.script"
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        context.logger.debug("sfdisk script", metadata: ["script": "\(script)"])
        try await context.run([
            "sh", "-c", "exec sfdisk --quiet --no-reread --no-tell-kernel --wipe always -- \"$1\" < \"$2\"",
            "sfdisk", region.path, scriptPath,
        ])
    }

    /// The sfdisk script for `options`; `device` names the partitions when
    /// `partnum` is given (sfdisk takes the number from the name's digits).
    static func script(_ options: Options, device: String) throws -> String {
        let label: String
        switch options.label {
        case "gpt": label = "gpt"
        case "dos", "mbr": label = "dos"
        default: throw StageError.invalidOptions(reason: "\(Self.type): options.label: \"\(options.label)\" is not one of gpt, dos, mbr")
        }
        let partitions = options.partitions ?? []
        var lines = ["label: \(label)", "unit: sectors", "sector-size: 512"]
        if label == "gpt" {
            lines.append("label-id: \(try Identifier.uuid(options.uuid, field: "\(Self.type): options.uuid").uppercased())")
            // sfdisk's default first usable sector is 2048; allow earlier starts when asked.
            let first = partitions.compactMap(\.start).min() ?? 2048
            lines.append("first-lba: \(max(34, min(first, 2048)))")
        } else {
            let hex = options.uuid.hasPrefix("0x") ? String(options.uuid.dropFirst(2)) : options.uuid
            lines.append("label-id: 0x\(try Identifier.hex(hex, digits: 8, field: "\(Self.type): options.uuid").lowercased())")
        }
        for (i, p) in partitions.enumerated() {
            let field = "\(Self.type): options.partitions[\(i)]"
            var fields: [String] = []
            if let start = p.start { fields.append("start=\(start)") }
            if let size = p.size { fields.append("size=\(size)") }
            if let type = p.type {
                guard type.allSatisfy({ $0.isHexDigit || $0 == "-" }) else {
                    throw StageError.invalidOptions(reason: "\(field).type: \"\(type)\" is not a GUID or a hex type code")
                }
                fields.append("type=\(type)")
            }
            if label == "gpt" {
                if let uuid = p.uuid { fields.append("uuid=\(try Identifier.uuid(uuid, field: field + ".uuid").uppercased())") }
                if let name = p.name {
                    guard !name.contains("\""), !name.contains("\n") else {
                        throw StageError.invalidOptions(reason: "\(field).name: must not contain quotes or newlines")
                    }
                    fields.append("name=\"\(name)\"")
                }
                if let attrs = p.attrs, !attrs.isEmpty {
                    guard attrs.allSatisfy({ (0...63).contains($0) }) else {
                        throw StageError.invalidOptions(reason: "\(field).attrs: attribute bits are 0 to 63")
                    }
                    fields.append("attrs=\"\(attrs.map(String.init).joined(separator: " "))\"")
                }
            }
            if p.bootable == true { fields.append("bootable") }
            var line = fields.joined(separator: ", ")
            if let n = p.partnum {
                guard n >= 1 else { throw StageError.invalidOptions(reason: "\(field).partnum: partition numbers start at 1") }
                line = "\(device)\(n) : " + line
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
