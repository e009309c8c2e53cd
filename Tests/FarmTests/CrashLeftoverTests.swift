import Foundation
import KilnTestSupport
import Protocol
import Stages
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 15, finding 14: after a crash, what the dead process left (the
/// scheduler's half-received streams and half-built trees in its store's
/// `tmp/`, an agent's spooled streams) is removed when the daemon starts
/// again; and one state directory serves one agent at a time.
@Suite(.serialized, .tags(.farm), .tier(.quick, .farm))
struct CrashLeftoverTests {
    /// An owner token of a process that ran and is gone.
    func deadToken() throws -> String {
        try withKilledProcess { pid in
            ProcessOwner(pid: pid, started: try #require(ProcessOwner.startTime(of: pid))).token
        }
    }

    @Test("a restarted scheduler removes what a killed one left in its store's tmp/, and keeps what a live process owns")
    func schedulerSweepsItsStore() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        await farm.killScheduler()
        let tmp = "\(farm.dir)/scheduler/store/tmp"
        let fm = FileManager.default
        let dead = try deadToken()
        let stream = "\(tmp)/stream-\(dead)-0badc0de-attempt3.tar.zst"
        let tree = "\(tmp)/work-\(dead)-0badc0de"
        fm.createFile(atPath: stream, contents: Data(repeating: 7, count: 1 << 20))
        try fm.createDirectory(atPath: tree + "/etc", withIntermediateDirectories: true)
        // Owned by this test process, which is alive (another process sharing the store).
        let live = "\(tmp)/work-\(ProcessOwner.current.token)-1ive1ive"
        try fm.createDirectory(atPath: live, withIntermediateDirectories: false)
        try await farm.startScheduler()
        #expect(!fm.fileExists(atPath: stream), "the killed scheduler's half-received stream is still there")
        #expect(!fm.fileExists(atPath: tree))
        #expect(fm.fileExists(atPath: live), "a live process's work directory was removed")
        #expect(farm.log("scheduler").contains("left by processes that are gone"))
    }

    @Test("a second agent on the same state directory is refused with exit 2; a restarted agent drops the streams a killed one spooled")
    func agentStateDirectoryIsItsOwn() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        let c = try await farm.client()
        try await farm.startAgents(["agent-a"], seenBy: c)
        let second = try await farm.kiln([
            "agent", "--scheduler", farm.endpoint, "--arch", "x86_64", "--name", "agent-a2", "--state", "\(farm.dir)/agent-a",
            "--key", "\(farm.dir)/agent-b.key", "--scheduler-key", "\(farm.dir)/scheduler.pub",
            "--store", "\(farm.dir)/agent-a2-store",
        ])
        #expect(second.status == 2, "\(second.output)")
        #expect(second.output.contains("another agent is running with this state directory"), "\(second.output)")

        await farm.killAgent("agent-a")
        let spool = "\(farm.dir)/agent-a/spool/attempt-41.tar.zst"
        FileManager.default.createFile(atPath: spool, contents: Data(repeating: 1, count: 1 << 20))
        try farm.startAgent("agent-a")
        #expect(try await farm.eventually(.seconds(20)) { !FileManager.default.fileExists(atPath: spool) },
                "the killed agent's spooled stream is still there")
    }
}
