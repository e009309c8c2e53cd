import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Every mount Kiln made and has not yet released, so that a failure or
/// Ctrl-C can release them all.
package final class MountTable: @unchecked Sendable {
    package static let shared = MountTable()
    private let lock = NSLock()
    private var active: [String] = []

    package func add(_ path: String) { lock.withLock { active.append(path) } }
    package func remove(_ path: String) { lock.withLock { active.removeAll { $0 == path } } }

    /// Unmounts every mount at or below `prefix`, newest first (before a work
    /// directory is removed, so that a removal never reaches a host directory).
    package func release(under prefix: String) {
        release { $0 == prefix || $0.hasPrefix(prefix + "/") }
    }

    /// Unmounts everything still mounted, newest first (used on signals).
    package func releaseAll() { release { _ in true } }

    private func release(where matches: (String) -> Bool) {
        let paths = lock.withLock { () -> [String] in
            let p = active.filter(matches)
            active.removeAll(where: matches)
            return p
        }
        for p in paths.reversed() { _ = umount2(p, Int32(MNT_DETACH)) }
    }
}

/// Runs programs inside a tree with /proc, /sys, /dev and /run available,
/// and releases every mount afterwards, whether the work succeeded or not.
package struct Chroot: Sendable {
    package let tree: String
    package let commands: CommandRunner

    package init(tree: String, commands: CommandRunner) {
        self.tree = tree
        self.commands = commands
    }

    /// Mounts the API filesystems, runs `body`, and unmounts them.
    package func with<T: Sendable>(_ body: (Chroot) async throws -> T) async throws -> T {
        let mounts = MountSet(commands: commands)
        return try await mounts.releasing {
            for (args, target) in [(["-t", "proc", "proc"], "/proc"),
                                   (["-t", "sysfs", "sysfs", "-o", "ro"], "/sys"),
                                   (["--bind", "/dev"], "/dev"),
                                   (["-t", "devpts", "devpts", "-o", "newinstance,ptmxmode=0666"], "/dev/pts"),
                                   (["-t", "tmpfs", "tmpfs", "-o", "mode=0755"], "/run")] {
                try FileManager.default.createDirectory(atPath: tree + target, withIntermediateDirectories: true)
                // A link in the tree's place would put the mount on the host's directory.
                let mountpoint = try ConfinedPath(target, in: tree, kind: .directory)
                try await mounts.mount(args, at: mountpoint.host)
            }
            return try await body(self)
        }
    }

    /// Runs `argv` inside the tree (a target binary runs emulated when the
    /// tree is of another architecture and binfmt allows it).
    package func run(_ argv: [String], environment: [String: String] = [:]) async throws {
        var env = ["DEBIAN_FRONTEND": "noninteractive", "DEBCONF_NONINTERACTIVE_SEEN": "true",
                   "HOME": "/root", "TMPDIR": "/tmp"]
        env.merge(environment) { _, b in b }
        try await commands.run(["chroot", tree] + argv, environment: env)
    }

    package func output(_ argv: [String], environment: [String: String] = [:]) async throws -> String {
        var env = ["DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"]
        env.merge(environment) { _, b in b }
        return try await commands.output(["chroot", tree] + argv, environment: env)
    }
}
