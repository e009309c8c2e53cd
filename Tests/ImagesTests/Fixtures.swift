import Foundation
import Manifest
@testable import Images

enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
}

/// A fixed package set standing in for the Debian archive. This is a test
/// double of a network service (the mirror behind `Depsolver`), so manifest
/// tests run offline and give the same packages every time; the real
/// depsolve is covered by `DepsolveNetworkTests`.
struct FixedPackages: PackageResolver {
    var extra: [String] = []

    func resolve(_ names: [String], distro: Distro, architecture: Architecture) async throws -> [ResolvedPackage] {
        let base = ["base-files", "libc6", "systemd", "systemd-sysv", "apt", "dpkg", "linux-image-\(architecture.debian)"]
        let wanted = Set(base + names.filter { $0 == "openssh-server" || $0 == "curl" } + extra)
        return wanted.sorted().map { name in
            ResolvedPackage(name: name, version: "1.0-1", architecture: architecture.debian,
                            url: "\(distro.mirror)/pool/main/\(name.prefix(1))/\(name)/\(name)_1.0-1_\(architecture.debian).deb",
                            size: 1000, sha256: CanonicalJSON.sha256Hex(.string(name)))
        }
    }
}
