import Foundation
import KilnTestSupport
import Manifest
import Protocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 15's attacks, re-run against real `kiln scheduler` and `kiln agent`
/// processes on loopback: poisoned trees, stolen agent ids, captured jobs,
/// log floods and a full disk under the scheduler's state.
@Suite(.serialized, .tags(.farm), .tier(.quick, .farm))
struct TrustTests {
    func submit(_ c: SchedulerClient, hostname: String, label: String? = nil) async throws -> Kiln_V1_SubmitReply {
        try await c.submit(manifestJSON: FarmHarness.manifest(hostname: hostname), exports: ["archive"], arch: "x86_64",
                           label: label ?? "trust \(hostname)")
    }

    func fetchedHostname(_ farm: FarmHarness, _ c: SchedulerClient, _ build: String) async throws -> String {
        let out = "\(farm.dir)/fetched-\(build).tar"
        try await c.fetch(build, artifact: "tree.tar", to: out)
        return try await runChild("/bin/tar", ["-xOf", out, "./etc/hostname"]).output
    }

    /// The error a request ends with (nil: it succeeded).
    func refusal(_ body: () async throws -> Void) async -> String? {
        do {
            try await body()
            return nil
        } catch {
            return "\(error)"
        }
    }

    // MARK: - Finding 12

    @Test("on a full disk a cancel fails with the reason, the scheduler takes no more work, and after a restart the build is as the client was told",
          .enabled(if: getuid() == 0, "mounts a small tmpfs (root)"))
    func fullDisk() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let state = "\(farm.dir)/scheduler"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let mount = try await runChild("/bin/mount", ["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", state], mergeErrors: true)
        try #require(mount.status == 0, "\(mount.output)")
        defer { _ = try? runBlocking(["umount", "-l", state]) }
        try await farm.startScheduler()
        var c = try await farm.client()
        let build = try await submit(c, hostname: "farm-full").buildID  // no agent: it stays queued
        _ = try await runChild("/bin/dd", ["if=/dev/zero", "of=\(state)/filler", "bs=64k"], mergeErrors: true)

        let cancel = await refusal { _ = try await c.cancel(build) }
        #expect(cancel?.contains("cannot write its database") == true, "\(cancel ?? "the cancel was reported done")")
        #expect(try await c.status(build).first?.state == .queued, "status shows what is committed")
        let submitted = await refusal { _ = try await submit(c, hostname: "farm-full-2") }
        #expect(submitted?.contains("takes no more work") == true, "\(submitted ?? "accepted")")
        #expect(farm.log("scheduler").contains("scheduler database is read-only"))

        // Space returns; the scheduler stays read-only until it restarts.
        try FileManager.default.removeItem(atPath: "\(state)/filler")
        let again = await refusal { _ = try await c.cancel(build) }
        #expect(again?.contains("cannot write its database") == true, "\(again ?? "accepted")")
        await c.close()
        await farm.killScheduler()
        try await farm.startScheduler()
        c = try await farm.client()
        #expect(try await c.status(build).first?.state == .queued, "the client was told the cancel failed")
        #expect(try await c.status().count == 1, "the refused submit left nothing")
        #expect(try await c.cancel(build) == .cancelled)
        await c.close()
        await farm.killScheduler()
        try await farm.startScheduler()
        c = try await farm.client()
        #expect(try await c.status(build).first?.state == .cancelled, "a cancel the client was told of stays done")
        await c.close()
    }
}
