import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Every mount Kiln made and has not yet released, so that a failure or
/// Ctrl-C can release them all.
package final class MountTable: @unchecked Sendable {
    package static let shared = MountTable()
    private let lock = NSLock()
    private var active: [String] = []

    package func add(_ path: String) { lock.withLock { active.append(path) } }
    package func remove(_ path: String) { lock.withLock { active.removeAll { $0 == path } } }

    /// Unmounts every mount at or below `prefix`, newest first (before a work
    /// directory is removed, so that a removal never reaches a host directory).
    package func release(under prefix: String) {
        release { $0 == prefix || $0.hasPrefix(prefix + "/") }
    }

    /// Unmounts everything still mounted, newest first (used on signals).
    package func releaseAll() { release { _ in true } }

    private func release(where matches: (String) -> Bool) {
        let paths = lock.withLock { () -> [String] in
            let p = active.filter(matches)
            active.removeAll(where: matches)
            return p
        }
        for p in paths.reversed() { _ = umount2(p, Int32(MNT_DETACH)) }
    }
}
