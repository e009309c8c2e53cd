import Foundation
import KilnTestSupport
import Logging
@testable import Stages
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 15, finding 14: what a crashed process leaves in the store's `tmp/`
/// (a half-built tree with a mount still inside it, a half-received stream)
/// is removed by the next process that opens the store, and what a running
/// process owns there is never touched.
@Suite(.serialized) struct SweepTests {
    func mounted(_ path: String) -> Bool { TreeStore.mountPoints().contains(path) }

    /// The owner of a process that really ran and is gone.
    func deadOwner() async throws -> ProcessOwner {
        let owner = try withKilledProcess { pid in
            let owner = ProcessOwner(pid: pid, started: try #require(ProcessOwner.startTime(of: pid)))
            #expect(owner.isAlive)
            return owner
        }
        #expect(!owner.isAlive)
        return owner
    }

    @Test func entriesOfGoneProcessesAreRemovedWithTheirMountsAndLiveOnesStay() async throws {
        let root = "/var/tmp/kiln-sweep-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try TreeStore(root: root)
        let commands = CommandRunner(logPath: root + ".log", logger: Logger(label: "kiln.test.sweep"))
        defer { unlink(root + ".log") }
        let fm = FileManager.default
        let dead = try await deadOwner()
        // A tree the dead process was building, with a mount it never released.
        let crashed = "\(root)/tmp/work-\(dead.token)-deadbeef"
        try fm.createDirectory(atPath: crashed + "/proc", withIntermediateDirectories: true)
        try "half a tree".write(toFile: crashed + "/file", atomically: false, encoding: .utf8)
        try await commands.run(["mount", "-t", "tmpfs", "-o", "size=1m", "kiln-sweep-test", crashed + "/proc"])
        #expect(mounted(crashed + "/proc"))
        // And a disk image attached to a loop device, as assembly does.
        try await commands.run(["truncate", "-s", "8M", crashed + "/disk.raw"])
        let loop = try await commands.output(["losetup", "-f", "--show", crashed + "/disk.raw"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(TreeStore.loopDevices().contains { $0.device == loop })
        let stream = "\(root)/tmp/stream-\(dead.token)-cafef00d-attempt7.tar.zst"
        fm.createFile(atPath: stream, contents: Data("zst".utf8))
        // This process is alive: its work stays, whatever its age.
        let mine = store.newWorkPath()
        try TreeStore.mkdir(mine)
        // The old unowned form: removed once a day old, kept before.
        let oldLegacy = "\(root)/tmp/work-0ld0ld00", newLegacy = "\(root)/tmp/work-n3wn3w00"
        for d in [oldLegacy, newLegacy] { try fm.createDirectory(atPath: d, withIntermediateDirectories: false) }
        var times = [timeval(tv_sec: time(nil) - 2 * 86_400, tv_usec: 0), timeval(tv_sec: time(nil) - 2 * 86_400, tv_usec: 0)]
        #expect(utimes(oldLegacy, &times) == 0)

        let removed = await store.sweep(commands: commands)

        #expect(Set(removed) == [crashed, stream, oldLegacy])
        #expect(!mounted(crashed + "/proc"), "the crashed process's mount is still there")
        #expect(!TreeStore.loopDevices().contains { $0.device == loop }, "the crashed process's loop device is still attached")
        #expect(!fm.fileExists(atPath: crashed) && !fm.fileExists(atPath: stream) && !fm.fileExists(atPath: oldLegacy))
        #expect(fm.fileExists(atPath: mine), "a live process's work directory was removed")
        #expect(fm.fileExists(atPath: newLegacy))
    }

    /// A pid that a later process reuses is not its owner: the start time differs.
    @Test func aReusedPidIsNotTheOwner() async throws {
        #expect(ProcessOwner.current.isAlive)
        #expect(!ProcessOwner(pid: ProcessOwner.current.pid, started: ProcessOwner.current.started + 1).isAlive)
        #expect(ProcessOwner(token: Substring(ProcessOwner.current.token)) == ProcessOwner.current)
        for bad in ["", "12", "a.b", "-1.5", "1.2.3"] { #expect(ProcessOwner(token: Substring(bad)) == nil, "\(bad)") }
    }

    /// Cancelled while `mount` runs, the work still releases what `mount`
    /// made: the mount is recorded before the command starts.
    @Test func aMountMadeWhileTheWorkIsCancelledIsReleased() async throws {
        let root = "/var/tmp/kiln-cancel-mount-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let commands = CommandRunner(logPath: root + "/log", logger: Logger(label: "kiln.test.mount"))
        for i in 0..<12 {
            let target = "\(root)/t\(i)"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
            let mounts = MountSet(commands: commands)
            let work = Task {
                try await mounts.releasing {
                    try await mounts.mount(["-t", "tmpfs", "-o", "size=1m", "kiln-cancel-test"], at: target)
                    try await Task.sleep(for: .seconds(30))
                }
            }
            // Cancelled at different moments: before, during and after `mount`.
            try await Task.sleep(for: .milliseconds(i * 2))
            work.cancel()
            _ = await work.result
            #expect(!mounted(target), "a mount made as the work was cancelled (after \(i * 2) ms) stayed")
            if mounted(target) { _ = umount2(target, Int32(MNT_DETACH)) }
        }
    }
}
