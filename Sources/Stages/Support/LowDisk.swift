import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file system a daemon writes to has less free space than its
/// `--min-free-gib`: which one, how much is free, and the threshold. While
/// one is low the scheduler refuses submits and starts no job or assembly,
/// and an agent takes no new job; what runs goes on (docs/operating.md,
/// "Retention and disk space").
package struct LowDisk: Sendable, Equatable, CustomStringConvertible {
    /// What the path is ("state directory", "tree store").
    package var what: String
    package var path: String
    package var freeBytes: UInt64
    package var thresholdBytes: UInt64

    /// `tree store /var/lib/kiln/store has 1.20 GiB free, less than its --min-free-gib (2.00 GiB)`.
    package var description: String {
        "\(what) \(path) has \(Self.size(freeBytes)) free, less than its --min-free-gib (\(Self.size(thresholdBytes)))"
    }

    /// The first of `paths` (what, path) whose file system has less than
    /// `threshold` bytes free for an unprivileged writer; nil when none has
    /// (or the threshold is 0).
    package static func check(_ paths: [(what: String, path: String)], threshold: UInt64) -> LowDisk? {
        guard threshold > 0 else { return nil }
        for (what, path) in paths {
            var fs = statvfs()
            // A file system that cannot be asked is not called low: its writes fail on their own.
            guard statvfs(path, &fs) == 0 else { continue }
            let free = UInt64(fs.f_bavail) * UInt64(fs.f_frsize)
            if free < threshold { return LowDisk(what: what, path: path, freeBytes: free, thresholdBytes: threshold) }
        }
        return nil
    }

    /// `1.93 GiB`; below a GiB `512.0 MiB`.
    package static func size(_ bytes: UInt64) -> String {
        bytes >= 1 << 30 ? String(format: "%.2f GiB", Double(bytes) / Double(1 << 30))
            : String(format: "%.1f MiB", Double(bytes) / Double(1 << 20))
    }
}
