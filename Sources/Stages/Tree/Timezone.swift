import Foundation
import StageOptions

/// `/etc/localtime` → `/usr/share/zoneinfo/<zone>` and `/etc/timezone`.
package struct Timezone: Stage {
    package typealias Options = TimezoneOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let zone = options.zone
        guard !zone.isEmpty, !zone.hasPrefix("/"), !zone.split(separator: "/").contains("..") else {
            throw StageError.invalidOptions(reason: "\(Self.type): zone \"\(zone)\" is not a time zone name like Europe/Berlin")
        }
        let file = "/usr/share/zoneinfo/\(zone)"
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: try context.path(file), isDirectory: &isDir), !isDir.boolValue else {
            throw StageError.treeInconsistent(
                reason: "\(Self.type): time zone \"\(zone)\": \(file) does not exist in the tree; check the name or install the tzdata package")
        }
        try TreeFiles.symlink(file, at: "/etc/localtime", in: context.tree)
        try TreeFiles.write("\(zone)\n", to: "/etc/timezone", in: context.tree)
    }
}
