import Foundation

/// A partition table as `sfdisk --json` prints it.
package struct PartitionTableDump: Decodable, Sendable {
    package struct Partition: Decodable, Sendable {
        package let node: String
        /// In sectors.
        package let start: UInt64
        /// In sectors.
        package let size: UInt64
        package let type: String?
        package let uuid: String?
        package let name: String?
        package let bootable: Bool?
        package let attrs: String?

        /// The partition number, from the trailing digits of `node`.
        package var number: Int? { Int(String(node.reversed().prefix { $0.isNumber }.reversed())) }
    }

    package let label: String
    package let id: String?
    package let sectorsize: UInt64?
    package let partitions: [Partition]

    private struct Wrapper: Decodable { let partitiontable: PartitionTableDump }
    private enum CodingKeys: String, CodingKey { case label, id, sectorsize, partitions }

    package init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        label = try c.decode(String.self, forKey: .label)
        id = try c.decodeIfPresent(String.self, forKey: .id)
        sectorsize = try c.decodeIfPresent(UInt64.self, forKey: .sectorsize)
        partitions = try c.decodeIfPresent([Partition].self, forKey: .partitions) ?? []
    }

    /// Reads the partition table of `path` (a disk image file).
    package static func read(_ path: String, in context: StageContext) async throws -> PartitionTableDump {
        let json = try await context.output(["sfdisk", "--json", path])
        do {
            return try JSONDecoder().decode(Wrapper.self, from: Data(json.utf8)).partitiontable
        } catch {
            throw StageError.treeInconsistent(reason: "\(path): cannot read the partition table printed by sfdisk --json: \(error)")
        }
    }
}
