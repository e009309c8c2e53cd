import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Read-only view of a target tree that resolves symlinks as if the tree
/// were `/` (absolute link targets stay inside the tree), never touching the host's files.
package struct TreeView: Sendable {
    package let root: String

    package init(root: String) {
        self.root = root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root
    }

    /// Host path of an in-tree absolute path (no symlink resolution).
    package func host(_ path: String) -> String {
        path == "/" ? root : root + Self.normalize(path)
    }

    /// `realpath -ms`: lexical normalisation of an absolute path (`.`, `..`, duplicate slashes).
    package static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for c in path.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(c)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Resolves every symlink in `path` inside the tree (`readlink -f`); with
    /// `followFinal: false` the last component is kept as is (like `realpath -s` on it).
    package func resolve(_ path: String, followFinal: Bool = true) throws(InitramfsError) -> String {
        var pending = Self.normalize(path).split(separator: "/").map(String.init)
        var done: [String] = []
        var hops = 0
        while !pending.isEmpty {
            let c = pending.removeFirst()
            if c == "." { continue }
            if c == ".." { if !done.isEmpty { done.removeLast() }; continue }
            let candidate = "/" + (done + [c]).joined(separator: "/")
            if pending.isEmpty && !followFinal { done.append(c); break }
            if let target = readLink(candidate) {
                hops += 1
                if hops > 40 { throw .symlinkLoop(path: path) }
                let parts = target.split(separator: "/").map(String.init)
                if target.hasPrefix("/") { done = [] }
                pending = parts + pending
            } else {
                done.append(c)
            }
        }
        return "/" + done.joined(separator: "/")
    }

    /// The target of the symlink at `path` (in-tree), or nil when it is not a symlink.
    package func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink(host(path), &buf, 4096)
        guard n >= 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    package func lstatMode(_ path: String) -> mode_t? {
        var st = stat()
        return lstat(host(path), &st) == 0 ? st.st_mode : nil
    }

    /// Whether `path` exists after resolving symlinks.
    package func exists(_ path: String) -> Bool {
        guard let p = try? resolve(path) else { return false }
        return lstatMode(p) != nil
    }

    package func isRegularFile(_ path: String) -> Bool {
        guard let p = try? resolve(path), let m = lstatMode(p) else { return false }
        return m & S_IFMT == S_IFREG
    }

    package func isDirectory(_ path: String) -> Bool {
        guard let p = try? resolve(path), let m = lstatMode(p) else { return false }
        return m & S_IFMT == S_IFDIR
    }

    /// Names in the directory `path` (resolved), sorted by byte order; empty when it is no directory.
    package func list(_ path: String) -> [String] {
        guard let p = try? resolve(path) else { return [] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: host(p))) ?? []
        return names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    package func read(_ path: String) -> Data? {
        guard let p = try? resolve(path) else { return nil }
        return FileManager.default.contents(atPath: host(p))
    }

    package func readText(_ path: String) -> String? {
        read(path).map { String(decoding: $0, as: UTF8.self) }
    }
}
