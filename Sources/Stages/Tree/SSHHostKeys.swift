import Foundation
import StageOptions

/// Removes the SSH host keys openssh-server's postinst made while the tree
/// was built (every machine from one image would share them) and installs
/// `kiln-ssh-keygen.service`, which makes new ones with `ssh-keygen -A` on
/// the first boot, before sshd starts.
package struct SSHHostKeys: Stage {
    package typealias Options = SSHHostKeysOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    static let unit = "kiln-ssh-keygen.service"

    package func run(_ options: Options, in context: StageContext) async throws {
        let dir = try context.path("/etc/ssh")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        where name.hasPrefix("ssh_host_") && (name.hasSuffix("_key") || name.hasSuffix("_key.pub")) {
            try FileManager.default.removeItem(atPath: dir + "/" + name)
        }
        try TreeFiles.write(
            """
            # Written by Kiln: every machine gets its own SSH host keys.
            [Unit]
            Description=Generate SSH host keys
            Before=ssh.service
            ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

            [Service]
            Type=oneshot
            ExecStart=/usr/bin/ssh-keygen -A

            [Install]
            WantedBy=ssh.service

            """, to: "/etc/systemd/system/\(Self.unit)", in: context.tree)
    }
}
