import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A kernel's module metadata as depmod wrote it into the tree
/// (`modules.dep`, `modules.builtin`, `modules.alias`, `modules.softdep`),
/// answering what `modprobe --show-depends` would insert, without running modprobe.
package struct KernelModuleIndex: Sendable {
    /// In-tree directory `/lib/modules/<version>` (resolved).
    package let directory: String
    /// Normalised module name → path relative to `directory` and its dependencies (names).
    package let modules: [String: (path: String, deps: [String])]
    package let builtin: Set<String>
    /// Exact aliases → modules, and the wildcard ones (`pci:v…d*`) in file order.
    let exactAliases: [String: [String]]
    let patternAliases: [(pattern: String, module: String)]
    let softdeps: [String: (pre: [String], post: [String])]

    /// `-` and `_` are the same in module names.
    package static func normalize(_ name: String) -> String { name.replacingOccurrences(of: "-", with: "_") }

    /// The module name of a path such as `kernel/fs/ext4/ext4.ko.xz`.
    package static func name(ofPath path: String) -> String {
        let base = (path as NSString).lastPathComponent
        return normalize(String(base.prefix(while: { $0 != "." })))
    }

    package init(tree: TreeView, directory: String) throws {
        self.directory = directory
        guard let dep = tree.readText(directory + "/modules.dep") else {
            throw InitramfsError.stagingFailed(path: directory + "/modules.dep", reason: "missing; run depmod for this kernel in the tree")
        }
        var modules: [String: (String, [String])] = [:]
        for line in dep.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let path = String(line[..<colon])
            let deps = line[line.index(after: colon)...].split(separator: " ").map { Self.name(ofPath: String($0)) }
            modules[Self.name(ofPath: path)] = (path, deps)
        }
        self.modules = modules
        builtin = Set((tree.readText(directory + "/modules.builtin") ?? "").split(separator: "\n").map { Self.name(ofPath: String($0)) })
        var aliases: [(String, String)] = []
        for line in (tree.readText(directory + "/modules.alias") ?? "").split(separator: "\n") where line.hasPrefix("alias ") {
            let f = line.split(separator: " ")
            if f.count >= 3 { aliases.append((Self.normalize(String(f[1])), Self.normalize(String(f[2])))) }
        }
        var exact: [String: [String]] = [:], patterns: [(String, String)] = []
        for (pattern, module) in aliases {
            if pattern.contains(where: { "*?[".contains($0) }) { patterns.append((pattern, module)) } else { exact[pattern, default: []].append(module) }
        }
        exactAliases = exact
        patternAliases = patterns
        var softdeps: [String: ([String], [String])] = [:]
        for line in (tree.readText(directory + "/modules.softdep") ?? "").split(separator: "\n") where line.hasPrefix("softdep ") {
            let f = line.split(separator: " ").map(String.init)
            guard f.count >= 3 else { continue }
            var pre: [String] = [], post: [String] = [], mode = 0
            for t in f.dropFirst(2) {
                if t == "pre:" { mode = 1 } else if t == "post:" { mode = 2 }
                else if mode == 1 { pre.append(t) } else if mode == 2 { post.append(t) }
            }
            // kmod uses the first softdep line of a module and ignores later ones.
            let key = Self.normalize(f[1])
            if softdeps[key] == nil { softdeps[key] = (pre, post) }
        }
        self.softdeps = softdeps
    }

    /// Module names that `name` (a module name or an alias) stands for; empty for built-ins and unknown names.
    package func lookup(_ name: String) -> [String] {
        let n = Self.normalize(name)
        // kmod's order: modules.dep, then modules.alias, then modules.builtin.
        if modules[n] != nil { return [n] }
        var out: [String] = []
        for m in exactAliases[n] ?? [] where modules[m] != nil && !out.contains(m) { out.append(m) }
        for a in patternAliases where fnmatch(a.pattern, n, 0) == 0 && modules[a.module] != nil && !out.contains(a.module) { out.append(a.module) }
        return out
    }

    /// Whether `name` is a module, a built-in or an alias the kernel knows.
    package func knows(_ name: String) -> Bool {
        let n = Self.normalize(name)
        return modules[n] != nil || builtin.contains(n) || !lookup(n).isEmpty
    }

    /// Paths (relative to `directory`) `modprobe --show-depends` would insert for
    /// `names`, dependencies and soft dependencies included, each once.
    package func closure(_ names: [String]) -> [String] {
        var seen = Set<String>(), out: [String] = []
        func visit(_ module: String, depth: Int) {
            guard depth < 64, !seen.contains(module), let m = modules[module] else { return }
            seen.insert(module)
            let soft = softdeps[module]
            for p in soft?.pre ?? [] { for x in lookup(p) { visit(x, depth: depth + 1) } }
            for d in m.deps.reversed() { visit(d, depth: depth + 1) }
            out.append(m.path)
            for p in soft?.post ?? [] { for x in lookup(p) { visit(x, depth: depth + 1) } }
        }
        for n in names { for m in lookup(n) { visit(m, depth: 0) } }
        return out
    }
}
