/// `/etc/hostname`.
package struct Hostname: Stage {
    package static let type = "org.osbuild.hostname"
    package static let placement = Placement.tree

    package struct Options: Codable, Sendable {
        package var hostname: String
    }

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let name = options.hostname
        let valid = !name.isEmpty && name.count <= 253 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }
        guard valid else {
            throw StageError.invalidOptions(reason: "\(Self.type): hostname \"\(name)\" is not a valid host name (letters, digits, '-' and '.')")
        }
        try TreeFiles.write("\(name)\n", to: "/etc/hostname", in: context.tree)
    }
}
