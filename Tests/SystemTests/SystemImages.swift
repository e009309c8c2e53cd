import Foundation
import Images
import KilnTestSupport
import Logging
import Manifest
import Stages
import Testing

/// The tree store every system test of a run shares, so that a tree (one
/// distro, architecture and package set) is built once per run and every
/// later image that needs it starts from its checkpoint. `ops/test` names it
/// with `KILN_TEST_STORE` and removes it at the end; a plain `swift test`
/// gets a fresh one under /var/tmp named after its process, which the next
/// `ops/test` removes once that process is gone.
enum SystemStore {
    /// Made private (0700) before anything is put in it: the tree store
    /// refuses a root other users can enter.
    static let root: String = {
        var root = "/var/tmp/kiln-systemtests-\(getpid())"
        if let given = ProcessInfo.processInfo.environment["KILN_TEST_STORE"], !given.isEmpty { root = given }
        try? PrivateDirectory.prepare(root, what: "the system tests' store")
        return root
    }()
}

/// The key pair every system test logs in with (as root, over SSH): made
/// once per run in the run's store, so that builds of one blueprint in one
/// run share their trees.
enum SystemKey {
    static let path: String = {
        let dir = SystemStore.root + "/ssh"
        let key = dir + "/id_ed25519"
        if !FileManager.default.fileExists(atPath: key) {
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            _ = try? runBlocking(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kiln-system-tests", "-f", key])
        }
        return key
    }()

    static var publicKey: String {
        ((try? String(contentsOfFile: path + ".pub", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `blueprint` with the tests' key for root.
    static func adding(to blueprint: Blueprint) -> Blueprint {
        var bp = blueprint
        bp.customizations.sshKeys.append(.init(user: "root", key: publicKey))
        return bp
    }
}

/// What the image-building suites share: builds into the run's store, the
/// system-test blueprint, boots under qemu and checks on the results. The two
/// suites that conform (`X86ImageTests`, `AArch64ImageTests`) are serialized
/// each, and run beside each other: an emulated aarch64 tree build takes
/// little more than one core, and an x86_64 build or boot uses the other.
protocol SystemImages {}

extension SystemImages {
    static var repository: String { BuiltProducts.repository }
    static var storeRoot: String { SystemStore.root }

    func executor() throws -> Executor {
        let logger = Logger(label: "systemtests")
        return Executor(store: try TreeStore(root: Self.storeRoot), sources: try SourceCache(logger: logger),
                        logger: logger, logDirectory: Self.storeRoot + "/logs")
    }

    func request(type: String, hostname: String? = nil, arch: String = "x86_64", distro: String = "debian-12") throws -> ImageRequest {
        var bp = SystemKey.adding(to: try Blueprint.load(path: Self.repository + "/Tests/SystemTests/Fixtures/system.toml"))
        if let hostname { bp.customizations.hostname = hostname }
        return try ImageRequest.make(blueprint: bp, distro: distro, architecture: arch, imageType: type)
    }

    /// Builds `type` from the system-test blueprint and returns the image file and the `os` tree.
    func build(_ type: ImageType, arch: String = "x86_64") async throws -> (image: String, tree: String) {
        let manifest = try await ManifestGenerator(resolver: Depsolver()).manifest(for: request(type: type.rawValue, arch: arch))
        let result = try await executor().run(manifest, exports: ["os", type.exportPipeline])
        let image = try #require(result.exports[type.exportPipeline]) + "/" + type.outputFile
        #expect(FileManager.default.fileExists(atPath: image), "\(type) \(arch): no \(type.outputFile)")
        return (image, try #require(result.exports["os"]))
    }

    /// Boots the image with ops/boot-test until its login prompt, logs in as
    /// root with the tests' key and checks that the system is `running` with
    /// no failed unit; returns the status and output. With `expect`, the
    /// console must also show that text; `extra` goes to ops/boot-test as is.
    func bootTest(_ image: String, firmware: String, arch: String = "x86_64", expect: String? = nil,
                  extra: [String] = [], environment: [String: String] = [:]) async throws -> (Int32, String) {
        // Generous timeouts: a boot under TCG slows down a lot when the machine is busy.
        let timeout = arch == "x86_64" ? "600" : "900"
        let argv = [image, "--arch", arch, "--firmware", firmware, "--timeout", timeout, "--ssh-key", SystemKey.path, "--check-running"]
            + (expect.map { ["--expect", $0] } ?? []) + extra
        let first = try await runChild(Self.repository + "/ops/boot-test", argv, environment: environment, mergeErrors: true)
        if first.status == 0 { return (0, first.output) }
        // One more try: TCG occasionally crashes a guest kernel while it patches its own code
        // ("Oops: int3"); the retry is announced and the first attempt's console is kept.
        print("boot-test \(image) (\(arch), \(firmware)): RETRY: the first boot failed; its console ends:\n\(first.output.suffix(3000))")
        let second = try await runChild(Self.repository + "/ops/boot-test", argv, environment: environment, mergeErrors: true)
        print("boot-test \(image) (\(arch), \(firmware)): the second boot \(second.status == 0 ? "passed" : "failed too")")
        return (second.status, "first attempt:\n\(first.output)\nsecond attempt:\n\(second.output)")
    }

    func boots(_ image: String, firmware: String, arch: String = "x86_64") async throws {
        let (status, output) = try await bootTest(image, firmware: firmware, arch: arch)
        #expect(status == 0, "boot-test \(image) (\(firmware)) failed:\n\(output)")
    }

    func read(_ tree: String, _ path: String) -> String {
        (try? String(contentsOfFile: tree + path, encoding: .utf8)) ?? ""
    }

    func run(_ argv: [String]) async throws -> String {
        let r = try await runChild("/usr/bin/env", argv)
        #expect(r.status == 0, "\(argv.joined(separator: " ")) failed: \(r.errors.suffix(2000))")
        return r.output
    }

    func qemuInfo(_ image: String, format: String? = nil) async throws -> [String: Any] {
        let json = try await run(["qemu-img", "info", "--output=json"] + (format.map { ["-f", $0] } ?? []) + [image])
        return try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    }

    func size(_ path: String) throws -> Int64 {
        ((try FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber)?.int64Value ?? -1
    }

    /// The cloud-init data sources the tree was given, nil without cloud-init.
    func dataSources(_ tree: String) -> String? {
        let cfg = tree + "/etc/cloud/cloud.cfg.d/91-kiln-datasources.cfg"
        guard FileManager.default.fileExists(atPath: tree + "/usr/bin/cloud-init") else { return nil }
        return read(cfg, "")
    }

    /// skopeo reads the archive and copies it (verifying every blob's digest);
    /// the config names the architecture; optionally the layer is unpacked and a shell runs in it.
    func container(arch: String, runLayer: Bool) async throws {
        let (archive, _) = try await build(.container, arch: arch)
        let config = try await run(["skopeo", "inspect", "--config", "oci-archive:" + archive])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(config.utf8)) as? [String: Any])
        #expect(json["architecture"] as? String == Architecture(name: arch)!.debian)
        #expect(json["os"] as? String == "linux")
        let copy = "\(Self.storeRoot)/oci-copy-\(arch)"
        try? FileManager.default.removeItem(atPath: copy)
        _ = try await run(["skopeo", "copy", "--quiet", "oci-archive:" + archive, "dir:" + copy])
        guard runLayer else { return }
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: copy + "/manifest.json"))) as? [String: Any])
        let layer = try #require(((manifest["layers"] as? [[String: Any]])?.first?["digest"] as? String)?.split(separator: ":").last)
        let root = "\(Self.storeRoot)/oci-root"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        _ = try await run(["tar", "-xzf", "\(copy)/\(layer)", "-C", root])
        #expect(try await run(["chroot", root, "/bin/bash", "-c", "cat /etc/hostname; test ! -e /boot/vmlinuz && echo no-kernel"])
                == "kiln-test\nno-kernel\n")
    }
}
