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
        try await context.run(["mount", "--bind", directory, view])
        MountTable.shared.add(view)
        func release() {
            if umount2(view, 0) != 0 { _ = umount2(view, Int32(MNT_DETACH)) }
            MountTable.shared.remove(view)
            _ = rmdir(view)  // never recursive: it was a view of the input
        }
        do {
            try await context.run(["mount", "-o", "remount,bind,ro,noatime", view])
            let result = try await body(view)
            release()
            return result
        } catch {
            release()
            throw error
        }
    }
}
