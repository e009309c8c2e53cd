import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only, `noatime` bind mount of a directory in the stage's scratch
/// space, for tools that read a whole tree: they can neither change it nor
/// bump its access times (which filesystem builders copy into their output).
///
/// The directory is `path` inside the tree `root`, looked up with
/// `ConfinedPath` and bound by its descriptor: a symbolic link anywhere on
/// the way is refused, so the view never shows anything outside the tree.
package enum ReadOnlyView {
    package static func with<T: Sendable>(_ path: String, inTree root: String, in context: StageContext,
                                          _ body: (String) async throws -> T) async throws -> T {
        let directory = try ConfinedPath(path, in: root, kind: .directory)
        let view = context.scratch + "/view-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: view, withIntermediateDirectories: true)
        defer { _ = rmdir(view) }  // never recursive: it was a view of the input
        let mounts = MountSet(commands: context.commands)
        return try await mounts.releasing {
            try mounts.bindReadOnly(directory, at: view)
            return try await body(view)
        }
    }
}
