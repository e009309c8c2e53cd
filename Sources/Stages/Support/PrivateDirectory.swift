import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A directory only Kiln's own user may enter: the tree store (its trees hold
/// setuid-root programs, world-writable `/tmp`s and `/etc/shadow`s), the
/// scheduler's state (password hashes, images) and an agent's spool.
///
/// Made 0700 when missing. An existing one must belong to this user and give
/// nobody else more than read and search through its group (0750, for a
/// `kiln` group); anything looser is refused at start, the way a secret key
/// file is, with the `chmod` that fixes it.
package enum PrivateDirectory {
    /// Creates `path` and any missing parents (0700 each: a state directory
    /// made first must not be opened up by a store made inside it) or checks
    /// the one there.
    package static func prepare(_ path: String, what: String) throws(StageError) {
        var info = stat()
        if lstat(path, &info) != 0 {
            guard errno == ENOENT else { throw fail(path, what, "cannot be read: \(String(cString: strerror(errno)))") }
            var missing: [String] = []
            var probe = path
            while !probe.isEmpty, probe != "/", access(probe, F_OK) != 0 {
                missing.append(probe)
                probe = (probe as NSString).deletingLastPathComponent
            }
            for dir in missing.reversed() {
                guard mkdir(dir, 0o700) == 0 || errno == EEXIST else {
                    throw fail(dir, what, "cannot be created: \(String(cString: strerror(errno)))")
                }
            }
            // mkdir's mode is cut by the umask; 0700 is the most a umask leaves anyway.
            guard lstat(path, &info) == 0 else { throw fail(path, what, "vanished after it was created") }
        }
        try check(path, what: what, info)
    }

    static func check(_ path: String, what: String, _ info: stat) throws(StageError) {
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw fail(path, what, "is not a directory (a symbolic link is not taken either); give the path of a real directory")
        }
        guard info.st_uid == geteuid() else {
            throw fail(path, what, "belongs to uid \(info.st_uid), not to this process's uid \(geteuid()); run `chown \(geteuid()) \(path)` or choose another directory")
        }
        let mode = UInt32(info.st_mode) & 0o7777
        if mode & 0o027 != 0 {
            throw fail(path, what, "is open to other users (mode \(String(mode & 0o777, radix: 8))); "
                + "it holds setuid-root programs and secrets: run `chmod 0700 \(path)` (or 0750 for a kiln group)")
        }
    }

    private static func fail(_ path: String, _ what: String, _ reason: String) -> StageError {
        .badPath(path: path, reason: "\(what) \(reason)")
    }
}
