import Foundation

/// The tree's initramfs-tools configuration, read as mkinitramfs sources it:
/// `/etc/initramfs-tools/initramfs.conf`, then `conf.d` files (the package's
/// unless the admin overrides them), then `conf-hooks.d`.
package struct InitramfsConfig: Sendable {
    package var variables: [String: String] = [:]
    /// Files mkinitramfs copies into `/conf/conf.d` (in-tree paths, in order).
    package var extraConfFiles: [String] = []

    package static let confDir = "/etc/initramfs-tools"
    package static let shareDir = "/usr/share/initramfs-tools"

    package init(tree: TreeView) {
        let confDir = Self.confDir, shareDir = Self.shareDir
        apply(tree.readText(confDir + "/initramfs.conf") ?? "")
        func maybeAdd(_ path: String) {
            let name = (path as NSString).lastPathComponent
            guard tree.isRegularFile(path), ScriptOrder.acceptable(name), name.first.map({ $0.isLetter || $0.isNumber }) == true,
                  !name.contains(".dpkg-") else { return }
            extraConfFiles.append(path)
            apply(tree.readText(path) ?? "")
        }
        let adminConf = Set(tree.list(confDir + "/conf.d"))
        for name in tree.list(shareDir + "/conf.d") where !adminConf.contains(name) { maybeAdd(shareDir + "/conf.d/" + name) }
        for name in tree.list(confDir + "/conf.d") { maybeAdd(confDir + "/conf.d/" + name) }
        for name in tree.list(shareDir + "/conf-hooks.d") where tree.isRegularFile(shareDir + "/conf-hooks.d/" + name) {
            apply(tree.readText(shareDir + "/conf-hooks.d/" + name) ?? "")
        }
    }

    package subscript(_ key: String) -> String? { variables[key].flatMap { $0.isEmpty ? nil : $0 } }

    /// Plain `NAME=value` assignments (quotes stripped); anything else in the shell file is ignored.
    mutating func apply(_ text: String) {
        for raw in text.split(separator: "\n") {
            var line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("export ") { line = String(line.dropFirst(7)) }
            guard !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq])
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { continue }
            var value = String(line[line.index(after: eq)...])
            if let q = value.first, q == "\"" || q == "'" {
                value = String(value.dropFirst().prefix(while: { $0 != q }))
            } else {
                value = String(value.prefix(while: { $0 != " " && $0 != "#" && $0 != "\t" }))
            }
            variables[key] = value
        }
    }
}
