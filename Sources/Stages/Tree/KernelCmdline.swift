import StageOptions

/// `/etc/kernel/cmdline`: the root filesystem and extra kernel options.
package struct KernelCmdline: Stage {
    package typealias Options = KernelCmdlineOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        var parts: [String] = []
        if let uuid = options.rootFsUUID { parts.append("root=UUID=\(uuid)") }
        if let opts = options.kernelOpts, !opts.isEmpty { parts.append(opts) }
        try TreeFiles.write(parts.joined(separator: " ") + "\n", to: "/etc/kernel/cmdline", in: context.tree)
    }
}
