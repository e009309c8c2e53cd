import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only, `noatime` bind mount of a directory in the stage's scratch
/// space, for tools that read a whole tree: they can neither change it nor
/// bump its access times (which filesystem builders copy into their output).
package enum ReadOnlyView {
    package static func with<T: Sendable>(_ directory: String, in context: StageContext,
                                          _ body: (String) async throws -> T) async throws -> T {
        let view = context.scratch + "/view-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: view, withIntermediateDirectories: true)
        defer { _ = rmdir(view) }  // never recursive: it was a view of the input
        let mounts = MountSet(commands: context.commands)
        return try await mounts.releasing {
            try await mounts.bindReadOnly(directory, at: view, options: ["noatime"])
            return try await body(view)
        }
    }
}
