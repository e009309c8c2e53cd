import Foundation
import StageOptions

/// NTP servers for systemd-timesyncd: a drop-in under `/etc/systemd/timesyncd.conf.d`.
package struct Timesyncd: Stage {
    package typealias Options = TimesyncdOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        for s in options.servers where s.isEmpty || s.contains(where: { $0.isWhitespace || $0 == "#" }) {
            throw StageError.invalidOptions(reason: "\(Self.type): \"\(s)\" is not a host name or address")
        }
        guard !options.servers.isEmpty else { return }
        try TreeFiles.write(
            "# Written by Kiln (blueprint [customizations.timezone] ntpservers).\n[Time]\nNTP=\(options.servers.joined(separator: " "))\n",
            to: "/etc/systemd/timesyncd.conf.d/50-kiln.conf", in: context.tree)
    }
}
