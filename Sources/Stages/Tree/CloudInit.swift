import Manifest
import StageOptions

/// `org.osbuild.cloud-init`: one drop-in under `/etc/cloud/cloud.cfg.d/`.
/// Each top-level key is a line of its own, as YAML's block style has it;
/// `datasource_list` is a flow list of bare names on one line, the only shape
/// `ds-identify` (a shell script run by cloud-init's systemd generator) reads.
/// With the list as JSON it read `"disabled"}}` and kept cloud-init enabled
/// without any data source, which failed four units at first boot on trixie.
/// Other values are written in YAML's flow style, strings double-quoted with
/// everything outside printable ASCII escaped (PyYAML refuses some control
/// characters, and folds U+0085/U+2028/U+2029 as line breaks).
package struct CloudInit: Stage {
    package typealias Options = CloudInitOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    /// Top-level keys this stage writes; anything else is most likely a typo.
    static let keys: Set<String> = [
        "datasource_list", "datasource", "network", "system_info", "reporting", "output",
        "ssh_pwauth", "disable_root", "preserve_hostname", "manage_etc_hosts", "ssh_deletekeys", "locale",
    ]

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let name = options.filename
        let valid =
            name.hasSuffix(".cfg") && name.count > 4 && name.count <= 255
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        guard valid else {
            throw StageError.invalidOptions(reason: "\(Self.type): options.filename: \"\(name)\" must be NAME.cfg (letters, digits, '-', '_', '.')")
        }
        for key in options.config.keys.sorted() where !Self.keys.contains(key) {
            throw StageError.invalidOptions(
                reason:
                    "\(Self.type): options.config.\(key): not a cloud-init key this stage writes; known: \(Self.keys.sorted().joined(separator: ", "))"
            )
        }
        try TreeFiles.write(try Self.yaml(options.config), to: "/etc/cloud/cloud.cfg.d/\(name)", in: context.tree)
    }

    /// The drop-in's text: one `key: value` line per top-level key, sorted.
    static func yaml(_ config: [String: JSONValue]) throws -> String {
        var lines = ["# written by kiln (\(type))"]
        for key in config.keys.sorted() {
            let value = config[key]!
            if key == "datasource_list" {
                let names = value.arrayValue?.compactMap(\.stringValue) ?? []
                guard let list = value.arrayValue, names.count == list.count,
                    names.allSatisfy({ ($0.first?.isLetter ?? false) && $0.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) } })
                else {
                    throw StageError.invalidOptions(
                        reason: "\(type): options.config.datasource_list must be a list of data source names (letters and digits, e.g. \"NoCloud\")")
                }
                lines.append("datasource_list: [\(names.joined(separator: ", "))]")
            } else {
                lines.append("\(key): " + flow(value))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A value in YAML's flow style.
    static func flow(_ v: JSONValue) -> String {
        switch v {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .int(let i): String(i)
        case .double(let d):
            // YAML 1.1 (PyYAML) reads a float only with a '.': 1e-05 would be a string.
            if !d.isFinite {
                d.isNaN ? ".nan" : (d > 0 ? ".inf" : "-.inf")
            } else if let e = "\(d)".firstIndex(where: { $0 == "e" || $0 == "E" }), !"\(d)"[..<e].contains(".") {
                "\(d)"[..<e] + ".0" + "\(d)"[e...]
            } else {
                "\(d)"
            }
        case .string(let s): quoted(s)
        case .array(let a): "[" + a.map(flow).joined(separator: ", ") + "]"
        case .object(let o): "{" + o.keys.sorted().map { quoted($0) + ": " + flow(o[$0]!) }.joined(separator: ", ") + "}"
        }
    }

    /// A double-quoted YAML string: `"` and `\\` escaped, anything outside printable ASCII as `\\uXXXX` or `\\UXXXXXXXX`.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case " "..."~": out.unicodeScalars.append(u)
            default: out += u.value <= 0xFFFF ? String(format: "\\u%04X", u.value) : String(format: "\\U%08X", u.value)
            }
        }
        return out + "\""
    }
}
