import Foundation
import Manifest
import Testing
@testable import Images

/// The distro table: names, repositories, base groups and base packages per release.
@Suite struct DistroTests {
    @Test func namesAndAliasesFindEachRelease() throws {
        #expect(try Distro.named("debian-12") == .debian12)
        #expect(try Distro.named("bookworm") == .debian12)
        #expect(try Distro.named("debian-13") == .debian13)
        #expect(try Distro.named("Trixie") == .debian13)
        #expect(Distro.debian13.codename == "trixie")
        #expect(Distro.debian13.architectures == [.x86_64, .aarch64])
        let e = #expect(throws: DefinitionError.self) { try Distro.named("debian-14") }
        #expect(e == .unknownDistro(name: "debian-14", known: ["debian-12", "bookworm", "debian-13", "trixie"]))
    }

    @Test func trixieRepositoriesAreItsOwnSuites() {
        let repos = Distro.debian13.repositories
        #expect(repos.map(\.suites) == [["trixie", "trixie-updates"], ["trixie-security"]])
        #expect(repos.map(\.uri) == ["http://deb.debian.org/debian", "http://deb.debian.org/debian-security"])
        #expect(repos.allSatisfy { $0.signedBy == "/usr/share/keyrings/debian-archive-keyring.gpg" && $0.components == ["main"] })
    }

    /// Checked against /etc/group of real trees: trixie's udev adds `clock` through sysusers.
    @Test func baseGroupsDifferWhereTheReleasesDo() {
        #expect(Distro.debian13.baseGroups["clock"] != nil)
        #expect(Distro.debian12.baseGroups["clock"] == nil)
        for distro in [Distro.debian12, .debian13] {
            #expect(distro.baseGroups["sudo"] == 27)
            #expect(distro.baseGroups["users"] == 100)
            #expect(distro.baseGroups["kvm"] == .some(nil), "kvm exists with a dynamic gid")
        }
        #expect(Set(Distro.debian13.baseGroups.keys).subtracting(Distro.debian12.baseGroups.keys) == ["clock"])
    }

    /// `usr-is-merged` only where the release asks for it (bookworm's `usrmerge | usr-is-merged`).
    @Test(arguments: [Architecture.x86_64, .aarch64])
    func basePackagesPerRelease(_ arch: Architecture) throws {
        let bookworm = try ImageDefinition(distro: .debian12, architecture: arch, imageType: .raw).basePackages
        let trixie = try ImageDefinition(distro: .debian13, architecture: arch, imageType: .raw).basePackages
        #expect(bookworm.contains("usr-is-merged"))
        #expect(!trixie.contains("usr-is-merged"))
        #expect(Set(bookworm).subtracting(trixie) == ["usr-is-merged"])
        #expect(trixie.contains("linux-image-\(arch.debian)"))
    }

    @Test func trixieManifestInstallsTrixie() async throws {
        let bp = try Blueprint.parse(toml: "name = \"t\"\n[[customizations.user]]\nname = \"a\"\ngroups = [\"clock\", \"sudo\"]\n")
        let r = try ImageRequest.make(blueprint: bp, distro: "trixie", architecture: "aarch64", imageType: "raw")
        #expect(r.distro == .debian13)
        let m = try await ManifestGenerator(resolver: FixedPackages()).manifest(for: r)
        let os = try #require(m.pipeline(named: "os"))
        let install = try #require(os.stages.first { $0.type == "org.kiln.debian.install" })
        #expect(install.options["release"] == "trixie")
        #expect(install.options["architecture"] == "arm64")
        let sources = os.stages.first { $0.type == "org.kiln.apt.sources" }?.options["sources"]?.arrayValue
        #expect(sources?.first?["suites"] == ["trixie", "trixie-updates"])
        #expect(sources?.last?["suites"] == ["trixie-security"])
    }

    @Test func clockIsNoBookwormGroup() async throws {
        let bp = try Blueprint.parse(toml: "name = \"t\"\n[[customizations.user]]\nname = \"a\"\ngroups = [\"clock\"]\n", file: "bp.toml")
        let r = try ImageRequest.make(blueprint: bp, distro: "debian-12", architecture: "x86_64", imageType: "raw")
        let e = await #expect(throws: BlueprintError.self) { _ = try await ManifestGenerator(resolver: FixedPackages()).manifest(for: r) }
        #expect(e?.description.contains("group \"clock\" does not exist in debian-12") == true)
    }
}
