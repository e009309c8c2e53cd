import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
import Threads
#endif

/// What one `TreeStore.prune` did.
package struct PruneReport: Sendable, Equatable {
    /// Objects removed, least recently used first.
    package var removed: [String] = []
    package var freedBytes: UInt64 = 0
    /// Disk space the store's objects take after the prune.
    package var storedBytes: UInt64 = 0
    /// Of that, what leased objects take: a store whose leased trees alone
    /// pass the cap stays over it until the leases end.
    package var leasedBytes: UInt64 = 0
    package var capBytes: UInt64?

    package var overCap: Bool { capBytes.map { storedBytes > $0 } ?? false }
}

extension TreeStore {
    /// An object directory without its `tree` (a copy into the store under
    /// way, or one a crash interrupted) is left alone for this long.
    static let incompleteGraceSeconds = 3600

    /// Removes least-recently-used objects until the store fits its cap,
    /// never one that is leased (`pin`). Measuring and choosing run on a
    /// thread of their own (a store of many trees is many `stat` calls); a
    /// chosen object leaves its key by one rename, decided under the lease
    /// lock, so that a tree someone leased and found is never taken from
    /// them; then `rm` removes it in a process of its own.
    @discardableResult
    package func prune(commands: CommandRunner) async throws -> PruneReport {
        guard let cap = capBytes else { return PruneReport() }
        _ = takeStoredMark()
        let (report, doomed) = try await DedicatedThread.run(name: "kiln-prune") { self.choose(cap: cap) }
        for path in doomed { try await remove(path, commands: commands) }
        return report
    }

    /// Moves what has to go out of `objects/` (on the caller's thread, which
    /// may block); returns the report and the paths to delete.
    func choose(cap: UInt64) -> (PruneReport, [String]) {
        let objects = root + "/objects"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: objects)) ?? []
        // A stored tree never changes, so each object is measured once.
        var sizes = shared.state.withLock { $0.sizes }
        var incomplete: [String] = []
        for id in names where sizes[id] == nil {
            if access("\(objects)/\(id)/tree", F_OK) == 0 {
                sizes[id] = Self.diskUsage("\(objects)/\(id)")
            } else {
                incomplete.append(id)
            }
        }
        let present = Set(names)
        sizes = sizes.filter { present.contains($0.key) }
        shared.state.withLock { $0.sizes = sizes }

        var report = PruneReport(capBytes: cap)
        var doomed: [String] = []
        let now = time(nil)
        for id in incomplete {
            var st = stat()
            guard lstat("\(objects)/\(id)", &st) == 0, st.st_mode & S_IFMT == S_IFDIR,
                now - st.st_mtim.tv_sec > Self.incompleteGraceSeconds, let path = takeOut(id)
            else { continue }
            doomed.append(path)
        }
        var total = sizes.values.reduce(0, +)
        let leased = shared.state.withLock { s in sizes.filter { s.pins[$0.key] != nil } }
        report.leasedBytes = leased.values.reduce(0, +)
        if total > cap {
            // Least recently used first: the mtime of objects/<id> (`touch`).
            var used: [(id: String, seconds: Int, nanos: Int)] = []
            for id in sizes.keys where leased[id] == nil {
                var st = stat()
                guard lstat("\(objects)/\(id)", &st) == 0 else { continue }
                used.append((id, st.st_mtim.tv_sec, st.st_mtim.tv_nsec))
            }
            used.sort { ($0.seconds, $0.nanos, $0.id) < ($1.seconds, $1.nanos, $1.id) }
            for o in used where total > cap {
                guard let path = takeOut(o.id) else { continue }
                let size = sizes[o.id] ?? 0
                doomed.append(path)
                report.removed.append(o.id)
                report.freedBytes += size
                total -= size
                shared.state.withLock { $0.sizes[o.id] = nil }
            }
        }
        report.storedBytes = total
        return (report, doomed)
    }

    /// Renames object `id` out of its key, unless it is leased; returns where it went.
    private func takeOut(_ id: String) -> String? {
        let doomed = temporaryPath("removing")
        let moved = shared.state.withLock { s -> Bool in
            guard s.pins[id] == nil else { return false }
            return rename("\(root)/objects/\(id)", doomed) == 0
        }
        return moved ? doomed : nil
    }

    /// Disk space (allocated blocks) of everything under `path`, without
    /// following links or leaving its file system; a file with several hard
    /// links counts once. Blocks the calling thread (many `stat` calls).
    package static func diskUsage(_ path: String) -> UInt64 {
        var top = stat()
        guard lstat(path, &top) == 0 else { return 0 }
        var total: UInt64 = 0
        var linked = Set<UInt64>()
        func count(_ st: stat) {
            if st.st_nlink > 1, st.st_mode & S_IFMT != S_IFDIR, !linked.insert(UInt64(st.st_ino)).inserted { return }
            total += UInt64(max(0, st.st_blocks)) * 512
        }
        count(top)
        guard top.st_mode & S_IFMT == S_IFDIR else { return total }
        var pending = [path]
        while let dir = pending.popLast() {
            guard let stream = opendir(dir) else { continue }
            defer { closedir(stream) }
            let fd = dirfd(stream)
            while let entry = readdir(stream) {
                var raw = entry.pointee.d_name
                let capacity = MemoryLayout.size(ofValue: raw)
                let name = withUnsafePointer(to: &raw) {
                    $0.withMemoryRebound(to: CChar.self, capacity: capacity) { String(cString: $0) }
                }
                if name == "." || name == ".." { continue }
                var st = stat()
                guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                count(st)
                if st.st_mode & S_IFMT == S_IFDIR, st.st_dev == top.st_dev { pending.append(dir + "/" + name) }
            }
        }
        return total
    }
}
