import Foundation

/// Finds the shared libraries an ELF binary loads, the way the tree's own
/// dynamic loader would (`DT_RPATH`, `DT_RUNPATH`, the tree's `ld.so.conf`,
/// the multiarch default directories), reading the tree only.
package struct LibraryResolver: Sendable {
    package let tree: TreeView
    package let machine: UInt16
    /// Directories from the tree's `/etc/ld.so.conf` (with its includes), then the defaults.
    package let searchDirectories: [String]

    package init(tree: TreeView, machine: UInt16) {
        self.tree = tree
        self.machine = machine
        let triplet = Self.triplet(machine)
        var dirs = Self.ldSoConfDirectories(tree)
        for d in ["/lib/\(triplet)", "/usr/lib/\(triplet)", "/lib", "/usr/lib"] where !dirs.contains(d) { dirs.append(d) }
        searchDirectories = dirs
    }

    /// Debian's multiarch triplet for an ELF machine.
    package static func triplet(_ machine: UInt16) -> String {
        switch machine {
        case ELFFile.machineX86_64: "x86_64-linux-gnu"
        case ELFFile.machineAArch64: "aarch64-linux-gnu"
        default: "unknown-linux-gnu"
        }
    }

    static func ldSoConfDirectories(_ tree: TreeView) -> [String] {
        var seen = Set<String>(), dirs: [String] = []
        func parse(_ file: String, depth: Int) {
            guard depth < 8, seen.insert(file).inserted, let text = tree.readText(file) else { return }
            for raw in text.split(separator: "\n") {
                let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?
                    .trimmingCharacters(in: .whitespaces) ?? ""
                if line.isEmpty { continue }
                if line.hasPrefix("include") {
                    for pattern in line.dropFirst("include".count).split(separator: " ").map(String.init) {
                        let p = pattern.hasPrefix("/") ? pattern : ((file as NSString).deletingLastPathComponent + "/" + pattern)
                        let dir = (p as NSString).deletingLastPathComponent, glob = (p as NSString).lastPathComponent
                        for name in tree.list(dir) where fnmatch(glob, name, 0) == 0 { parse(dir + "/" + name, depth: depth + 1) }
                    }
                } else if line.hasPrefix("/") {
                    let d = TreeView.normalize(line)
                    if !dirs.contains(d) { dirs.append(d) }
                }
            }
        }
        parse("/etc/ld.so.conf", depth: 0)
        return dirs
    }

    /// Every file `binary` needs at run time: its interpreter and the closure
    /// of its `DT_NEEDED` libraries, as in-tree paths the loader would open (not yet symlink-resolved).
    /// Returns nil for files that are not ELF (scripts).
    package func closure(of binary: String) throws -> [String]? {
        let real = try tree.resolve(binary)
        guard let elf = try ELFFile(path: tree.host(real)) else { return nil }
        guard elf.machine == machine else { throw InitramfsError.wrongArchitecture(path: binary, machine: elf.machine, expected: machine) }
        var result: [String] = []
        if let interp = elf.interpreter {
            guard tree.isRegularFile(interp) else { throw InitramfsError.missingLibrary(name: interp, neededBy: binary, searched: ["PT_INTERP"]) }
            result.append(interp)
        }
        var queue: [(name: String, from: String, elf: ELFFile, origin: String)] =
            elf.needed.map { ($0, binary, elf, (binary as NSString).deletingLastPathComponent) }
        var found: [String: String] = [:]
        let exeRpath = elf.runpath.isEmpty ? elf.rpath : []
        while !queue.isEmpty {
            let item = queue.removeFirst()
            if found[item.name] != nil { continue }
            let path = try locate(item.name, requester: item.elf, executableRpath: exeRpath, origin: item.origin, neededBy: item.from)
            found[item.name] = path
            result.append(path)
            if let lib = try ELFFile(path: tree.host(try tree.resolve(path))) {
                queue += lib.needed.map { ($0, path, lib, (path as NSString).deletingLastPathComponent) }
            }
        }
        return result
    }

    private func locate(_ name: String, requester: ELFFile, executableRpath: [String], origin: String, neededBy: String) throws -> String {
        if name.contains("/") { return name }
        var dirs: [String] = []
        if requester.runpath.isEmpty { dirs += requester.rpath + executableRpath }
        dirs += requester.runpath
        dirs = dirs.map { $0.replacingOccurrences(of: "$ORIGIN", with: origin).replacingOccurrences(of: "${ORIGIN}", with: origin) }
        dirs += searchDirectories
        for dir in dirs where dir.hasPrefix("/") {
            let candidate = TreeView.normalize(dir + "/" + name)
            guard tree.isRegularFile(candidate), let real = try? tree.resolve(candidate),
                  ELFFile.header(atPath: tree.host(real))?.machine == machine else { continue }
            return candidate
        }
        throw InitramfsError.missingLibrary(name: name, neededBy: neededBy, searched: dirs)
    }
}
