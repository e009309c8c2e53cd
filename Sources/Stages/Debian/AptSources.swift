import Foundation
import StageOptions

/// `/etc/apt/sources.list.d/debian.sources` in deb822 format.
package struct AptSources: Stage {
    package typealias Options = AptSourcesOptions
    package typealias Source = AptSourcesOptions.Source
    package typealias Extra = AptSourcesOptions.Extra
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        try TreeFiles.write(Self.render(options.sources), to: "/etc/apt/sources.list.d/debian.sources", in: context.tree)
        if let old = try TreeFiles.read("/etc/apt/sources.list", in: context.tree),
            old.split(separator: "\n").allSatisfy({ $0.trimmingCharacters(in: .whitespaces).isEmpty })
        {
            try? FileManager.default.removeItem(atPath: try context.path("/etc/apt/sources.list"))
        }
        for (i, e) in (options.extra ?? []).enumerated() {
            guard !e.id.isEmpty, e.id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }),
                e.id != "debian", !e.uris.isEmpty, !e.suites.isEmpty
            else {
                throw StageError.invalidOptions(
                    reason: "\(Self.type): extra[\(i)] needs an id of letters, digits, '-', '_', '.' (not \"debian\"), uris and suites")
            }
            guard e.trusted == true || e.key?.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") == true else {
                throw StageError.invalidOptions(reason: "\(Self.type): extra[\(i)] (\(e.id)) needs an ASCII-armored key or trusted = true")
            }
            var lines = ["Types: deb", "URIs: " + e.uris.joined(separator: " "), "Suites: " + e.suites.joined(separator: " ")]
            if let c = e.components, !c.isEmpty { lines.append("Components: " + c.joined(separator: " ")) }
            if let key = e.key {
                try TreeFiles.write(key.hasSuffix("\n") ? key : key + "\n", to: "/etc/apt/keyrings/\(e.id).asc", in: context.tree)
                lines.append("Signed-By: /etc/apt/keyrings/\(e.id).asc")
            }
            if e.trusted == true { lines.append("Trusted: yes") }
            if e.enabled == false { lines.append("Enabled: no") }
            try TreeFiles.write(lines.joined(separator: "\n") + "\n", to: "/etc/apt/sources.list.d/\(e.id).sources", in: context.tree)
            if let pin = e.preferences {
                let fields = ["Package", "Pin", "Pin-Priority", "Explanation"]
                for line in pin.split(separator: "\n") where !fields.contains(where: { line.hasPrefix($0 + ": ") }) {
                    throw StageError.invalidOptions(
                        reason: "\(Self.type): extra[\(i)].preferences: \"\(line)\" is not a Package/Pin/Pin-Priority line")
                }
                try TreeFiles.write(pin.hasSuffix("\n") ? pin : pin + "\n", to: "/etc/apt/preferences.d/\(e.id).pref", in: context.tree)
            }
        }
    }

    static func render(_ sources: [Source]) throws -> String {
        try sources.enumerated().map { i, s in
            for (field, values) in [("uris", s.uris), ("suites", s.suites)] where values.isEmpty {
                throw StageError.invalidOptions(reason: "\(type): sources[\(i)].\(field) must not be empty")
            }
            var lines = ["Types: deb", "URIs: " + s.uris.joined(separator: " "), "Suites: " + s.suites.joined(separator: " ")]
            if !s.components.isEmpty { lines.append("Components: " + s.components.joined(separator: " ")) }
            if let key = s.signedBy { lines.append("Signed-By: \(key)") }
            return lines.joined(separator: "\n") + "\n"
        }.joined(separator: "\n")
    }
}
