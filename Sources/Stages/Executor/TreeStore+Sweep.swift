import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a process leaves in the store's `tmp/` (a tree being built, a stream
/// being received, objects being removed) is named after its owner: the
/// process ID and its start time (`/proc/PID/stat`, field 22), so that a pid
/// reused by another process, or after a reboot, is never taken for the
/// owner. After a crash (SIGKILL, power loss) `sweep` finds the entries whose
/// owner is gone and removes them, releasing any mount left inside first.
/// Several processes may share one store (`kiln build` twice, a scheduler and
/// its embedded agents): an entry of a live process is never touched.
package struct ProcessOwner: Sendable, Equatable {
    package let pid: Int32
    package let started: UInt64

    /// This process.
    package static let current = ProcessOwner(pid: getpid(), started: startTime(of: getpid()) ?? 0)

    /// `PID.START`, as it appears in names.
    package var token: String { "\(pid).\(started)" }

    package init(pid: Int32, started: UInt64) {
        self.pid = pid
        self.started = started
    }

    /// Parses `PID.START`.
    package init?(token: Substring) {
        let parts = token.split(separator: ".")
        guard parts.count == 2, let pid = Int32(parts[0]), pid > 0, let started = UInt64(parts[1]) else { return nil }
        self.init(pid: pid, started: started)
    }

    /// Whether the process that made the entry still runs.
    package var isAlive: Bool {
        guard let now = Self.startTime(of: pid) else { return false }
        return now == started
    }

    /// Field 22 of `/proc/PID/stat` (clock ticks after boot), nil when there is no such process.
    package static func startTime(of pid: Int32) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // After "(comm)": state is field 3, so starttime is the 20th word after it.
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }
}

extension TreeStore {
    /// A name in `tmp/` for `kind` (`work`, `stream`, `removing`), owned by this process.
    package func temporaryPath(_ kind: String, suffix: String = "") -> String {
        "\(root)/tmp/\(kind)-\(ProcessOwner.current.token)-\(UUID().uuidString.prefix(8).lowercased())\(suffix)"
    }

    /// Entries of `tmp/` left by processes that are gone, with what is still
    /// mounted inside them: entries named after their owner whose owner has
    /// exited, and entries in the old unowned form (`work-xxxxxxxx`) not
    /// touched for `legacyAge`.
    package func orphans(legacyAge: TimeInterval = 86_400, now: Date = Date()) -> [String] {
        let tmp = "\(root)/tmp"
        var found: [String] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? [] {
            let parts = name.split(separator: "-", maxSplits: 2)
            if parts.count == 3, let owner = ProcessOwner(token: parts[1]) {
                if !owner.isAlive { found.append("\(tmp)/\(name)") }
                continue
            }
            var st = stat()
            guard lstat("\(tmp)/\(name)", &st) == 0 else { continue }
            if now.timeIntervalSince1970 - TimeInterval(st.st_mtim.tv_sec) > legacyAge { found.append("\(tmp)/\(name)") }
        }
        return found.sorted()
    }

    /// Removes what crashed processes left in `tmp/`: unmounts what is
    /// mounted inside each entry (deepest first), detaches the loop devices
    /// backed by files in it, then removes it without
    /// crossing into another file system. Returns the entries removed.
    @discardableResult
    package func sweep(commands: CommandRunner) async -> [String] {
        let orphans = orphans()
        guard !orphans.isEmpty else { return [] }
        let mounts = Self.mountPoints()
        let loops = Self.loopDevices()
        var removed: [String] = []
        for path in orphans {
            for m in mounts.filter({ $0 == path || $0.hasPrefix(path + "/") }).sorted(by: { $0.count > $1.count }) {
                if umount2(m, 0) != 0 { _ = umount2(m, Int32(MNT_DETACH)) }
            }
            for (device, file) in loops where file.hasPrefix(path + "/") {
                try? await commands.run(["losetup", "-d", device])
            }
            do {
                try await remove(path, commands: commands)
                removed.append(path)
            } catch {
                commands.logger.warning("could not remove \(path), left by a process that is gone: \(error)")
            }
        }
        if !removed.isEmpty {
            // Worth an operator's notice: it means a Kiln process ended without cleaning up (a crash, SIGKILL).
            commands.logger.warning("removed \(removed.count) entries of \(root)/tmp left by processes that are gone")
        }
        return removed
    }

    /// Attached loop devices and their backing files (`/sys/block/loopN/loop/backing_file`).
    static func loopDevices() -> [(device: String, file: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? []
        return names.filter { $0.hasPrefix("loop") }.sorted().compactMap { name in
            guard let file = try? String(contentsOfFile: "/sys/block/\(name)/loop/backing_file", encoding: .utf8) else { return nil }
            return ("/dev/\(name)", file.trimmingCharacters(in: .newlines))
        }
    }

    /// Mount points of this mount namespace (`/proc/self/mountinfo`, field 5, octal escapes decoded).
    static func mountPoints() -> [String] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 ? decodeOctal(fields[4]) : nil
        }
    }

    static func decodeOctal(_ s: Substring) -> String {
        var bytes: [UInt8] = []
        var i = s.utf8.startIndex
        let u = s.utf8
        while i < u.endIndex {
            if u[i] == UInt8(ascii: "\\"), let end = u.index(i, offsetBy: 4, limitedBy: u.endIndex),
               let v = UInt8(String(decoding: u[u.index(after: i)..<end], as: UTF8.self), radix: 8) {
                bytes.append(v)
                i = end
            } else {
                bytes.append(u[i])
                i = u.index(after: i)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
