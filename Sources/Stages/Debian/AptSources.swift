import Foundation

/// `/etc/apt/sources.list.d/debian.sources` in deb822 format.
package struct AptSources: Stage {
    package static let type = "org.kiln.apt.sources"
    package static let placement = Placement.tree

    package struct Source: Codable, Sendable {
        package var uris: [String]
        package var suites: [String]
        package var components: [String]
        package var signedBy: String?

        enum CodingKeys: String, CodingKey {
            case uris, suites, components
            case signedBy = "signed_by"
        }
    }

    package struct Options: Codable, Sendable {
        package var sources: [Source]
    }

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        try TreeFiles.write(Self.render(options.sources), to: "/etc/apt/sources.list.d/debian.sources", in: context.tree)
        if let old = try TreeFiles.read("/etc/apt/sources.list", in: context.tree),
           old.split(separator: "\n").allSatisfy({ $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            try? FileManager.default.removeItem(atPath: try context.path("/etc/apt/sources.list"))
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
