import Foundation
import StageOptions

/// Scripts that run once, on the image's first boot, after the network is
/// up: `/usr/local/lib/kiln/first-boot/NN-name` and a oneshot
/// `kiln-first-boot.service` that runs them in order, logs to the journal and
/// leaves `/var/lib/kiln/first-boot.done` behind so they never run again.
package struct FirstBoot: Stage {
    package typealias Options = FirstBootOptions
    package typealias Script = FirstBootOptions.Script
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    static let directory = "/usr/local/lib/kiln/first-boot"
    static let stamp = "/var/lib/kiln/first-boot.done"
    static let unit = "kiln-first-boot.service"

    package func run(_ options: Options, in context: StageContext) async throws {
        var runner = "#!/bin/sh\n# Written by Kiln: runs the blueprint's first-boot scripts once, in order.\nstatus=0\n"
        for (i, s) in options.scripts.enumerated() {
            guard !s.name.isEmpty, s.name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
                throw StageError.invalidOptions(reason: "\(Self.type): scripts[\(i)].name \"\(s.name)\" must be letters, digits, '-', '_' or '.'")
            }
            let file = String(format: "%02d-%@", i + 1, s.name)
            let body = s.contents.hasPrefix("#!") ? s.contents : "#!/bin/sh\n" + s.contents
            try TreeFiles.write(body.hasSuffix("\n") ? body : body + "\n", to: "\(Self.directory)/\(file)", in: context.tree, mode: 0o755)
            let onFailure =
                s.ignoreFailure == true
                ? "echo \"first-boot: \(file) failed (ignored)\""
                : "echo \"first-boot: \(file) failed\"; status=1"
            runner += "echo \"first-boot: running \(file)\"\n\(Self.directory)/\(file) || { \(onFailure); }\n"
        }
        runner += "mkdir -p /var/lib/kiln && touch \(Self.stamp)\nexit $status\n"
        try TreeFiles.write(runner, to: "\(Self.directory)/run", in: context.tree, mode: 0o755)
        try TreeFiles.write(
            """
            # Written by Kiln: the blueprint's first-boot scripts.
            [Unit]
            Description=Kiln first-boot scripts
            Wants=network-online.target
            After=network-online.target
            ConditionPathExists=!\(Self.stamp)

            [Service]
            Type=oneshot
            ExecStart=\(Self.directory)/run
            RemainAfterExit=yes
            StandardOutput=journal+console

            [Install]
            WantedBy=multi-user.target

            """, to: "/etc/systemd/system/\(Self.unit)", in: context.tree)
    }
}
