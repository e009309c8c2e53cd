import Foundation
import StageOptions

#if canImport(Glibc)
import Glibc
#endif

/// `/etc/fstab` from a list of filesystems (osbuild's schema). Mountpoints
/// the tree lacks are created (root-owned, 0755), so that each one exists as
/// an empty directory in the filesystem above it.
package struct Fstab: Stage {
    package typealias Options = FstabOptions
    package typealias Filesystem = FstabOptions.Filesystem
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        var lines = [
            "# /etc/fstab: static file system information (written by Kiln).",
            "# <file system> <mount point> <type> <options> <dump> <pass>",
        ]
        for (i, fs) in options.filesystems.enumerated() {
            let sources = [
                fs.uuid.map { "UUID=\($0)" }, fs.label.map { "LABEL=\($0)" },
                fs.partuuid.map { "PARTUUID=\($0)" }, fs.device,
            ].compactMap { $0 }
            guard sources.count == 1 else {
                throw StageError.invalidOptions(reason: "\(Self.type): filesystems[\(i)] needs exactly one of uuid, label, partuuid, device")
            }
            guard fs.path.hasPrefix("/") || fs.path == "none" || fs.vfsType == "swap" else {
                throw StageError.invalidOptions(reason: "\(Self.type): filesystems[\(i)].path \"\(fs.path)\" must be absolute")
            }
            lines.append(
                [sources[0], fs.path, fs.vfsType, fs.options ?? "defaults", "\(fs.freq ?? 0)", "\(fs.passno ?? 0)"]
                    .joined(separator: " "))
        }
        try TreeFiles.write(lines.joined(separator: "\n") + "\n", to: "/etc/fstab", in: context.tree)
        for fs in options.filesystems where fs.path.hasPrefix("/") && fs.path != "/" && fs.vfsType != "swap" {
            try Self.makeMountpoint(fs.path, in: context.tree)
        }
    }

    /// Creates the directories of `path` that are missing; never follows a symbolic link.
    static func makeMountpoint(_ path: String, in tree: String) throws {
        var host = tree
        var inTree = ""
        for component in path.split(separator: "/") where component != "." {
            guard component != ".." else { throw StageError.badPath(path: path, reason: "must not contain \"..\"") }
            host += "/" + component
            inTree += "/" + component
            var st = stat()
            if lstat(host, &st) == 0 {
                guard st.st_mode & S_IFMT == S_IFDIR else {
                    throw StageError.treeInconsistent(
                        reason:
                            "\(type): mountpoint \(path): \(inTree) is not a directory in the tree (a symbolic link?); mount the filesystem somewhere else"
                    )
                }
            } else if mkdir(host, 0o755) != 0 {
                throw StageError.badPath(path: inTree, reason: "cannot create the mountpoint: \(String(cString: strerror(errno)))")
            } else {
                chmod(host, 0o755)
            }
        }
    }
}
