import Foundation

/// Maps absolute paths inside a tree to host paths, refusing anything that
/// would leave the tree (`..` components). A string only: symlinks inside the
/// tree are the caller's concern. A path into a tree made by someone else (an
/// input tree) goes through `ConfinedPath`, which follows no link; writers into
/// the stage's own tree use `TreeFiles`, which never follows a final symlink.
package enum TreePath {
    package static func resolve(_ inTree: String, in tree: String) throws -> String {
        guard inTree.hasPrefix("/") else {
            throw StageError.badPath(path: inTree, reason: "must be an absolute path inside the image")
        }
        let parts = inTree.split(separator: "/", omittingEmptySubsequences: true)
        if parts.contains("..") {
            throw StageError.badPath(path: inTree, reason: "must not contain \"..\"")
        }
        return parts.isEmpty ? tree : tree + "/" + parts.joined(separator: "/")
    }
}

/// Small file operations inside a tree.
package enum TreeFiles {
    /// Writes `content` to `inTree`, creating parent directories; replaces
    /// (never writes through) an existing symlink.
    package static func write(_ content: String, to inTree: String, in tree: String, mode: Int = 0o644) throws {
        try write(Data(content.utf8), to: inTree, in: tree, mode: mode)
    }

    package static func write(_ data: Data, to inTree: String, in tree: String, mode: Int = 0o644) throws {
        let path = try TreePath.resolve(inTree, in: tree)
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tmp = dir + "/.kiln-tmp-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: tmp, contents: data, attributes: [.posixPermissions: mode]) else {
            throw StageError.badPath(path: inTree, reason: "cannot write")
        }
        _ = chmod(tmp, mode_t(mode))
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw StageError.badPath(path: inTree, reason: "cannot rename into place: \(String(cString: strerror(errno)))")
        }
    }

    package static func read(_ inTree: String, in tree: String) throws -> String? {
        let path = try TreePath.resolve(inTree, in: tree)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// Creates or replaces a symlink.
    package static func symlink(_ target: String, at inTree: String, in tree: String) throws {
        let path = try TreePath.resolve(inTree, in: tree)
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        unlink(path)
        guard Glibc.symlink(target, path) == 0 else {
            throw StageError.badPath(path: inTree, reason: "cannot create symlink: \(String(cString: strerror(errno)))")
        }
    }

    package static func exists(_ inTree: String, in tree: String) -> Bool {
        guard let p = try? TreePath.resolve(inTree, in: tree) else { return false }
        var st = stat()
        return lstat(p, &st) == 0
    }
}
