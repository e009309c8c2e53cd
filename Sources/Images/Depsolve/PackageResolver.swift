import Manifest

/// One pinned `.deb`: everything a build needs to fetch and verify it.
package struct ResolvedPackage: Sendable, Hashable, Codable {
    package var name: String
    package var version: String
    /// dpkg architecture of the file: `amd64`, `arm64` or `all`.
    package var architecture: String
    package var url: String
    package var size: Int64
    /// Lower-case hex sha256 of the `.deb`.
    package var sha256: String

    package init(name: String, version: String, architecture: String, url: String, size: Int64, sha256: String) {
        self.name = name
        self.version = version
        self.architecture = architecture
        self.url = url
        self.size = size
        self.sha256 = sha256
    }

    /// The manifest's content ID of the file: `sha256:<hex>`.
    package var checksum: String { "sha256:\(sha256)" }
}

/// Turns package names into an exact, closed set of `.deb` files. `Depsolver`
/// asks the Debian archive; tests use a fixed list.
package protocol PackageResolver: Sendable {
    /// The closed set for `names` plus the distro's required/essential packages
    /// and apt, sorted by name.
    func resolve(_ names: [String], distro: Distro, architecture: Architecture) async throws -> [ResolvedPackage]
}
