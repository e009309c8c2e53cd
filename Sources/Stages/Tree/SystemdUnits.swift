import Foundation
import StageOptions

/// Enables, disables and masks systemd units and sets the default target,
/// creating the symlinks `systemctl enable/disable/mask` would. Reads the
/// units' `[Install]` sections from the tree; runs nothing, so it works for
/// any architecture.
package struct SystemdUnits: Stage {
    package typealias Options = SystemdOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    /// Where systemd looks for system units, most specific first.
    static let unitDirectories = ["/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"]
    static let etc = "/etc/systemd/system"

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let tree = context.tree
        // Enable, then disable, then mask (osbuild's order): a unit the options
        // disable stays off even when an enabled unit's `Also=` names it
        // (systemd-networkd.service pulls in systemd-networkd-wait-online.service).
        for unit in options.enabledServices ?? [] {
            var seen: Set<String> = []
            try Self.enable(Self.normalized(unit), tree: tree, seen: &seen)
        }
        for unit in options.disabledServices ?? [] { try Self.disable(Self.normalized(unit), tree: tree) }
        for unit in options.maskedServices ?? [] {
            try TreeFiles.symlink("/dev/null", at: "\(Self.etc)/\(Self.normalized(unit))", in: tree)
        }
        if let target = options.defaultTarget {
            let name = target.contains(".") ? target : target + ".target"
            guard let path = Self.find(name, tree: tree) else { throw SystemdError.unknownUnit(name: name, option: "default_target") }
            try TreeFiles.symlink(path, at: "\(Self.etc)/default.target", in: tree)
        }
    }

    static func normalized(_ unit: String) throws -> String {
        guard !unit.isEmpty, !unit.contains("/") else {
            throw StageError.invalidOptions(reason: "\(type): \"\(unit)\" is not a unit name")
        }
        return unit.contains(".") ? unit : unit + ".service"
    }

    /// `foo@bar.service` → `foo@.service`.
    static func template(of unit: String) -> String? {
        guard let at = unit.firstIndex(of: "@"), let dot = unit.lastIndex(of: "."), at < dot,
            unit.index(after: at) != dot
        else { return nil }
        return String(unit[...at]) + String(unit[dot...])
    }

    /// The unit file's path inside the tree (not a mask), or nil.
    static func find(_ unit: String, tree: String) -> String? {
        for dir in unitDirectories {
            for name in [unit, template(of: unit)].compactMap({ $0 }) {
                let path = "\(dir)/\(name)"
                guard let host = try? TreePath.resolve(path, in: tree) else { continue }
                var st = stat()
                guard lstat(host, &st) == 0 else { continue }
                if (st.st_mode & S_IFMT) == S_IFLNK, let dest = try? FileManager.default.destinationOfSymbolicLink(atPath: host) {
                    if dest == "/dev/null" { continue }
                    // An alias (e.g. a unit linked under another name): follow it inside the tree.
                    if dir == etc { return dest.hasPrefix("/") ? dest : "\(dir)/\(dest)" }
                }
                return path
            }
        }
        return nil
    }

    /// `[Install]` keys → values (space-separated lists, empty assignment resets).
    static func installSection(_ text: String) -> [String: [String]] {
        var out: [String: [String]] = [:]
        var inInstall = false
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") {
                inInstall = line == "[Install]"
                continue
            }
            guard inInstall, !line.hasPrefix("#"), !line.hasPrefix(";"), let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            let values = line[line.index(after: eq)...].split(separator: " ").map(String.init)
            if values.isEmpty { out[key] = [] } else { out[key, default: []] += values }
        }
        return out
    }

    static func enable(_ unit: String, tree: String, seen: inout Set<String>) throws {
        guard seen.insert(unit).inserted else { return }
        guard let path = find(unit, tree: tree), let text = try TreeFiles.read(path, in: tree) else {
            throw SystemdError.unknownUnit(name: unit, option: "enabled_services")
        }
        let install = installSection(text)
        let isTemplate = template(of: unit) == nil && unit.contains("@.")
        var instance = unit
        if isTemplate {
            // A template enables its DefaultInstance=, if any.
            guard let def = install["DefaultInstance"]?.last else { return }
            instance = unit.replacingOccurrences(of: "@.", with: "@\(def).")
        }
        for (key, suffix) in [("WantedBy", ".wants"), ("RequiredBy", ".requires"), ("UpheldBy", ".upholds")] {
            for target in install[key] ?? [] {
                try TreeFiles.symlink(path, at: "\(etc)/\(target)\(suffix)/\(instance)", in: tree)
            }
        }
        for alias in install["Alias"] ?? [] where alias != unit {
            try TreeFiles.symlink(path, at: "\(etc)/\(alias)", in: tree)
        }
        for also in install["Also"] ?? [] { try enable(also, tree: tree, seen: &seen) }
    }

    /// Removes every symlink under /etc/systemd/system named `unit` or pointing to it (not masks).
    /// A unit that exists nowhere in the tree has nothing to disable: a
    /// blueprint may disable `cloud-init.service` for every image type,
    /// including those without cloud-init (and a type's extra may have been
    /// left out for a blueprint package).
    static func disable(_ unit: String, tree: String) throws {
        guard let path = find(unit, tree: tree) else { return }
        let root = try TreePath.resolve(etc, in: tree)
        guard let walker = FileManager.default.enumerator(atPath: root) else { return }
        let aliases = (try? TreeFiles.read(path, in: tree)).map { installSection($0)["Alias"] ?? [] } ?? []
        for case let rel as String in walker {
            let host = "\(root)/\(rel)"
            guard let dest = try? FileManager.default.destinationOfSymbolicLink(atPath: host), dest != "/dev/null" else { continue }
            let name = (rel as NSString).lastPathComponent
            let target = (dest as NSString).lastPathComponent
            if name == unit || target == unit || (rel.contains("/") == false && aliases.contains(name)) {
                try FileManager.default.removeItem(atPath: host)
            }
        }
    }
}
