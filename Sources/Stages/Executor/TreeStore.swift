import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Finished trees and checkpoints, keyed by content ID. An object is a
/// directory `objects/<id>/tree`; it appears under its key only when it is
/// complete (written elsewhere, then renamed into place).
package struct TreeStore: Sendable {
    package let root: String
    /// Size cap in bytes for `prune`; nil: unbounded.
    package let capBytes: UInt64?

    package static let defaultRoot = "/var/lib/kiln/store"

    package init(root: String = TreeStore.defaultRoot, capBytes: UInt64? = nil) throws {
        self.root = root
        self.capBytes = capBytes
        for dir in ["objects", "tmp"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
        }
    }

    package func treePath(_ id: String) -> String { "\(root)/objects/\(id)/tree" }

    package func contains(_ id: String) -> Bool {
        FileManager.default.fileExists(atPath: "\(root)/objects/\(id)/complete")
    }

    /// A fresh empty directory on the store's filesystem, for building a tree.
    package func makeWorkDirectory() throws -> String {
        let path = "\(root)/tmp/work-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Marks `id` as recently used (for pruning).
    package func touch(_ id: String) {
        _ = utimes("\(root)/objects/\(id)/complete", nil)
    }

    /// Stores `work` under `id`. With `move`, `work` itself becomes the object
    /// (a rename on the same filesystem); otherwise a copy is stored and `work`
    /// stays usable.
    package func commit(_ work: String, as id: String, move: Bool, commands: CommandRunner) async throws {
        if contains(id) {
            if move { try? await remove(work, commands: commands) }
            return
        }
        let staging = "\(root)/tmp/obj-\(id.prefix(16))-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        if move {
            guard rename(work, "\(staging)/tree") == 0 else {
                throw StageError.badPath(path: work, reason: "cannot move into the store: \(String(cString: strerror(errno)))")
            }
        } else {
            try await commands.run(["cp", "-a", "--reflink=auto", work, "\(staging)/tree"])
        }
        FileManager.default.createFile(atPath: "\(staging)/complete", contents: Data(id.utf8))
        let final = "\(root)/objects/\(id)"
        if rename(staging, final) != 0 {
            // Someone else stored it first: keep theirs.
            try? await remove(staging, commands: commands)
        }
    }

    /// Copies the object `id` into the empty directory `work`.
    package func checkout(_ id: String, into work: String, commands: CommandRunner) async throws {
        try? FileManager.default.removeItem(atPath: work)
        try await commands.run(["cp", "-a", "--reflink=auto", treePath(id), work])
        touch(id)
    }

    package func remove(_ path: String, commands: CommandRunner) async throws {
        try await commands.run(["rm", "-rf", "--one-file-system", path])
    }

    /// Removes least-recently-used objects until the store fits its cap.
    package func prune(commands: CommandRunner) async throws {
        guard let cap = capBytes else { return }
        let fm = FileManager.default
        let ids = (try? fm.contentsOfDirectory(atPath: "\(root)/objects")) ?? []
        var objects: [(id: String, used: Date, size: UInt64)] = []
        for id in ids {
            let used = (try? fm.attributesOfItem(atPath: "\(root)/objects/\(id)/complete")[.modificationDate] as? Date) ?? .distantPast
            let out = (try? await commands.output(["du", "-sb", "\(root)/objects/\(id)"])) ?? "0"
            objects.append((id, used ?? .distantPast, UInt64(out.split(separator: "\t").first ?? "0") ?? 0))
        }
        var total = objects.reduce(0) { $0 + $1.size }
        for o in objects.sorted(by: { $0.used < $1.used }) where total > cap {
            try await remove("\(root)/objects/\(o.id)", commands: commands)
            total -= o.size
        }
    }
}
