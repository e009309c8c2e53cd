import Foundation
import StageOptions

/// The console and X11 keyboard layout: `/etc/default/keyboard` (read by
/// console-setup, localectl and X) and `/etc/vconsole.conf`.
package struct Keymap: Stage {
    package typealias Options = KeymapOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let map = options.keymap
        guard !map.isEmpty, map.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw StageError.invalidOptions(reason: "\(Self.type): keymap \"\(map)\" is not a layout name such as us or de")
        }
        let parts = map.split(separator: "-", maxSplits: 1).map(String.init)
        let layout = parts[0]
        let variant = parts.count > 1 ? parts[1] : ""
        try TreeFiles.write(
            """
            # Written by Kiln (blueprint [customizations.locale] keyboard).
            XKBMODEL="pc105"
            XKBLAYOUT="\(layout)"
            XKBVARIANT="\(variant)"
            XKBOPTIONS=""
            BACKSPACE="guess"

            """, to: "/etc/default/keyboard", in: context.tree)
        try TreeFiles.write("KEYMAP=\(map)\n", to: "/etc/vconsole.conf", in: context.tree)
    }
}
