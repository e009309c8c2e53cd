import Foundation
import KilnTestSupport
import Testing

@testable import Stages

/// Issue 15, sandboxed stages: a maintainer script is hostile code running as
/// root. Before the sandbox, `chroot` ran it with the host's `/proc`, `/dev`
/// and network in the tree, so `/proc/1/root` led straight back to the host's
/// root (the scheduler's keys, the store's other trees). These tests run such
/// scripts the two ways Kiln starts them — the tree's own program in the tree
/// (`dpkg --configure`, `locale-gen`), and the host's `dpkg --root --unpack`,
/// which runs each preinst chrooted into the tree — and check from inside
/// what the script could reach.
@Suite(.serialized) struct SandboxTests {
    /// A secret on the host, outside the tree, as the scheduler's key is.
    static let secret = "KILN-SANDBOX-SECRET-\(UUID().uuidString)"

    /// What the hostile script records into the tree: each line is what it
    /// saw, so that the test can say what leaked.
    static func probe(secretPath: String) -> String {
        """
        #!/bin/sh
        out=/probe
        : > $out
        for p in /proc/1/root /proc/self/root /proc/[0-9]*/root; do
          cat "$p\(secretPath)" >> $out 2>/dev/null && echo "leak via $p" >> $out
        done
        cat "\(secretPath)" >> $out 2>/dev/null && echo "leak via path" >> $out
        echo "pids $(ls -d /proc/[0-9]* | wc -l)" >> $out
        echo "netdevs $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')" >> $out
        echo "hostname $(cat /proc/sys/kernel/hostname)" >> $out
        echo "capeff $(grep CapEff /proc/self/status | cut -f2)" >> $out
        mkdir -p /mnt-probe
        mount -t tmpfs probe /mnt-probe 2>/dev/null && echo "mounted" >> $out
        [ -e /dev/vda ] || [ -e /dev/sda ] || [ -e /dev/loop0 ] && echo "host disks" >> $out
        echo "env $(env | grep -c KILN_SANDBOX_TEST)" >> $out
        exit 0
        """
    }

