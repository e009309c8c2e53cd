import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Finished trees and checkpoints, keyed by content ID. An object is a
/// directory `objects/<id>/tree`; it appears under its key only when it is
/// complete: the tree is built elsewhere and renamed into place in one step,
/// and removed by renaming it away first. The mtime of `objects/<id>` is the
/// object's last use (for pruning).
///
/// Copies of one `TreeStore` value share its leases (`pin`), so that every
/// executor, download and assembly of a process that uses the store keeps
/// what it uses out of `prune`'s reach (TreeStore+Pruning.swift).
package struct TreeStore: Sendable {
    package let root: String
    /// Size cap in bytes for `prune`; nil: unbounded.
    package let capBytes: UInt64?
    /// Leases, known object sizes and the "something was stored" mark, shared by every copy.
    let shared = TreeStoreState()

    package static let defaultRoot = "/var/lib/kiln/store"

    package init(root: String = TreeStore.defaultRoot, capBytes: UInt64? = nil) throws {
        // Absolute, so that trees extract into it from any thread (--store store).
        self.root = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
        self.capBytes = capBytes
        try PrivateDirectory.prepare(self.root, what: "the tree store")
        for dir in ["objects", "tmp"] {
            try FileManager.default.createDirectory(atPath: "\(self.root)/\(dir)", withIntermediateDirectories: true)
        }
    }

    package func treePath(_ id: String) -> String { "\(root)/objects/\(id)/tree" }

    package func contains(_ id: String) -> Bool {
        access("\(root)/objects/\(id)/tree", F_OK) == 0
    }

    /// A fresh empty directory on the store's filesystem, for building a tree.
    package func makeWorkDirectory() throws -> String {
        let path = newWorkPath()
        try Self.mkdir(path)
        return path
    }

    /// A fresh name for a work directory, not yet created (for a caller that
    /// creates it on a thread of its own).
    package func newWorkPath() -> String { temporaryPath("work") }

    /// One directory (its parent exists): a plain mkdir, which matters when a
    /// scheduler stores thousands of small trees.
    static func mkdir(_ path: String) throws {
        guard Glibc.mkdir(path, 0o755) == 0 else {
            throw StageError.badPath(path: path, reason: "cannot create the directory: \(String(cString: strerror(errno)))")
        }
    }

    /// Marks `id` as recently used (for pruning).
    package func touch(_ id: String) {
        _ = utimes("\(root)/objects/\(id)", nil)
    }

    /// Stores `work` under `id`. With `move`, `work` itself becomes the object
    /// (a rename on the same filesystem); otherwise a copy is stored and `work`
    /// stays usable.
    package func commit(_ work: String, as id: String, move: Bool, commands: CommandRunner) async throws {
        if move {
            if try !commitMoving(work, as: id) { try? await remove(work, commands: commands) }
            return
        }
        if contains(id) { return }
        let object = try makeObjectDirectory(id)
        let source = "\(object)/.incoming-\(UUID().uuidString.prefix(8).lowercased())"
        try await commands.run(["cp", "-a", "--reflink=auto", work, source])
        if try !moveIn(source, object: object) { try? await remove(source, commands: commands) }
    }

    /// Renames `work` into the store as `id`: one mkdir and one rename, no
    /// subprocess, so it can run on a thread that must not wait. Returns
    /// false when `id` was already stored (`work` is then left to the caller
    /// to remove).
    package func commitMoving(_ work: String, as id: String) throws -> Bool {
        if contains(id) { return false }
        return try moveIn(work, object: try makeObjectDirectory(id))
    }

    private func makeObjectDirectory(_ id: String) throws -> String {
        let object = "\(root)/objects/\(id)"
        guard Glibc.mkdir(object, 0o755) == 0 || errno == EEXIST else {
            throw StageError.badPath(path: object, reason: "cannot create the object: \(String(cString: strerror(errno)))")
        }
        return object
    }

    /// Moves `source` to `object/tree`; false when someone else stored it first (keep theirs).
    private func moveIn(_ source: String, object: String) throws -> Bool {
        if Glibc.rename(source, "\(object)/tree") == 0 {
            shared.stored()
            return true
        }
        let reason = String(cString: strerror(errno))
        guard errno == EEXIST || errno == ENOTEMPTY else {
            throw StageError.badPath(path: source, reason: "cannot move into the store: \(reason)")
        }
        return false
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
}
