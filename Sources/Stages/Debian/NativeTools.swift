import Foundation
import Manifest
#if canImport(Glibc)
import Glibc
#endif

/// Lets architecture-neutral programs run natively inside a foreign-architecture
/// chroot while maintainer scripts run.
///
/// Emulating a shell or perl costs a qemu-user start and a fresh code
/// translation per process, and maintainer scripts start thousands of them.
/// When the tree is of the host's own Debian release (so every tool is the very
/// same version), the host's x86_64 interpreters and file tools are
/// bind-mounted over the tree's, and the host's x86_64 libraries are made
/// visible at their multiarch paths (`/usr/lib/x86_64-linux-gnu`,
/// `/usr/lib64`), which never collide with an arm64 tree's. Programs whose
/// behaviour depends on the architecture (dpkg, ldconfig, uname, the
/// packages' own binaries) stay the tree's and run emulated. Everything is
/// unmounted and removed again afterwards; the tree keeps no trace.
struct NativeTools {
    /// Interpreters and file tools that behave the same on every architecture.
    static let tools = [
        "dash", "bash", "perl", "sed", "grep", "mawk", "cat", "cp", "mv", "rm", "ln", "mkdir", "rmdir", "chmod",
        "chown", "touch", "find", "xargs", "sort", "cut", "tr", "head", "tail", "readlink", "basename", "dirname",
        "mktemp", "wc", "expr", "env", "stat", "cmp", "diff", "tee", "sleep", "true", "false", "printf", "echo",
    ].map { "/usr/bin/" + $0 }

    /// Host library directories the native tools need, as seen from inside the tree.
    static let libraryDirectories = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64"]

    let tree: String
    let commands: CommandRunner

    /// Whether the trick applies: a foreign tree of the host's release, on an x86_64 host.
    static func applies(release: String, foreign: Bool) -> Bool {
        guard foreign, Architecture.host == .x86_64 else { return false }
        let osRelease = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
        let codename = osRelease.split(separator: "\n").first { $0.hasPrefix("VERSION_CODENAME=") }
            .map { String($0.dropFirst("VERSION_CODENAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        return codename == release && FileManager.default.fileExists(atPath: "/usr/lib64/ld-linux-x86-64.so.2")
    }

    /// Mounts the native tools, runs `body`, and always removes them again.
    func with<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        let fm = FileManager.default
        let mounts = MountSet(commands: commands)
        var created: [String] = []  // directories and links to remove afterwards, newest last
        defer {
            // After the unmounts; never a recursive removal: these were mount points of host directories.
            for p in created.reversed() where unlink(p) != 0 { _ = rmdir(p) }
        }
        return try await mounts.releasing {
            for dir in Self.libraryDirectories {
                // An x86_64 directory in a foreign tree would be unexpected: leave it alone.
                if TreeFiles.exists(dir, in: tree) { continue }
                // Created in the tree's own parent directory, never through a link out of it.
                let target = try ConfinedPath((dir as NSString).deletingLastPathComponent, in: tree, kind: .directory).host
                    + "/" + (dir as NSString).lastPathComponent
                try fm.createDirectory(atPath: target, withIntermediateDirectories: false)
                created.append(target)
                try await mounts.bindReadOnly(dir, at: target)
            }
            // The x86_64 loader is found at /lib64/ld-linux-x86-64.so.2.
            var st = stat()
            if lstat(tree + "/lib64", &st) != 0 {
                guard Glibc.symlink("usr/lib64", tree + "/lib64") == 0 else {
                    throw StageError.badPath(path: "/lib64", reason: "cannot link: \(String(cString: strerror(errno)))")
                }
                created.append(tree + "/lib64")
            }
            for tool in Self.tools {
                // Only regular files reached without a link: a symlink in the tree (e.g. to an alternative) stays as it is.
                guard let target = try? ConfinedPath(tool, in: tree, kind: .regularFile), fm.fileExists(atPath: tool) else { continue }
                try await mounts.bindReadOnly(tool, at: target.host)
            }
            return try await body()
        }
    }
}
