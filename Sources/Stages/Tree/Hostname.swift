import Manifest

/// `/etc/hostname`.
package struct Hostname: Stage {
    package static let type = "org.osbuild.hostname"
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package struct Options: Codable, Sendable {
        package var hostname: String
    }

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let name = options.hostname
        if let problem = HostName.problem(name) {
            throw StageError.invalidOptions(reason: "\(Self.type): hostname: \(problem)")
        }
        try TreeFiles.write("\(name)\n", to: "/etc/hostname", in: context.tree)
    }
}
