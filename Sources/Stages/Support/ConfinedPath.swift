import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A path inside a tree, opened one component at a time from the tree's root
/// with `openat(ConfinedPath.pathOnly | O_NOFOLLOW)`: no `..`, and no symbolic link at any
/// component (at the last one only when asked, and then the link itself is
/// opened, never followed), so the lookup cannot leave the tree whatever the
/// tree holds. The descriptor is what was checked: bind or read through
/// `procPath` so that nothing is looked up by name again.
///
/// Every path that a manifest or a tree supplies and that is joined to a tree
/// the scheduler or an agent did not make itself goes through here.
package final class ConfinedPath: @unchecked Sendable {
    /// What the last component must be.
    package enum Kind: Sendable {
        case directory
        case regularFile
        /// A directory, file or other entry; a symbolic link is opened as the link.
        case entry
    }

    /// An `O_PATH` descriptor of the checked entry, closed with this object.
    package let fd: Int32
    /// The path inside the tree, normalised (`/boot/efi`).
    package let inTree: String
    /// The tree's root joined with `inTree`, for tools that take names and for messages.
    package let host: String

    /// The checked entry by descriptor, for `mount --bind` and `open`.
    package var procPath: String { "/proc/self/fd/\(fd)" }

    /// Opens `inTree` (absolute) below `root`, or throws `StageError.badPath`
    /// naming the component that is missing, a link, or not a directory.
    package init(_ inTree: String, in root: String, kind: Kind) throws(StageError) {
        guard inTree.hasPrefix("/") else {
            throw .badPath(path: inTree, reason: "must be an absolute path inside the tree")
        }
        let parts = inTree.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }.map(String.init)
        if parts.contains("..") {
            throw .badPath(path: inTree, reason: "must not contain \"..\"")
        }
        var fd = open(root, ConfinedPath.pathOnly | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .badPath(path: root, reason: "cannot open the tree: \(String(cString: strerror(errno)))") }
        var walked = ""
        for (i, part) in parts.enumerated() {
            walked += "/" + part
            let next = openat(fd, part, ConfinedPath.pathOnly | O_NOFOLLOW | O_CLOEXEC)
            let error = errno
            close(fd)
            guard next >= 0 else {
                throw .badPath(path: walked, reason: error == ENOENT
                               ? "does not exist in the tree"
                               : "cannot open in the tree: \(String(cString: strerror(error)))")
            }
            fd = next
            var st = stat()
            guard fstat(fd, &st) == 0 else {
                let error = errno
                close(fd)
                throw .badPath(path: walked, reason: "cannot stat: \(String(cString: strerror(error)))")
            }
            let type = st.st_mode & S_IFMT
            let last = i == parts.count - 1
            if type == S_IFLNK && !(last && kind == .entry) {
                let target = Self.linkTarget(fd)
                close(fd)
                throw .badPath(path: walked, reason: "is a symbolic link (to \(target)) in the tree; Kiln does not follow links in a tree it reads, since they can lead out of it: make it a real \(last && kind == .regularFile ? "file" : "directory")")
            }
            if !last && type != S_IFDIR {
                close(fd)
                throw .badPath(path: walked, reason: "is not a directory in the tree")
            }
        }
        if let problem = Self.mismatch(fd, kind) {
            close(fd)
            throw .badPath(path: parts.isEmpty ? "/" : walked, reason: problem)
        }
        self.fd = fd
        self.inTree = "/" + parts.joined(separator: "/")
        self.host = parts.isEmpty ? root : root + "/" + parts.joined(separator: "/")
    }

    deinit { close(fd) }

    /// Linux's `O_PATH` (Glibc exports it only with `_GNU_SOURCE`).
    static let pathOnly: Int32 = 0o10000000

    private static func mismatch(_ fd: Int32, _ kind: Kind) -> String? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return "cannot stat: \(String(cString: strerror(errno)))" }
        let type = st.st_mode & S_IFMT
        switch kind {
        case .directory: return type == S_IFDIR ? nil : "is not a directory in the tree"
        case .regularFile: return type == S_IFREG ? nil : "is not a regular file in the tree"
        case .entry: return nil
        }
    }

    private static func linkTarget(_ fd: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlinkat(fd, "", &buffer, buffer.count - 1)
        guard n >= 0 else { return "?" }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
