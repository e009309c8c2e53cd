import Manifest
import StageOptions

/// `/etc/hostname`.
package struct Hostname: Stage {
    package typealias Options = HostnameOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let name = options.hostname
        if let problem = HostName.problem(name) {
            throw StageError.invalidOptions(reason: "\(Self.type): hostname: \(problem)")
        }
        try TreeFiles.write("\(name)\n", to: "/etc/hostname", in: context.tree)
    }
}
