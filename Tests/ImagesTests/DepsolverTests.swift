import Foundation
import Manifest
import KilnTestSupport
import Testing
@testable import Images

@Suite struct AptOutputTests {
    @Test func printURIsLinesBecomePinnedPackages() throws {
        let out = """
        Reading package lists...
        'http://deb.debian.org/debian/pool/main/o/openssh/openssh-server_9.2p1-2%2bdeb12u10_amd64.deb' openssh-server_1%3a9.2p1-2+deb12u10_amd64.deb 456584 SHA256:fdac7995f69e1059650de944b569a1028beb17dfa1cba5e8eb2779339f6a4785
        'http://deb.debian.org/debian/pool/main/a/adduser/adduser_3.134_all.deb' adduser_3.134_all.deb 1000 SHA256:BA4F88F73DBC3AE9055F3C20F4523BFDBAF1AD13FF95E258924F77D20B4FBEDF
        """
        let p = try Depsolver.parsePrintURIs(out)
        #expect(p.map(\.name) == ["adduser", "openssh-server"])
        #expect(p[1].version == "1:9.2p1-2+deb12u10")
        #expect(p[1].architecture == "amd64")
        #expect(p[1].size == 456_584)
        #expect(p[1].url.hasSuffix("openssh-server_9.2p1-2%2bdeb12u10_amd64.deb"))
        #expect(p[0].architecture == "all")
        #expect(p[0].sha256 == "ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf")
    }

    @Test func malformedLineIsReported() {
        #expect(throws: DepsolveError.self) { try Depsolver.parsePrintURIs("'http://x/a.deb' a.deb 12 MD5Sum:abc") }
    }

    @Test func namesThatAptWouldReadAsPatternsAreRefused() async {
        let d = Depsolver(cacheRoot: "/nonexistent-kiln-cache")
        for bad in ["?essential", "foo=", "foo=1 .0", "foo=$(x)", "foo-", "Foo", "a"] {
            await #expect(throws: DepsolveError.invalidPackageName(name: bad)) {
                _ = try await d.resolve([bad], distro: .debian12, architecture: .x86_64)
            }
        }
    }

    @Test func aptConfigurationKeepsEverythingPrivate() {
        let apt = AptConfiguration(distro: .debian12, architecture: .aarch64, cacheRoot: "/var/cache/kiln/repos")
        #expect(apt.root == "/var/cache/kiln/repos/debian-12-aarch64")
        for line in apt.aptConf.split(separator: "\n") where line.hasPrefix("Dir") {
            #expect(line.contains(apt.root), "\(line)")
        }
        #expect(apt.aptConf.contains("APT::Architectures { \"arm64\"; };"))
        #expect(apt.sources.contains("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"))
        #expect(apt.sources.contains("Suites: bookworm-security"))
    }
}

/// The real depsolve against deb.debian.org. Needs the network; set
/// KILN_OFFLINE=1 to skip.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["KILN_OFFLINE"] == nil))
struct DepsolveNetworkTests {
    static func mtime(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }

    @Test(arguments: [Architecture.x86_64, .aarch64])
    func resolvesAClosedSetFromTheMirror(_ arch: Architecture) async throws {
        let hostLists = Self.mtime("/var/lib/apt/lists")
        let depsolver = Depsolver()
        let clock = ContinuousClock()
        let started = clock.now
        let first = try await depsolver.resolve(["openssh-server", "systemd-sysv"], distro: .debian12, architecture: arch)
        let cold = clock.now - started
        let names = Set(first.map(\.name))
        for required in ["libc6", "systemd", "openssh-server", "apt", "dpkg", "base-files"] {
            #expect(names.contains(required), "\(required) missing")
        }
        #expect(first.map(\.name) == first.map(\.name).sorted())
        for p in first {
            #expect(p.sha256.count == 64 && p.sha256.allSatisfy { $0.isHexDigit && !$0.isUppercase })
            #expect(p.url.hasPrefix("http://deb.debian.org/debian/pool/") || p.url.hasPrefix("http://deb.debian.org/debian-security/pool/"))
            #expect(p.size > 0)
            #expect(p.architecture == arch.debian || p.architecture == "all")
        }
        let stamp = "/var/cache/kiln/repos/debian-12-\(arch.rawValue)/updated"
        let updated = Self.mtime(stamp)
        let warmStart = clock.now
        let second = try await depsolver.resolve(["openssh-server", "systemd-sysv"], distro: .debian12, architecture: arch)
        let warm = clock.now - warmStart
        #expect(second == first)
        print("depsolve \(arch.rawValue): \(first.count) packages, cold \(cold), warm \(warm)")
        // Speed is measured in ops/bench, not here: a warm depsolve must simply not update the index again.
        #expect(updated != nil && Self.mtime(stamp) == updated, "a warm depsolve must not download the index again")
        #expect(Self.mtime("/var/lib/apt/lists") == hostLists, "the host's apt lists were touched")
    }

