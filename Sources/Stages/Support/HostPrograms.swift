/// The host programs Kiln may start, by name: argv[0] of every command a
/// `CommandRunner` runs is one of these, found on `CommandRunner.basePath`.
/// A path, or any other name, is refused before anything is started, so no
/// value from a manifest or a tree can choose a program the host runs.
package struct HostPrograms: Sendable {
    package let names: Set<String>

    package init(_ names: Set<String>) { self.names = names }

    /// What the stages, the executor and the store run.
    package static let stages = HostPrograms([
        "bash", "bwrap", "chown", "cp", "curl", "depmod", "dpkg", "dpkg-divert", "dpkg-query", "du", "fallocate",
        "grub-mkimage", "gzip",
        "losetup", "lz4", "mcopy", "mkfs.ext4", "mkfs.fat", "mkfs.xfs", "mkswap", "mount", "qemu-img",
        "rm", "sfdisk", "sh", "sha256sum", "tar", "truncate", "umount", "unshare", "xz", "zstd",
    ])

    /// These programs and `more` (test tools that inspect what the stages made).
    package func adding(_ more: Set<String>) -> HostPrograms { HostPrograms(names.union(more)) }

    /// Throws unless `argv[0]` is one of the names.
    package func check(_ argv: [String]) throws(StageError) {
        guard let program = argv.first else { throw .programNotAllowed(program: "", allowed: names.sorted()) }
        guard names.contains(program) else { throw .programNotAllowed(program: program, allowed: names.sorted()) }
    }
}
