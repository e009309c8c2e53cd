import Foundation
import KilnTestSupport
import Testing
@testable import Stages

/// `org.kiln.debian.install` with real dpkg in a real chroot.
///
/// The base system is Debian 12's Essential set (amd64) from
/// `/var/cache/kiln/test-debs/bookworm-amd64`; when that directory holds no
/// packages the test downloads the Essential set once from deb.debian.org
/// (the only network access, and only on a cold cache). The packages under
/// test are built here with `dpkg-deb --build`.
@Suite(.serialized)
struct DebianInstallTests {
    static let cache = "/var/cache/kiln/test-debs/bookworm-amd64"

    @Test func installsEssentialSetAndOwnPackages() async throws {
        let base = try await Self.essentialDebs()
        let work = NSTemporaryDirectory() + "kiln-debs-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: work) }
        let own = try Self.buildTestPackages(in: work)
        // The source cache names files by digest, without a `.deb` extension.
        var files: [String: String] = [:]
        for (i, path) in (base + own).enumerated() {
            let cached = "\(work)/cache/\(String(format: "%064x", i))"
            try FileManager.default.createDirectory(atPath: "\(work)/cache", withIntermediateDirectories: true)
            try FileManager.default.linkItem(atPath: path, toPath: cached)
            files["sha256:\(String(format: "%064x", i))"] = cached
        }
        let f = try TreeStageFixture(inputs: ["packages": .files(files)], stageType: DebianInstall.type)
        defer { f.remove() }

        try await DebianInstall().run(.init(architecture: "amd64", release: "bookworm"), in: f.context)

        // Our packages: files, dependency, postinst, conffile.
        #expect(f.read("/usr/share/kiln-test/lib.txt") == "library\n")
        #expect(f.read("/var/lib/kiln-test/postinst-ran") == "configure\n")
        #expect(f.read("/var/lib/kiln-test/preinst-saw") == "install ok installed\n", "preinst ran after its Pre-Depends were configured")
        let conffiles = try await f.context.output(["dpkg-query", "--admindir=\(f.tree)/var/lib/dpkg", "-W", "-f=${Conffiles}", "kiln-test-app"])
        #expect(conffiles.contains("/etc/kiln-test.conf \(Self.md5("setting=1\n"))"))
        // Every package installed, database clean.
        let status = try await f.context.output(["dpkg-query", "--admindir=\(f.tree)/var/lib/dpkg", "-W", "-f=${db:Status-Abbrev}${Package}\n"])
        let lines = status.split(separator: "\n")
        #expect(lines.count == base.count + own.count)
        #expect(lines.allSatisfy { $0.hasPrefix("ii ") }, "\(lines.filter { !$0.hasPrefix("ii ") })")
        let audit = try await f.context.output(["dpkg", "--root=\(f.tree)", "--audit"])
        #expect(audit.isEmpty)
        // Merged /usr, no build leftovers, and the tree runs its own shell.
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: f.tree + "/bin")) == "usr/bin")
        #expect(!TreeFiles.exists("/usr/sbin/policy-rc.d", in: f.tree))
        #expect(f.read("/var/lib/dpkg/diversions")?.contains("kiln") != true)
        let debs = try FileManager.default.contentsOfDirectory(atPath: f.tree + "/var/cache/apt/archives").filter { $0.hasSuffix(".deb") }
        #expect(debs.isEmpty)
        let echoed = try await Sandbox(tree: f.tree, commands: f.context.commands).output(["/bin/sh", "-c", "echo ok"])
        #expect(echoed == "ok\n")
        let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
        #expect(!mounts.contains(f.tree))
    }

    @Test func readsControlAndFileListInProcess() throws {
        let work = NSTemporaryDirectory() + "kiln-debs-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: work) }
        let app = try Self.buildTestPackages(in: work)[1]
        let p = try DebPackage.read(app)
        #expect(p.name == "kiln-test-app" && p.version == "1.0" && p.architecture == "all")
        #expect(p.preDepends == [["kiln-test-lib"]] && p.hasPreinst)
        #expect(p.controlMembers.isSuperset(of: ["control", "preinst", "postinst", "conffiles"]))
        let files = try DebPackage.listFiles(app)
        #expect(files.contains("/etc/kiln-test.conf") && files.contains("/usr/share/kiln-test/app.txt") && files.contains("/usr"))
        #expect(DebPackage.parseRelations("libc6 (>= 2.34), awk | mawk:any, debconf (>= 0.5) | debconf-2.0")
            == [["libc6"], ["awk", "mawk"], ["debconf", "debconf-2.0"]])
    }

    @Test func refusesForeignArchitecturePackage() async throws {
        let work = NSTemporaryDirectory() + "kiln-debs-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: work) }
        let deb = try Self.buildPackage(in: work, name: "kiln-arm", architecture: "arm64", files: ["usr/share/x": "x\n"])
        let f = try TreeStageFixture(inputs: ["packages": .files(["sha256:00": deb])], stageType: DebianInstall.type)
        defer { f.remove() }
        await #expect(throws: DebianInstallError.self) {
            try await DebianInstall().run(.init(architecture: "amd64", release: "bookworm"), in: f.context)
        }
    }

    // MARK: - Fixtures

    /// The Essential set (with dependencies) from the test cache, downloading it once if the cache is empty.
    static func essentialDebs() async throws -> [String] {
        var debs = ((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []).filter { $0.hasSuffix(".deb") }
        if debs.isEmpty {
            try await download()
            debs = try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".deb") }
        }
        let packages = try debs.map { try DebPackage.read("\(cache)/\($0)") }
        let set = try DebPackageSet(packages, architecture: "amd64")
        let closure = set.essentialClosure
        return set.packages.filter { closure.contains($0.name) }.map(\.path)
    }

    /// Downloads Debian 12's Essential set for amd64 with an isolated apt configuration.
    static func download() async throws {
        let apt = "/var/cache/kiln/test-debs/apt-amd64"
        let script = """
        set -e
        mkdir -p \(apt)/etc/apt/sources.list.d \(apt)/etc/apt/preferences.d \(apt)/var/lib/apt/lists/partial \(apt)/var/lib/dpkg \(cache)/partial
        touch \(apt)/var/lib/dpkg/status
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" > \(apt)/etc/apt/sources.list
        o="-o Dir=\(apt) -o Dir::State::status=\(apt)/var/lib/dpkg/status -o APT::Architecture=amd64 -o APT::Architectures=amd64 -o Debug::NoLocking=1 -o APT::Install-Recommends=false -o Dir::Cache::archives=\(cache)"
        apt-get $o update -qq
        apt-get $o install -y -qq --download-only '?essential' usr-is-merged
        """
        let r = try await runChild("/bin/bash", ["-c", script], mergeErrors: true)
        #expect(r.status == 0, "downloading the Essential set into \(cache) failed: \(r.output.suffix(2000))")
    }

    static func buildTestPackages(in dir: String) throws -> [String] {
        let lib = try buildPackage(in: dir, name: "kiln-test-lib", files: ["usr/share/kiln-test/lib.txt": "library\n"])
        let app = try buildPackage(
            in: dir, name: "kiln-test-app",
            control: "Pre-Depends: kiln-test-lib\nDepends: kiln-test-lib\n",
            files: ["etc/kiln-test.conf": "setting=1\n", "usr/share/kiln-test/app.txt": "app\n"],
            scripts: [
                "preinst": "#!/bin/sh\nset -e\nmkdir -p /var/lib/kiln-test\ndpkg-query -W -f='${Status}\\n' kiln-test-lib > /var/lib/kiln-test/preinst-saw\n",
                "postinst": "#!/bin/sh\nset -e\necho \"$1\" > /var/lib/kiln-test/postinst-ran\n",
                "conffiles": "/etc/kiln-test.conf\n",
            ])
        return [lib, app]
    }

    static func buildPackage(in dir: String, name: String, architecture: String = "all", control: String = "",
                             files: [String: String], scripts: [String: String] = [:]) throws -> String {
        let root = "\(dir)/\(name)"
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(root)/DEBIAN", withIntermediateDirectories: true)
        for (path, content) in files {
            try fm.createDirectory(atPath: (("\(root)/\(path)") as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try content.write(toFile: "\(root)/\(path)", atomically: true, encoding: .utf8)
        }
        let fields = "Package: \(name)\nVersion: 1.0\nArchitecture: \(architecture)\nMaintainer: Kiln <kiln@example.org>\n"
            + control + "Description: Kiln test package\n"
        try fields.write(toFile: "\(root)/DEBIAN/control", atomically: true, encoding: .utf8)
        for (script, content) in scripts {
            try content.write(toFile: "\(root)/DEBIAN/\(script)", atomically: true, encoding: .utf8)
            chmod("\(root)/DEBIAN/\(script)", script == "conffiles" ? 0o644 : 0o755)
        }
        let out = "\(dir)/\(name).deb"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/dpkg-deb")
        p.arguments = ["--root-owner-group", "--build", root, out]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw StageError.commandFailed(command: ["dpkg-deb", "--build", root], status: "failed", tail: "") }
        return out
    }

    static func md5(_ s: String) -> String {
        let p = Process()
        let pipe = Pipe()
        let input = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/md5sum")
        p.standardOutput = pipe
        p.standardInput = input
        try? p.run()
        input.fileHandleForWriting.write(Data(s.utf8))
        try? input.fileHandleForWriting.close()
        p.waitUntilExit()
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }
}
