import Foundation
import StageOptions

/// sshd settings in a drop-in, `/etc/ssh/sshd_config.d/50-kiln.conf`. Debian's
/// sshd_config includes the drop-ins before its own settings and sshd keeps
/// the first value it reads, so these win.
package struct SSHDConfig: Stage {
    package typealias Options = SSHDConfigOptions
    package typealias Setting = SSHDConfigOptions.Setting
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        var text = "# Written by Kiln (blueprint [customizations.sshd]).\n"
        for s in options.settings {
            guard !s.keyword.isEmpty, s.keyword.allSatisfy({ $0.isASCII && $0.isLetter }),
                !s.value.isEmpty, !s.value.contains("\n")
            else {
                throw StageError.invalidOptions(reason: "\(Self.type): \"\(s.keyword) \(s.value)\" is not an sshd_config setting")
            }
            text += "\(s.keyword) \(s.value)\n"
        }
        guard TreeFiles.exists("/etc/ssh/sshd_config", in: context.tree) else {
            throw StageError.treeInconsistent(reason: "\(Self.type): the tree has no /etc/ssh/sshd_config; add the openssh-server package")
        }
        try TreeFiles.write(text, to: "/etc/ssh/sshd_config.d/50-kiln.conf", in: context.tree)
    }
}
