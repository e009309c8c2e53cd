import Crypto
import Foundation
import Manifest

/// Every UUID of an image derived from one seed (RFC 9562 version 5 UUIDs
/// named `<seed>/<purpose>` in Kiln's namespace), so the same request always
/// gives the same manifest and the same disk.
package struct DeterministicIDs: Sendable, Hashable {
    /// Hex seed, e.g. sha256 of the canonical request.
    package let seed: String

    package init(seed: String) { self.seed = seed }

    /// Kiln's namespace: uuid5(NameSpace_URL, "https://kiln.invalid/images").
    static let namespace: [UInt8] = uuid5(
        namespace: parse("6ba7b811-9dad-11d1-80b4-00c04fd430c8"), name: "https://kiln.invalid/images")

    /// A lower-case UUID for `purpose` (`disk`, `root-partition`, `root-fs`, …).
    package func uuid(_ purpose: String) -> String {
        Self.format(Self.uuid5(namespace: Self.namespace, name: "\(seed)/\(purpose)"))
    }

    /// A FAT volume ID: 8 upper-case hex digits.
    package func fatVolumeID(_ purpose: String) -> String {
        let digest = SHA256.hash(data: Data("\(seed)/\(purpose)".utf8))
        return Hex.encode(digest.prefix(4), uppercase: true)
    }

    /// How a FAT volume ID appears as a filesystem UUID (blkid, fstab): `ABCD-1234`.
    package static func fatUUID(_ volid: String) -> String {
        "\(volid.prefix(4))-\(volid.dropFirst(4))".uppercased()
    }

    static func uuid5(namespace: [UInt8], name: String) -> [UInt8] {
        var hasher = Insecure.SHA1()
        hasher.update(data: namespace)
        hasher.update(data: Data(name.utf8))
        var bytes = Array(hasher.finalize().prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x50
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return bytes
    }

    static func parse(_ uuid: String) -> [UInt8] {
        let hex = Array(uuid.replacingOccurrences(of: "-", with: ""))
        return stride(from: 0, to: hex.count, by: 2).map { UInt8(String(hex[$0...$0 + 1]), radix: 16)! }
    }

    static func format(_ b: [UInt8]) -> String {
        let hex = Hex.encode(b)
        let c = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(c[$0]) }.joined(separator: "-")
    }
}
