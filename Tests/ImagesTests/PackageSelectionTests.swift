import Foundation
import Manifest
import Testing
@testable import Images

/// The rule between the blueprint's packages and an image type's extras, and
/// the search for a conflicting pair, against a resolver that answers like
/// apt for a fixed set of conflicts (the real apt is in DepsolverTests:
/// trixie's cloud-init against firewalld, postfix against exim4).
struct PackageSelectionTests {
    /// Resolves any set without a conflicting pair; otherwise fails with apt's wording. Counts its calls.
    final class ConflictingResolver: PackageResolver, @unchecked Sendable {
        let conflicts: [(String, String)]
        private let lock = NSLock()
        private var count = 0
        var calls: Int { lock.withLock { count } }

        init(_ conflicts: [(String, String)]) { self.conflicts = conflicts }

        func resolve(_ names: [String], distro: Distro, architecture: Architecture) async throws -> [ResolvedPackage] {
            lock.withLock { count += 1 }
            let bare = Set(names.map { String($0.split(separator: "=").first ?? "") })
            let broken = conflicts.filter { bare.contains($0.0) && bare.contains($0.1) }
            if !broken.isEmpty {
                throw DepsolveError.unsatisfiable(names: names, distro: distro.name, reason: """
                    Some packages could not be installed. This may mean that you have
                    The following packages have unmet dependencies:
                    \(broken.map { " \($0.0) : Conflicts: \($0.1) but 1.0-1 is to be installed" }.joined(separator: "\n"))
                    E: Unable to correct problems, you have held broken packages.
                    """)
            }
            return bare.sorted().map { ResolvedPackage(name: $0, version: "1.0-1", architecture: "amd64", url: "http://x/\($0).deb", size: 1, sha256: String(repeating: "0", count: 64)) }
        }
    }

    func blueprint(_ packages: [String]) throws -> Blueprint {
        try Blueprint.parse(toml: "name = \"t\"\n" + packages.map { "[[packages]]\nname = \"\($0)\"\n" }.joined(), file: "t.toml")
    }

    func selection(_ packages: [String], extras: [ImageExtra]) -> PackageSelection {
        PackageSelection(required: ["systemd-sysv", "sudo"], requiredBecause: ["systemd-timesyncd": "[customizations.timezone] ntpservers"],
                         extras: extras,
                         requested: packages.enumerated().map { .init(request: $1, field: "packages[\($0)]") })
    }

    static let cloudInit = ImageExtra(name: "cloud-init", packages: ["cloud-init", "cloud-guest-utils", "iproute2"], why: "user data")
    static let agent = ImageExtra(name: "qemu-guest-agent", packages: ["qemu-guest-agent"], why: "the hypervisor")

    @Test func anExtraThatConflictsWithABlueprintPackageIsLeftOutTheOthersStay() async throws {
        let resolver = ConflictingResolver([("cloud-init", "firewalld")])
        let r = try await selection(["cockpit", "firewalld"], extras: [Self.cloudInit, Self.agent])
            .resolve(with: resolver, distro: .debian13, architecture: .x86_64, blueprint: try blueprint(["cockpit", "firewalld"]))
        #expect(r.dropped.map(\.extra.name) == ["cloud-init"])
        #expect(r.dropped.first?.conflictsWith == ["firewalld"])
        #expect(r.dropped.first?.apt == ["cloud-init : Conflicts: firewalld but 1.0-1 is to be installed"])
        let names = Set(r.packages.map(\.name))
        #expect(names.isSuperset(of: ["cockpit", "firewalld", "qemu-guest-agent"]) && !names.contains("cloud-init"))
    }

