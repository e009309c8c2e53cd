import CArchive
import Foundation

/// Flushes what was written to disk, so that it survives a crash or a power
/// cut: used before a received tree is acknowledged (the sender then deletes
/// its copy).
package enum FileSync {
    /// syncfs(2) on the filesystem that holds the directory `path`: every
    /// file written there, data and metadata, in one call.
    package static func filesystem(_ path: String) throws(TreeArchiveError) {
        try withDirectory(path) { fd throws(TreeArchiveError) in try check(kiln_syncfs(fd), "syncfs", path) }
    }

    private static func withDirectory(_ path: String, _ body: (Int32) throws(TreeArchiveError) -> Void) throws(TreeArchiveError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        try check(fd, "open", path)
        defer { close(fd) }
        try body(fd)
    }

    private static func check(_ rc: Int32, _ operation: String, _ path: String) throws(TreeArchiveError) {
        if rc == -1 { throw .badTarget(path: path, reason: "\(operation): \(String(cString: strerror(errno)))") }
    }
}
