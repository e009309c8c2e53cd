import Foundation

/// One `.deb` an image was built from, as its manifest pins it: a
/// `org.osbuild.curl` source item, whose key is the file's sha256 and whose
/// URL is the archive's pool path `pool/COMPONENT/PREFIX/SOURCE/NAME_VERSION_ARCH.deb`.
package struct PackageRecord: Sendable, Equatable, Hashable {
    package var name: String
    /// The full Debian version, epoch included (`1:9.2p1-2+deb12u3`).
    package var version: String
    package var architecture: String
    /// The source package (the pool directory the `.deb` is in).
    package var source: String
    /// Hex sha256 of the `.deb`.
    package var sha256: String
    package var url: String

    /// The epoch, or nil without one.
    package var epoch: String? { version.firstIndex(of: ":").map { String(version[..<$0]) } }
    /// The version after the epoch.
    package var versionWithoutEpoch: String {
        version.firstIndex(of: ":").map { String(version[version.index(after: $0)...]) } ?? version
    }

    /// Every `.deb` of a manifest, by name then version; nil when the
    /// manifest is not JSON. Items that are not pool `.deb`s are left out.
    package static func all(inManifest manifest: Data) -> [PackageRecord]? {
        guard let object = try? JSONSerialization.jsonObject(with: manifest) as? [String: Any] else { return nil }
        let sources = object["sources"] as? [String: Any] ?? [:]
        let items = (sources["org.osbuild.curl"] as? [String: Any])?["items"] as? [String: Any] ?? [:]
        var out: [PackageRecord] = []
        for (key, value) in items {
            guard key.hasPrefix("sha256:"), let url = (value as? [String: Any])?["url"] as? String ?? value as? String,
                let record = PackageRecord(url: url, sha256: String(key.dropFirst(7)))
            else { continue }
            out.append(record)
        }
        return out.sorted { ($0.name, $0.version, $0.architecture) < ($1.name, $1.version, $1.architecture) }
    }

    /// The record for a pool URL, or nil when `url` is not one.
    package init?(url: String, sha256: String) {
        let path = url.split(separator: "/", omittingEmptySubsequences: false)
        guard let file = path.last, file.hasSuffix(".deb"), path.count >= 3,
            let decoded = String(file.dropLast(4)).removingPercentEncoding
        else { return nil }
        let parts = decoded.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else { return nil }
        name = String(parts[0])
        version = String(parts[1])
        architecture = String(parts[2])
        let directory = path[path.count - 2]
        source = directory.isEmpty ? name : String(directory)
        self.sha256 = sha256
        self.url = url
    }
}