    @Test func anExtraInConflictWithTheImageItselfIsKilnsMistakeNotTheBlueprints() async throws {
        let resolver = ConflictingResolver([("cloud-init", "sudo")])
        await #expect(throws: DepsolveError.self) {
            _ = try await selection(["tmux"], extras: [Self.cloudInit])
                .resolve(with: resolver, distro: .debian13, architecture: .x86_64, blueprint: try blueprint(["tmux"]))
        }
    }

    @Test func namingOnePackageOfAnExtraKeepsTheRestOfIt() throws {
        for (asked, kept) in [("iproute2", ["cloud-init", "cloud-guest-utils"]), ("cloud-init", ["cloud-guest-utils", "iproute2"])] {
            let bp = try Blueprint.parse(toml: "name = \"t\"\n[[packages]]\nname = \"\(asked)\"\nversion = \"*\"\n")
            let r = try ImageRequest.make(blueprint: bp, distro: "debian-13", architecture: "x86_64", imageType: "qcow2")
            let s = ManifestGenerator.packageSelection(r, try ImageDefinition(distro: r.distro, architecture: r.architecture, imageType: .qcow2))
            #expect(s.extras.first { $0.name == "cloud-init" }?.packages == kept, "asking for \(asked)")
            #expect(s.allNames.filter { $0 == asked }.count == 1)
        }
    }

    @Test(arguments: [2, 7, 40, 300])
    func aConflictingPairIsFoundInFewCalls(_ n: Int) async throws {
        let packages = (0..<n).map { "pkg\($0)" }
        let (a, b) = (packages[n / 3], packages[n - 1])
        let resolver = ConflictingResolver([(b, a)])
        let e = await #expect(throws: BlueprintError.self) {
            _ = try await selection(packages, extras: [Self.agent])
                .resolve(with: resolver, distro: .debian13, architecture: .x86_64, blueprint: try blueprint(packages))
        }
        let message = e.map { "\($0)" } ?? ""
        #expect(e?.keyPath == "packages[\(n - 1)]", "\(message)")
        #expect(message.contains("packages \"\(a)\" (packages[\(n / 3)]) and \"\(b)\" (packages[\(n - 1)]) cannot be installed together in debian-13 (trixie)"), "\(message)")
        #expect(message.contains("(apt: \(b) : Conflicts: \(a) but 1.0-1 is to be installed)"), "\(message)")
        #expect(!message.contains("held broken"))
        let bound = 2 * Int(ceil(log2(Double(max(n, 2))))) + 6
        #expect(resolver.calls <= bound, "\(resolver.calls) apt calls for \(n) packages (bound \(bound))")
    }

    @Test func aPackageAgainstWhatTheImageNeedsNamesThatPackage() async throws {
        let resolver = ConflictingResolver([("sysvinit-core", "systemd-sysv")])
        let e = await #expect(throws: BlueprintError.self) {
            _ = try await selection(["tmux", "sysvinit-core"], extras: [])
                .resolve(with: resolver, distro: .debian12, architecture: .x86_64, blueprint: try blueprint(["tmux", "sysvinit-core"]))
        }
        #expect(e?.keyPath == "packages[1]")
        #expect(e.map { "\($0)" }?.contains("package \"sysvinit-core\" cannot be installed in debian-12 (bookworm) beside systemd-sysv") == true)
    }

    @Test func threePackagesThatOnlyFailTogetherAreStillNamed() async throws {
        // A resolver where a, b, c fit in any pair but not all three.
        final class Triple: PackageResolver, @unchecked Sendable {
            func resolve(_ names: [String], distro: Distro, architecture: Architecture) async throws -> [ResolvedPackage] {
                if Set(["a1", "b1", "c1"]).isSubset(of: names) {
                    throw DepsolveError.unsatisfiable(names: names, distro: distro.name, reason: "The following packages have unmet dependencies:\n c1 : Breaks: x\n")
                }
                return []
            }
        }
        let e = await #expect(throws: BlueprintError.self) {
            _ = try await selection(["a1", "b1", "c1"], extras: [])
                .resolve(with: Triple(), distro: .debian12, architecture: .x86_64, blueprint: try blueprint(["a1", "b1", "c1"]))
        }
        #expect(e?.keyPath == "packages[2]")
        #expect(e.map { "\($0)" }?.contains("beside the blueprint's packages before it (a1, b1)") == true, "\(String(describing: e))")
    }
}