    @Test func unknownPackageIsNamed() async throws {
        await #expect(throws: DepsolveError.unknownPackage(name: "no-such-package-kiln", distro: "debian-12")) {
            _ = try await Depsolver().resolve(["no-such-package-kiln"], distro: .debian12, architecture: .x86_64)
        }
    }

    @Test func conflictsGiveAptsReason() async throws {
        let e = await #expect(throws: DepsolveError.self) {
            _ = try await Depsolver().resolve(["systemd-sysv", "sysvinit-core"], distro: .debian12, architecture: .x86_64)
        }
        guard case .unsatisfiable(_, _, let reason)? = e else { Issue.record("\(String(describing: e))"); return }
        #expect(reason.contains("Conflicts"))
    }

    /// The talk's demo on trixie: cloud-init (an extra of qcow2) conflicts with the
    /// blueprint's firewalld, so it is left out with a note naming both; bookworm keeps it.
    @Test func blueprintPackagesBeatTheImageTypesExtras() async throws {
        let bp = try Blueprint.load(path: Fixtures.repository.appendingPathComponent("examples/blueprints/demo.toml").path)
        let trixie = try await ManifestGenerator(resolver: Depsolver()).generate(
            for: try ImageRequest.make(blueprint: bp, distro: "debian-13", architecture: "x86_64", imageType: "qcow2"))
        #expect(trixie.dropped.map(\.extra.name) == ["cloud-init"])
        #expect(trixie.dropped.first?.conflictsWith == ["firewalld"])
        let note = try #require(trixie.notes.first)
        #expect(note.hasPrefix("cloud-init left out: the qcow2 image type adds it for "), "\(note)")
        #expect(note.contains("cloud-init : Conflicts: firewalld"), "\(note)")
        #expect(!note.contains("held broken packages"))
        let os = try #require(trixie.manifest.pipeline(named: "os"))
        #expect(!os.stages.contains { $0.type == "org.osbuild.cloud-init" }, "no cloud-init configuration without cloud-init")
        #expect(os.stages.contains { $0.type == "org.kiln.ssh.hostkeys" }, "openssh-server is still there")

        let bookworm = try await ManifestGenerator(resolver: Depsolver()).generate(
            for: try ImageRequest.make(blueprint: bp, distro: "debian-12", architecture: "x86_64", imageType: "qcow2"))
        #expect(bookworm.notes.isEmpty, "\(bookworm.notes)")
        #expect(bookworm.manifest.pipeline(named: "os")?.stages.contains { $0.type == "org.osbuild.cloud-init" } == true)
    }

    /// Two blueprint packages that conflict: exit 2 territory, both named with their keys, the release and a way out.
    @Test func conflictingBlueprintPackagesAreNamed() async throws {
        let text = "name = \"mail\"\n[[packages]]\nname = \"tmux\"\n[[packages]]\nname = \"postfix\"\n[[packages]]\nname = \"exim4-daemon-light\"\n"
        let bp = try Blueprint.parse(toml: text, file: "mail.toml")
        let e = await #expect(throws: BlueprintError.self) {
            _ = try await ManifestGenerator(resolver: Depsolver()).generate(
                for: try ImageRequest.make(blueprint: bp, distro: "debian-13", architecture: "x86_64", imageType: "qcow2"))
        }
        let message = e.map { "\($0)" } ?? ""
        #expect(e?.keyPath == "packages[2]", "\(message)")
        #expect(message.contains("\"postfix\" (packages[1]) and \"exim4-daemon-light\" (packages[2])"), "\(message)")
        #expect(message.contains("debian-13 (trixie)") && message.contains("keep one of them"), "\(message)")
        #expect(!message.contains("held broken packages"), "\(message)")

        // Against what every image has: the image's package is named, and the fix is to drop the blueprint's.
        let sysv = try Blueprint.parse(toml: "name = \"sysv\"\n[[packages]]\nname = \"sysvinit-core\"\n", file: "sysv.toml")
        let e2 = await #expect(throws: BlueprintError.self) {
            _ = try await ManifestGenerator(resolver: Depsolver()).generate(
                for: try ImageRequest.make(blueprint: sysv, distro: "debian-12", architecture: "x86_64", imageType: "raw"))
        }
        #expect(e2?.keyPath == "packages[0]")
        #expect(e2.map { "\($0)" }?.contains("beside systemd-sysv") == true, "\(String(describing: e2))")
        #expect(e2.map { "\($0)" }?.contains("remove \"sysvinit-core\" from the blueprint") == true)

        // An unknown package is named at its key too.
        let typo = try Blueprint.parse(toml: "name = \"t\"\n[[packages]]\nname = \"tmux\"\n[[packages]]\nname = \"no-such-package-kiln\"\n", file: "t.toml")
        let e3 = await #expect(throws: BlueprintError.self) {
            _ = try await ManifestGenerator(resolver: Depsolver()).generate(
                for: try ImageRequest.make(blueprint: typo, distro: "debian-12", architecture: "x86_64", imageType: "tar"))
        }
        #expect(e3?.keyPath == "packages[1]")
    }

    /// `name=GLOB` picks the newest version the glob matches; a glob nothing matches lists what there is.
    @Test func versionGlobsPickTheNewestMatch() async throws {
        let all = try await Depsolver().resolve(["less"], distro: .debian12, architecture: .x86_64)
        let newest = try #require(all.first { $0.name == "less" }).version
        let glob = String(newest.prefix(3)) + "*"
        let pinned = try await Depsolver().resolve(["less=\(glob)"], distro: .debian12, architecture: .x86_64)
        #expect(pinned.first { $0.name == "less" }?.version == newest)
        let e = await #expect(throws: DepsolveError.self) {
            _ = try await Depsolver().resolve(["less=1*"], distro: .debian12, architecture: .x86_64)
        }
        guard case .noMatchingVersion(let name, let g, let available, _)? = e else { Issue.record("\(String(describing: e))"); return }
        #expect(name == "less" && g == "1*" && available.contains(newest))
    }

    /// A blueprint's extra repository (here Debian's backports, with the archive keys as its own key)
    /// takes part in the depsolve: a version only backports has is found there.
    @Test func extraRepositoryTakesPartInTheDepsolve() async throws {
        let key = try await runChild("/usr/bin/gpg", ["--no-default-keyring", "--keyring", "/usr/share/keyrings/debian-archive-keyring.gpg",
                                                       "--export", "--armor", "B7C5D7D6350947F8"])
        #expect(key.output.hasPrefix("-----BEGIN PGP PUBLIC KEY BLOCK-----"))
        var distro = Distro.debian12
        distro.extraSources = [Distro.ExtraSource(id: "backports", uris: ["http://deb.debian.org/debian"], suites: ["bookworm-backports"],
                                                  components: ["main"], key: key.output, trusted: false, priority: 100)]
        let plain = try await Depsolver().resolve(["tmux"], distro: distro, architecture: .x86_64)
        #expect(plain.first { $0.name == "tmux" }?.version.contains("bpo") == false, "priority 100 keeps the release's version")
        let bpo = try await Depsolver().resolve(["tmux=*bpo*"], distro: distro, architecture: .x86_64)
        let tmux = try #require(bpo.first { $0.name == "tmux" })
        #expect(tmux.version.contains("~bpo12"), "\(tmux.version)")
        await #expect(throws: DepsolveError.self) {
            _ = try await Depsolver().resolve(["tmux=*bpo*"], distro: .debian12, architecture: .x86_64)
        }
    }

    @Test func fullImageDepsolve() async throws {
        let bp = try Blueprint.load(path: Fixtures.repository.appendingPathComponent("examples/blueprints/base.toml").path)
        let r = try ImageRequest.make(blueprint: bp, distro: "debian-12", architecture: "x86_64", imageType: "qcow2")
        let m = try await ManifestGenerator(resolver: Depsolver()).manifest(for: r)
        let refs = m.pipeline(named: "os")?.stages.first?.inputs["packages"]?.references ?? []
        #expect(refs.count > 100)
        #expect(m.sources["org.osbuild.curl"]?.items.count == refs.count)
    }
}