    /// A tree with a shell and the few programs the probe uses, copied from
    /// the host with the libraries they load, and an empty dpkg database.
    static func miniTree(at tree: String) async throws {
        let fm = FileManager.default
        for d in [
            "usr/bin", "usr/lib", "usr/lib64", "etc", "tmp", "var/lib/dpkg/info", "var/lib/dpkg/updates",
            "var/lib/dpkg/triggers", "var/log",
        ] {
            try fm.createDirectory(atPath: "\(tree)/\(d)", withIntermediateDirectories: true)
        }
        for (link, target) in ["bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/bin"] {
            try fm.createSymbolicLink(atPath: "\(tree)/\(link)", withDestinationPath: target)
        }
        for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] { _ = fm.createFile(atPath: "\(tree)/\(f)", contents: Data()) }
        let programs = ["dash", "cat", "ls", "wc", "tail", "cut", "tr", "grep", "mkdir", "mount", "env", "rm", "true"]
        var libraries: Set<String> = []
        for p in programs {
            let path = "/usr/bin/" + p
            try await TreeFixture.run(["cp", path, tree + path])
            let ldd = try await TreeFixture.run(["ldd", path])
            for word in ldd.split(whereSeparator: \.isWhitespace) where word.hasPrefix("/") { libraries.insert(String(word)) }
        }
        for lib in libraries {
            let real = URL(fileURLWithPath: lib).resolvingSymlinksInPath().path
            let dest = tree + (lib.hasPrefix("/lib") ? "/usr" + lib : lib)
            try fm.createDirectory(atPath: (dest as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try await TreeFixture.run(["cp", real, dest])
        }
        try fm.createSymbolicLink(atPath: tree + "/usr/bin/sh", withDestinationPath: "dash")
    }

    struct Setup {
        let fixture: TreeStageFixture
        let secretPath: String
        var sandbox: Sandbox { Sandbox(tree: fixture.tree, commands: fixture.context.commands) }
        func remove() {
            fixture.remove()
            try? FileManager.default.removeItem(atPath: (secretPath as NSString).deletingLastPathComponent)
        }
        var probe: [String] { (fixture.read("/probe") ?? "").split(separator: "\n").map(String.init) }
    }

    static func setUp() async throws -> Setup {
        let fixture = try TreeStageFixture(stageType: "sandbox")
        try await miniTree(at: fixture.tree)
        let dir = "/var/tmp/kiln-sandbox-secret-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        chmod(dir, 0o700)
        try secret.write(toFile: dir + "/server.key", atomically: true, encoding: .utf8)
        chmod(dir + "/server.key", 0o600)
        return Setup(fixture: fixture, secretPath: dir + "/server.key")
    }

    /// The probe's findings, checked: nothing of the host reached.
    func expectConfined(_ lines: [String], _ where_: String) throws {
        let text = lines.joined(separator: "\n")
        #expect(lines.count >= 5, "\(where_): the probe did not run: \(text)")
        #expect(!text.contains(Self.secret), "\(where_): the host's secret leaked: \(text)")
        #expect(!text.contains("leak via"), "\(where_): \(text)")
        #expect(!lines.contains("mounted"), "\(where_): the script could mount a file system")
        #expect(!lines.contains("host disks"), "\(where_): the host's disks are in /dev")
        #expect(lines.contains("netdevs lo "), "\(where_): network devices other than loopback: \(text)")
        #expect(lines.contains("hostname \(Sandbox.hostname)"), "\(where_): \(text)")
        #expect(lines.contains("env 0"), "\(where_): the caller's environment reached the script")
        let pids = try #require(lines.first { $0.hasPrefix("pids ") }.flatMap { Int($0.dropFirst(5)) })
        #expect(pids <= 8, "\(where_): the script sees \(pids) processes, not only its own")
        // CAP_SYS_ADMIN (bit 21), CAP_SYS_MODULE (16), CAP_SYS_RAWIO (17), CAP_MKNOD (27), CAP_DAC_READ_SEARCH (2) are gone.
        let capeff = try #require(lines.first { $0.hasPrefix("capeff ") }.flatMap { UInt64($0.dropFirst(7), radix: 16) })
        for bit in [2, 16, 17, 19, 21, 27] { #expect(capeff & (1 << UInt64(bit)) == 0, "\(where_): capability \(bit) kept") }
        #expect(capeff & 1 != 0, "\(where_): CAP_CHOWN (dpkg needs it) was dropped")
    }

    /// A tree program (what `dpkg --configure` runs) in the tree's own sandbox.
    @Test func treeProgramSeesOnlyItsTree() async throws {
        let s = try await Self.setUp()
        defer { s.remove() }
        try s.fixture.write("/probe.sh", Self.probe(secretPath: s.secretPath), mode: 0o755)
        setenv("KILN_SANDBOX_TEST", "1", 1)
        defer { unsetenv("KILN_SANDBOX_TEST") }
        try await s.sandbox.run(["/probe.sh"])
        try expectConfined(s.probe, "tree program")
        // Nothing stays mounted in the tree.
        let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!mounts.contains(s.fixture.tree), "mounts left in the tree")
    }

    /// A maintainer script that wants the network (a postinst that downloads
    /// firmware, say) fails in the sandbox, and the error names the program
    /// the user knows and what the sandbox withholds, not bwrap's options.
    @Test func aFailureInTheSandboxNamesTheProgramAndTheSandbox() async throws {
        let s = try await Self.setUp()
        defer { s.remove() }
        try s.fixture.write(
            "/postinst.sh", "#!/bin/sh\ngrep -v '^ *lo:' /proc/net/dev | grep -q ':' || { echo 'no network' >&2; exit 3; }\n",
            mode: 0o755)
        do {
            try await s.sandbox.run(["/postinst.sh", "configure"])
            Issue.record("a script without a network device succeeded")
        } catch {
            let text = "\(error)"
            #expect(text.hasPrefix("`/postinst.sh configure` (in the build's sandbox: no network"), "\(text)")
            #expect(text.contains("exited with status 3") && text.contains("no network"), "\(text)")
            let head = text.components(separatedBy: "; last output:").first ?? text
            #expect(!head.contains("--unshare"), "bwrap's options name the failure: \(head)")
        }
    }

    /// The attack through dpkg itself: a package whose preinst, run by the
    /// host's `dpkg --root --unpack` chrooted into the tree, hunts for the
    /// host's secret.
    @Test func hostilePreinstCannotLeaveTheTree() async throws {
        let s = try await Self.setUp()
        defer { s.remove() }
        let pkg = s.fixture.root + "/pkg"
        try FileManager.default.createDirectory(atPath: pkg + "/DEBIAN", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: pkg + "/usr/share/hostile", withIntermediateDirectories: true)
        try "x\n".write(toFile: pkg + "/usr/share/hostile/file", atomically: true, encoding: .utf8)
        try "Package: hostile\nVersion: 1\nArchitecture: all\nMaintainer: test <t@example.org>\nDescription: hostile preinst\n"
            .write(toFile: pkg + "/DEBIAN/control", atomically: true, encoding: .utf8)
        try Self.probe(secretPath: s.secretPath).write(toFile: pkg + "/DEBIAN/preinst", atomically: true, encoding: .utf8)
        chmod(pkg + "/DEBIAN/preinst", 0o755)
        let debs = s.fixture.root + "/debs"
        try FileManager.default.createDirectory(atPath: debs, withIntermediateDirectories: true)
        try await TreeFixture.run(["dpkg-deb", "--root-owner-group", "-b", pkg, debs + "/hostile.deb"])
        let tree = s.fixture.tree
        setenv("KILN_SANDBOX_TEST", "1", 1)
        defer { unsetenv("KILN_SANDBOX_TEST") }
        try await s.fixture.context.run(
            s.sandbox.hostCommandLine(
                [
                    "dpkg", "--root=\(tree)", "--log=\(tree)/var/log/dpkg.log", "--force-depends",
                    "--unpack", debs + "/hostile.deb",
                ], readOnly: [debs]))
        #expect(s.fixture.read("/usr/share/hostile/file") == "x\n", "dpkg did not unpack the package")
        try expectConfined(s.probe, "preinst under the host's dpkg")
    }
}
