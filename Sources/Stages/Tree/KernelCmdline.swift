/// `/etc/kernel/cmdline`: the root filesystem and extra kernel options.
package struct KernelCmdline: Stage {
    package static let type = "org.osbuild.kernel-cmdline"
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package struct Options: Codable, Sendable {
        package var rootFsUUID: String?
        package var kernelOpts: String?

        enum CodingKeys: String, CodingKey {
            case rootFsUUID = "root_fs_uuid"
            case kernelOpts = "kernel_opts"
        }
    }

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        var parts: [String] = []
        if let uuid = options.rootFsUUID { parts.append("root=UUID=\(uuid)") }
        if let opts = options.kernelOpts, !opts.isEmpty { parts.append(opts) }
        try TreeFiles.write(parts.joined(separator: " ") + "\n", to: "/etc/kernel/cmdline", in: context.tree)
    }
}
