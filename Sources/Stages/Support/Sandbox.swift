/// Runs a tree's own programs (maintainer scripts, `locale-gen`,
/// `update-ca-certificates`, `firewall-offline-cmd`) inside the tree, in a
/// sandbox of their own: `bwrap` makes the tree the root of a new mount
/// namespace (the host's file systems are not in it at all, so no `..`,
/// `/proc/1/root` or second `chroot` leads out), with a fresh `/proc`, a
/// minimal `/dev`, a read-only `/sys` and an empty `/run`, in new PID, IPC,
/// UTS, cgroup and network namespaces (loopback only: no stage needs the
/// network, the executor fetches every source beforehand). The programs run
/// as root with the capabilities package installation needs and none that
/// reach past the tree: no mounts, no devices, no modules, no raw I/O, no
/// ptrace, no `open_by_handle_at`. Nothing of the caller's environment goes
/// in; nothing stays mounted afterwards, and when Kiln stops the command
/// (cancel, stage timeout) the whole namespace dies with it.
package struct Sandbox: Sendable {
    package let tree: String
    package let commands: CommandRunner

    package init(tree: String, commands: CommandRunner) {
        self.tree = tree
        self.commands = commands
    }

    /// Host name inside the sandbox: the builder's own never reaches an image
    /// (postfix, exim and others read it while they are configured).
    package static let hostname = "localhost"

    /// Capabilities the programs keep (Docker's default set without
    /// `CAP_MKNOD`): owners, modes and file capabilities (`setcap` in ping's
    /// postinst), users and groups, signals. Everything else is dropped.
    package static let capabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
        "CAP_SETPCAP", "CAP_SETFCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE",
    ]

    /// The environment every program starts with (a caller's values are added).
    static let baseEnvironment = [
        "PATH": CommandRunner.basePath, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "HOME": "/root", "TMPDIR": "/tmp",
        "DEBIAN_FRONTEND": "noninteractive", "DEBCONF_NONINTERACTIVE_SEEN": "true",
    ]

    /// `bwrap`'s command line for `argv` run inside the tree.
    package func commandLine(_ argv: [String], environment: [String: String] = [:]) -> [String] {
        ["bwrap", "--bind", tree, "/", "--proc", "/proc", "--dev", "/dev", "--ro-bind", "/sys", "/sys", "--tmpfs", "/run"]
            + Self.confinement(environment) + argv
    }

    /// `bwrap`'s command line for the host's own program `argv` working on the
    /// tree from outside (`dpkg --root`, which runs each package's preinst
    /// chrooted into the tree). The sandbox's root holds only the host's
    /// `/usr` and what a host tool reads in `/etc` (`/etc/dpkg`, the user and
    /// group names), read-only; the tree at its own path, with its API file
    /// systems; and `readOnly` (the packages). A script that leaves the chroot
    /// finds nothing else: no keys, no state, no other tree.
    package func hostCommandLine(_ argv: [String], readOnly: [String], environment: [String: String] = [:]) -> [String] {
        var line = ["bwrap", "--ro-bind", "/usr", "/usr"]
        for link in ["/bin", "/sbin", "/lib", "/lib64", "/etc/dpkg", "/etc/passwd", "/etc/group"] {
            line += ["--ro-bind-try", link, link]
        }
        line += ["--tmpfs", "/tmp", "--bind", tree, tree, "--proc", tree + "/proc", "--dev", tree + "/dev",
                 "--ro-bind", "/sys", tree + "/sys", "--tmpfs", tree + "/run"]
        for path in Set(readOnly).sorted() { line += ["--ro-bind", path, path] }
        return line + Self.confinement(environment) + argv
    }

    /// The namespaces, capabilities and environment both kinds share, up to `--`.
    static func confinement(_ environment: [String: String]) -> [String] {
        var line = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup-try",
                    "--hostname", hostname, "--die-with-parent", "--chdir", "/", "--cap-drop", "ALL"]
        for cap in capabilities { line += ["--cap-add", cap] }
        line.append("--clearenv")
        var env = baseEnvironment
        env.merge(environment) { _, b in b }
        env["PATH"] = CommandRunner.basePath
        for (k, v) in env.sorted(by: { $0.key < $1.key }) { line += ["--setenv", k, v] }
        return line + ["--"]
    }

    /// Runs `argv` inside the tree (a target binary runs emulated when the
    /// tree is of another architecture and binfmt allows it).
    package func run(_ argv: [String], environment: [String: String] = [:]) async throws {
        try await commands.run(commandLine(argv, environment: environment))
    }

    /// Runs `argv` inside the tree and returns its standard output.
    package func output(_ argv: [String], environment: [String: String] = [:]) async throws -> String {
        try await commands.output(commandLine(argv, environment: environment))
    }
}
