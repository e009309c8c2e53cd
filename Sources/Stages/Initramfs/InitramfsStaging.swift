import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The directory an initramfs is assembled in, with initramfs-tools'
/// `copy_file`/`copy_exec` semantics: merged-/usr layout, symlinks kept as
/// relative links to a copied target, libraries resolved from the tree.
final class InitramfsStaging {
    let root: String
    let tree: TreeView
    let resolver: LibraryResolver

    init(root: String, tree: TreeView, resolver: LibraryResolver) {
        self.root = root
        self.tree = tree
        self.resolver = resolver
    }

    func host(_ path: String) -> String { root + TreeView.normalize(path) }

    /// `/bin/x`, `/sbin/x`, `/lib…/x` → `/usr/…`, as mkinitramfs' merged layout stores them.
    static func usrPath(_ path: String) -> String {
        let p = TreeView.normalize(path)
        let first = p.split(separator: "/").first.map(String.init) ?? ""
        return first == "bin" || first == "sbin" || first.hasPrefix("lib") ? "/usr" + p : p
    }

    func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(host(path), &st) == 0 || stat(host(path), &st) == 0
    }

    func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(host(path), &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }

    func makeDirectory(_ path: String) throws {
        do { try FileManager.default.createDirectory(atPath: host(path), withIntermediateDirectories: true) }
        catch { throw InitramfsError.stagingFailed(path: path, reason: "\(error)") }
    }

    func write(_ text: String, to path: String, mode: mode_t = 0o644) throws {
        try makeDirectory((path as NSString).deletingLastPathComponent)
        guard FileManager.default.createFile(atPath: host(path), contents: Data(text.utf8)) else {
            throw InitramfsError.stagingFailed(path: path, reason: "cannot create the file")
        }
        chmod(host(path), mode)
    }

    func symlink(_ target: String, at path: String) throws {
        try makeDirectory((path as NSString).deletingLastPathComponent)
        unlink(host(path))
        guard Glibc.symlink(target, host(path)) == 0 else {
            throw InitramfsError.stagingFailed(path: path, reason: String(cString: strerror(errno)))
        }
    }

    func hardlink(_ existing: String, at path: String) throws {
        try makeDirectory((path as NSString).deletingLastPathComponent)
        guard link(host(existing), host(path)) == 0 else {
            throw InitramfsError.stagingFailed(path: path, reason: String(cString: strerror(errno)))
        }
    }

    /// Copies the regular file at tree path `source` (already resolved) to `target`, keeping its mode.
    func copyBytes(from source: String, to target: String) throws {
        try makeDirectory((target as NSString).deletingLastPathComponent)
        var st = stat()
        guard stat(tree.host(source), &st) == 0, let data = FileManager.default.contents(atPath: tree.host(source)) else {
            throw InitramfsError.stagingFailed(path: source, reason: "cannot read it in the tree")
        }
        guard FileManager.default.createFile(atPath: host(target), contents: data) else {
            throw InitramfsError.stagingFailed(path: target, reason: "cannot create the file")
        }
        chmod(host(target), st.st_mode & 0o7777)
    }

    /// initramfs-tools' `copy_file`: copies `source` to `target` (a directory or
    /// a path; default the same path). A symlink becomes a relative link to its
    /// copied target. Returns false when the source is missing or the target exists.
    @discardableResult
    func copyFile(_ source: String, to destination: String? = nil) throws -> Bool {
        guard tree.isRegularFile(source) else { return false }
        var target = destination ?? source
        if isDirectory(target) || target.hasSuffix("/") { target += "/" + (source as NSString).lastPathComponent }
        target = Self.usrPath(target)
        if exists(target) { return false }
        let unresolvedFinal = try tree.resolve(source, followFinal: false)
        let real = try tree.resolve(source)
        if real != unresolvedFinal {
            let linkTarget = Self.usrPath(real)
            if linkTarget != target {
                try symlink(Self.relative(from: (target as NSString).deletingLastPathComponent, to: linkTarget), at: target)
            }
            target = linkTarget
            if exists(target) { return true }
        }
        try copyBytes(from: real, to: target)
        return true
    }

    /// Copies a file as it is in the tree (`cp -aP`): a symlink stays the same symlink.
    func copyVerbatim(_ source: String, to destination: String) throws {
        let parent = try tree.resolve((source as NSString).deletingLastPathComponent)
        let src = parent + "/" + (source as NSString).lastPathComponent
        if let link = tree.readLink(src) {
            try symlink(link, at: Self.usrPath(destination))
        } else if tree.isRegularFile(src) {
            unlink(host(Self.usrPath(destination)))
            try copyBytes(from: src, to: Self.usrPath(destination))
        }
    }

    /// initramfs-tools' `copy_exec`: the binary plus its interpreter and libraries.
    func copyExec(_ source: String, to destination: String? = nil) throws {
        guard tree.isRegularFile(source) else { throw InitramfsError.missingBinary(path: source, neededBy: "initramfs") }
        try copyFile(source, to: destination)
        guard let libraries = try resolver.closure(of: source) else { return }
        for lib in libraries {
            if (lib as NSString).lastPathComponent.hasPrefix("libpthread.so.") {
                let dir = (lib as NSString).deletingLastPathComponent
                for name in tree.list(dir) where name.hasPrefix("libgcc_s.so.") && name.count == "libgcc_s.so.1".count {
                    try copyExec(dir + "/" + name)
                }
            }
            try copyFile(lib)
        }
    }

    /// A relative path from directory `from` to `to` (both absolute), as `ln -r` makes it.
    static func relative(from: String, to: String) -> String {
        let a = TreeView.normalize(from).split(separator: "/"), b = TreeView.normalize(to).split(separator: "/")
        var i = 0
        while i < a.count, i < b.count, a[i] == b[i] { i += 1 }
        let up = Array(repeating: "..", count: a.count - i)
        let rest = b[i...].map(String.init)
        let parts = up + rest
        return parts.isEmpty ? "." : parts.joined(separator: "/")
    }
}
