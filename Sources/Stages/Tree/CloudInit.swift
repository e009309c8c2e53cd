import Manifest

/// `org.osbuild.cloud-init`: one drop-in under `/etc/cloud/cloud.cfg.d/`.
/// The configuration is written as JSON, which cloud-init's YAML reader takes.
package struct CloudInit: Stage {
    package static let type = "org.osbuild.cloud-init"
    package static let placement = Placement.tree

    package struct Options: Codable, Sendable {
        /// The drop-in's name, `NAME.cfg`.
        package var filename: String
        package var config: [String: JSONValue]
    }

    /// Top-level keys this stage writes; anything else is most likely a typo.
    static let keys: Set<String> = [
        "datasource_list", "datasource", "network", "system_info", "reporting", "output",
        "ssh_pwauth", "disable_root", "preserve_hostname", "manage_etc_hosts", "ssh_deletekeys", "locale",
    ]

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let name = options.filename
        let valid = name.hasSuffix(".cfg") && name.count > 4 && name.count <= 255
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        guard valid else {
            throw StageError.invalidOptions(reason: "\(Self.type): options.filename: \"\(name)\" must be NAME.cfg (letters, digits, '-', '_', '.')")
        }
        for key in options.config.keys.sorted() where !Self.keys.contains(key) {
            throw StageError.invalidOptions(reason: "\(Self.type): options.config.\(key): not a cloud-init key this stage writes; known: \(Self.keys.sorted().joined(separator: ", "))")
        }
        if let list = options.config["datasource_list"], list.arrayValue?.allSatisfy({ $0.stringValue != nil }) != true {
            throw StageError.invalidOptions(reason: "\(Self.type): options.config.datasource_list must be a list of data source names")
        }
        try TreeFiles.write("# written by kiln (\(Self.type))\n" + CanonicalJSON.encode(.object(options.config)) + "\n",
                            to: "/etc/cloud/cloud.cfg.d/\(name)", in: context.tree)
    }
}
