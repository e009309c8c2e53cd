import Foundation
import StageOptions

/// Directories and files of a blueprint (`org.kiln.files`): created with
/// their mode and owner, owners looked up by name in the tree's own
/// `/etc/passwd` and `/etc/group` (so users made by earlier stages work).
/// No path may go through a symlink: a link such as `/var/run` → `/run`
/// would otherwise point outside the tree while it is being built.
package struct TreeFileTree: Stage {
    package typealias Options = FilesOptions
    package typealias Directory = FilesOptions.Directory
    package typealias File = FilesOptions.File
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        // Names need the tree's passwd and group; numeric ids do not (a tree without accounts yet).
        let owners = (options.directories ?? []).flatMap { [$0.user, $0.group] } + (options.files ?? []).flatMap { [$0.user, $0.group] }
        let db = try owners.contains { $0.map { Int($0) == nil } ?? false } ? AccountDatabase(tree: context.tree) : nil
        // Shallowest first (ties in the given order), so that a parent listed after
        // its child exists before the child needs it; errors still name the given index.
        let directories = (options.directories ?? []).enumerated().sorted {
            ($0.element.path.split(separator: "/").count, $0.offset) < ($1.element.path.split(separator: "/").count, $1.offset)
        }
        for (i, d) in directories {
            let at = "directories[\(i)]"
            let host = try Self.hostPath(d.path, in: context.tree, at: at, createParents: d.parents == true)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: host, isDirectory: &isDir) {
                guard isDir.boolValue else {
                    throw StageError.treeInconsistent(reason: "\(Self.type): \(at): \(d.path) exists and is not a directory")
                }
            } else if mkdir(host, 0o755) != 0 {
                throw StageError.badPath(path: d.path, reason: "cannot create the directory: \(String(cString: strerror(errno)))")
            }
            try Self.own(host, d.path, mode: d.mode ?? "0755", user: d.user, group: d.group, db: db, at: at)
        }
        for (i, f) in (options.files ?? []).enumerated() {
            let at = "files[\(i)]"
            guard let data = Data(base64Encoded: f.data) else {
                throw StageError.invalidOptions(reason: "\(Self.type): \(at).data is not base64")
            }
            let host = try Self.hostPath(f.path, in: context.tree, at: at, createParents: true)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: host, isDirectory: &isDir), isDir.boolValue {
                throw StageError.treeInconsistent(reason: "\(Self.type): \(at): \(f.path) is a directory in the tree")
            }
            try TreeFiles.write(data, to: f.path, in: context.tree)
            try Self.own(host, f.path, mode: f.mode ?? "0644", user: f.user, group: f.group, db: db, at: at)
        }
    }

    /// The host path of `path`, refusing symlinks on the way; missing parents
    /// are created (root, 0755) when `createParents`, else they must exist.
    static func hostPath(_ path: String, in tree: String, at: String, createParents: Bool) throws -> String {
        let host = try TreePath.resolve(path, in: tree)
        var current = tree
        let parts = path.split(separator: "/")
        for (n, part) in parts.enumerated() {
            current += "/" + part
            var st = stat()
            if lstat(current, &st) == 0 {
                if st.st_mode & S_IFMT == S_IFLNK {
                    throw StageError.badPath(
                        path: path, reason: "/\(parts[...n].joined(separator: "/")) is a symlink in the tree; give the path it points to")
                }
                continue
            }
            guard n < parts.count - 1 else { break }
            guard createParents else {
                throw StageError.treeInconsistent(
                    reason:
                        "\(type): \(at): the parent directory /\(parts[...n].joined(separator: "/")) does not exist; create it first or set ensure_parents"
                )
            }
            if mkdir(current, 0o755) != 0 {
                throw StageError.badPath(
                    path: path, reason: "cannot create /\(parts[...n].joined(separator: "/")): \(String(cString: strerror(errno)))")
            }
        }
        return host
    }

    static func own(
        _ host: String, _ path: String, mode: String, user: String?, group: String?,
        db: AccountDatabase?, at: String
    ) throws {
        guard let m = UInt32(mode, radix: 8), m <= 0o7777 else {
            throw StageError.invalidOptions(reason: "\(type): \(at).mode \"\(mode)\" is not an octal mode such as 0644")
        }
        func id(_ value: String?, _ kind: String, _ lookup: (String) -> Int?) throws -> Int {
            guard let value else { return 0 }
            if let n = Int(value) { return n }
            guard let n = lookup(value) else {
                throw StageError.treeInconsistent(
                    reason: "\(type): \(at).\(kind) \"\(value)\" does not exist in the tree; add it under [[customizations.\(kind)]] or use a number")
            }
            return n
        }
        let uid = try id(user, "user") { name in db.flatMap { db in db.user(name).flatMap { Int(db.passwd[$0][2]) } } }
        let gid = try id(group, "group") { name in db.flatMap { db in db.groupIndex(name).flatMap { Int(db.group[$0][2]) } } }
        guard chown(host, uid_t(uid), gid_t(gid)) == 0, chmod(host, mode_t(m)) == 0 else {
            throw StageError.badPath(path: path, reason: "cannot set owner and mode: \(String(cString: strerror(errno)))")
        }
    }
}
