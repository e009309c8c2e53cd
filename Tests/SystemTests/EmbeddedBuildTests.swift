import Foundation
import KilnTestSupport
import Testing

/// `kiln build` without `--scheduler`: an embedded scheduler and local
/// agents in one process, the farm's code path, into the run's store (the
/// system-test blueprint with a hostname of its own: the package checkpoint
/// the raw image left there is reused, the tree itself is new).
extension X86ImageTests {
    @Test("kiln build runs the tree on an in-process agent and assembles the image on the embedded scheduler",
          .tags(.farm), .tier(.quick, .farm))
    func embeddedBuild() async throws {
        let dir = "/var/tmp/kiln-embedded-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A hostname of its own, so that the tree is new in the shared store whatever ran before.
        let blueprint = "\(dir)/embedded.toml"
        let base = try String(contentsOfFile: Self.repository + "/Tests/SystemTests/Fixtures/system.toml", encoding: .utf8)
        #expect(base.contains("hostname = \"kiln-test\""))
        try base.replacingOccurrences(of: "hostname = \"kiln-test\"", with: "hostname = \"kiln-embedded-\(dir.suffix(8))\"")
            .write(toFile: blueprint, atomically: true, encoding: .utf8)
        func build(_ output: String) async throws -> (Int32, String) {
            // --store-cap 0: the other suite builds into the same store at the same time; nothing is pruned.
            // A deadline (timeout(1)): a build that hangs fails the test instead of the whole run.
            let r = try await runChild("/usr/bin/timeout", ["--kill-after=10", "1500", BuiltProducts.kiln,
                "build", blueprint, "--distro", "debian-12", "--arch", "x86_64",
                "--type", "raw", "-o", output, "--store", Self.storeRoot, "--store-cap", "0", "--logs", "\(dir)/logs"])
            return (r.status, r.errors)
        }
        func leftovers() -> Set<String> {
            Set((try? FileManager.default.contentsOfDirectory(atPath: "/var/lib/kiln/embedded")) ?? [])
        }
        let before = leftovers()
        let (status, log) = try await build("\(dir)/base.raw")
        #expect(status == 0, "\(log)")
        #expect(log.contains("on agent local-x86_64"), "the tree ran on the in-process agent: \(log)")
        #expect(log.contains("assembling image on the scheduler"), "\(log)")
        let size = try FileManager.default.attributesOfItem(atPath: "\(dir)/base.raw")[.size] as? UInt64 ?? 0
        #expect(size > 1 << 30)
        // Again: every tree is stored, nothing is dispatched.
        let (again, log2) = try await build("\(dir)/again.raw")
        #expect(again == 0, "\(log2)")
        #expect(!log2.contains("on agent"), "\(log2)")
        #expect(log2.contains("1 of 1 tree job(s) cached"), "\(log2)")
        #expect(leftovers().subtracting(before).isEmpty, "the embedded scheduler's state is removed")
    }
}
