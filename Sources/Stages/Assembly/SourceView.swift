import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The directory of the input tree that fills one filesystem, read-only and
/// `noatime`, with the mountpoints of the filesystems below it shown empty:
/// each excluded directory keeps its owner, mode and times, but its contents
/// go to the filesystem mounted there.
package enum SourceView {
    /// Runs `body` with the view's path. `source` is the directory of the tree
    /// `root` to show; `excluding` are absolute tree paths strictly below it.
    package static func with<T: Sendable>(_ source: String, inTree root: String, excluding: [String], context: StageContext,
                                          _ body: (String) async throws -> T) async throws -> T {
        let relatives = try excluding.map { try relative($0, below: source, field: "\(context.stageType): options.exclude") }
        for rel in relatives { _ = try ConfinedPath(source + "/" + rel, in: root, kind: .directory) }
        return try await ReadOnlyView.with(source, inTree: root, in: context) { view in
            guard !relatives.isEmpty else { return try await body(view) }
            let mounts = MountSet(commands: context.commands)
            return try await mounts.releasing {
                // Outermost first, so that an excluded directory inside another is never mounted on.
                for rel in relatives.sorted() where !relatives.contains(where: { rel.hasPrefix($0 + "/") }) {
                    // Looked up again inside the view: the view is the checked directory itself.
                    let directory = try ConfinedPath("/" + rel, in: view, kind: .directory)
                    var st = stat()
                    guard fstat(directory.fd, &st) == 0 else {
                        throw StageError.badPath(path: source + "/" + rel, reason: String(cString: strerror(errno)))
                    }
                    let target = directory.host
                    let mode = String(st.st_mode & 0o7777, radix: 8)
                    try await mounts.mount(["-t", "tmpfs", "-o", "mode=\(mode),uid=\(st.st_uid),gid=\(st.st_gid),size=64k,nr_inodes=16",
                                            "kiln-mountpoint"], at: target)
                    var times = [st.st_atim, st.st_mtim]
                    guard utimensat(AT_FDCWD, target, &times, 0) == 0 else {
                        throw StageError.badPath(path: target, reason: "cannot set its times: \(String(cString: strerror(errno)))")
                    }
                    try await context.run(["mount", "-o", "remount,ro", target])
                }
                return try await body(view)
            }
        }
    }

    /// `path` relative to `source` (`/boot/efi` below `/boot` is `efi`).
    static func relative(_ path: String, below source: String, field: String) throws -> String {
        let base = source.hasSuffix("/") ? source : source + "/"
        guard path.hasPrefix(base), path.count > base.count, !path.split(separator: "/").contains("..") else {
            throw StageError.invalidOptions(reason: "\(field): \"\(path)\" is not a path below \(source)")
        }
        return path.dropFirst(base.count).split(separator: "/").joined(separator: "/")
    }
}
