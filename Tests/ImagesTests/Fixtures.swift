import Foundation
import Manifest
@testable import Images

enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Stage type → the option names docs/stages.md shows for it (code spans of the options column).
    static func documentedStageOptions() throws -> [String: Set<String>] {
        let doc = try String(contentsOf: repository.appendingPathComponent("docs/stages.md"), encoding: .utf8)
        var documented: [String: Set<String>] = [:]
        for line in doc.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 2, let type = cells[0].split(separator: "`").first.map(String.init) else { continue }
            documented[type] = Set(cells[1].components(separatedBy: "`").enumerated().filter { $0.offset % 2 == 1 }.map(\.element))
        }
        return documented
    }
}

/// A fixed package set standing in for the Debian archive. This is a test
/// double of a network service (the mirror behind `Depsolver`), so manifest
/// tests run offline and give the same packages every time; the real
/// depsolve is covered by `DepsolveNetworkTests`.
struct FixedPackages: PackageResolver {
    var extra: [String] = []

    func resolve(_ names: [String], distro: Distro, architecture: Architecture) async throws -> [ResolvedPackage] {
        let base = ["base-files", "libc6", "systemd", "systemd-sysv", "apt", "dpkg", "linux-image-\(architecture.debian)"]
        let wanted = Set(base + names.filter { ["openssh-server", "curl", "cloud-init"].contains($0) } + extra)
        return wanted.sorted().map { name in
            ResolvedPackage(name: name, version: "1.0-1", architecture: architecture.debian,
                            url: "\(distro.mirror)/pool/main/\(name.prefix(1))/\(name)/\(name)_1.0-1_\(architecture.debian).deb",
                            size: 1000, sha256: CanonicalJSON.sha256Hex(.string(name)))
        }
    }
}
