/// Paths in the image: canonical form, and where mountpoints, directories and
/// files may go. The lists follow osbuild's path policies (images
/// `pkg/policies`), with the Debian additions marked.
extension BlueprintRules {
    /// An absolute path with no empty, `.` or `..` components, no trailing '/' and no control characters.
    package static func canonicalPathProblem(_ path: String, example: String) -> String? {
        guard path.hasPrefix("/") else { return "\"\(path)\" is not an absolute path; give one such as \"\(example)\"" }
        if path.contains(where: { $0.isNewline || $0 == "\0" || ($0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } ?? false) }) {
            return "\"\(path.debugDescription.dropFirst().dropLast())\" contains a control character; give a plain path such as \"\(example)\""
        }
        let canonical = canonicalized(path)
        if canonical != path { return "\"\(path)\" is not a canonical path; write \"\(canonical)\"" }
        return nil
    }

    /// `/a//b/./c/../` → `/a/b`.
    static func canonicalized(_ path: String) -> String {
        var parts: [Substring] = []
        for p in path.split(separator: "/") {
            if p == "." { continue }
            if p == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(p)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Allowed and denied path prefixes: the longest entry that is the path or
    /// one of its parents decides. `exact` allows the entry itself but nothing below it.
    package struct PathPolicy: Sendable {
        package struct Rule: Sendable {
            var deny = false
            var exact = false
            var why: String
        }
        package var rules: [String: Rule]

        /// nil if `path` (canonical) is allowed, else why not.
        package func problem(_ path: String) -> String? {
            var probe = path
            while true {
                if let rule = rules[probe] {
                    if rule.deny { return probe == path ? rule.why : "it is below \(probe): \(rule.why)" }
                    if rule.exact && probe != path { return "it is below \(probe): \(rule.why)" }
                    return nil
                }
                if probe == "/" { return nil }
                let parent = probe[..<(probe.lastIndex(of: "/") ?? probe.startIndex)]
                probe = parent.isEmpty ? "/" : String(parent)
            }
        }
    }

    private static let mergedUsr = "on Debian it is a symlink into /usr (merged /usr)"
    private static let apiFS = "the kernel and systemd mount an API filesystem there"

    /// Mountpoints for `[customizations.disk]`.
    package static let diskMountpoints = PathPolicy(rules: [
        "/": .init(why: ""),
        "/etc": .init(deny: true, why: "/etc must be on the root filesystem"),
        "/usr": .init(exact: true, why: "filesystems below /usr cannot be mounted before systemd leaves the initramfs; mount /usr itself or use another directory"),
        "/sys": .init(deny: true, why: apiFS), "/proc": .init(deny: true, why: apiFS),
        "/dev": .init(deny: true, why: apiFS), "/run": .init(deny: true, why: apiFS),
        "/bin": .init(deny: true, why: mergedUsr), "/sbin": .init(deny: true, why: mergedUsr),
        "/lib": .init(deny: true, why: mergedUsr), "/lib64": .init(deny: true, why: mergedUsr),
        "/lib32": .init(deny: true, why: mergedUsr), "/libx32": .init(deny: true, why: mergedUsr),  // Debian
        "/lost+found": .init(deny: true, why: "it belongs to e2fsck"),
        "/sysroot": .init(deny: true, why: "systemd uses it while booting from the initramfs"),
        "/var/run": .init(deny: true, why: "it is a symlink to /run, a tmpfs"),
        "/var/lock": .init(deny: true, why: "it is a symlink to /run/lock, a tmpfs"),
    ])

    /// Mountpoints for `[[customizations.filesystem]]`: as the disk's, without `/boot/efi`.
    package static let filesystemMountpoints: PathPolicy = {
        var p = diskMountpoints
        p.rules["/boot/efi"] = .init(deny: true, why: "the image type creates the EFI system partition; describe your own under [customizations.disk] instead")
        return p
    }()

    private static let accounts = "Kiln writes the account databases from [[customizations.user]] and [[customizations.group]]"

    /// Paths for `[[customizations.directories]]`.
    package static let directoryPaths = PathPolicy(rules: [
        "/": .init(why: ""),
        "/bin": .init(deny: true, why: mergedUsr), "/sbin": .init(deny: true, why: mergedUsr),
        "/lib": .init(deny: true, why: mergedUsr), "/lib64": .init(deny: true, why: mergedUsr),
        "/lib32": .init(deny: true, why: mergedUsr), "/libx32": .init(deny: true, why: mergedUsr),  // Debian
        "/boot": .init(deny: true, why: "the kernel packages and the boot loader own it"),
        "/efi": .init(deny: true, why: "it is the EFI system partition"),
        "/dev": .init(deny: true, why: apiFS), "/proc": .init(deny: true, why: apiFS),
        "/run": .init(deny: true, why: apiFS), "/sys": .init(deny: true, why: apiFS),
        "/lost+found": .init(deny: true, why: "it belongs to e2fsck"),
        "/sysroot": .init(deny: true, why: "systemd uses it while booting from the initramfs"),
        "/tmp": .init(deny: true, why: "it is emptied at every boot"),
        "/var/tmp": .init(deny: true, why: "systemd-tmpfiles cleans it"),
        "/var/run": .init(deny: true, why: "it is a symlink to /run, a tmpfs"),
        "/usr": .init(deny: true, why: "Debian packages own it; use /usr/local"),
        "/usr/local": .init(why: ""),
        // Debian: the account databases, fstab and dpkg's database are Kiln's and dpkg's.
        "/etc/passwd": .init(deny: true, why: accounts), "/etc/shadow": .init(deny: true, why: accounts),
        "/etc/group": .init(deny: true, why: accounts), "/etc/gshadow": .init(deny: true, why: accounts),
        "/etc/fstab": .init(deny: true, why: "Kiln writes /etc/fstab from the disk layout"),
        "/var/lib/dpkg": .init(deny: true, why: "it is dpkg's package database"),
    ])

    /// Paths for `[[customizations.files]]`: as for directories.
    package static let filePaths = directoryPaths
}
