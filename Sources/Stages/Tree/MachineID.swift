import Foundation
import StageOptions

/// `/etc/machine-id`, with osbuild's semantics: `yes` writes `uninitialized`
/// (a new ID is generated at boot and `ConditionFirstBoot=` holds), `no`
/// leaves an empty file (a new ID, not a first boot), `preserve` keeps the
/// file the tree has. A file copy at `/var/lib/dbus/machine-id` is removed
/// so that D-Bus follows the regenerated ID.
package struct MachineID: Stage {
    package typealias Options = MachineIDOptions
    package typealias FirstBoot = MachineIDOptions.FirstBoot
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        switch options.firstBoot {
        case .yes: try TreeFiles.write("uninitialized\n", to: "/etc/machine-id", in: context.tree, mode: 0o444)
        case .no: try TreeFiles.write("", to: "/etc/machine-id", in: context.tree, mode: 0o444)
        case .preserve:
            guard try TreeFiles.read("/etc/machine-id", in: context.tree) != nil else {
                throw StageError.treeInconsistent(
                    reason: "\(Self.type): /etc/machine-id cannot be preserved: the tree has none; use first-boot \"yes\"")
            }
            return
        }
        let dbus = try context.path("/var/lib/dbus/machine-id")
        var st = stat()
        if lstat(dbus, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { try FileManager.default.removeItem(atPath: dbus) }
    }
}
