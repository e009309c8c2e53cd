/// The syntax rules blueprint values are checked against. Each check returns
/// nil when the value is fine, or the reason and the fix.
package enum BlueprintRules {
    static func all(_ s: Substring, _ allowed: (Character) -> Bool) -> Bool { s.allSatisfy(allowed) }
    static func isLowerAlnum(_ c: Character) -> Bool { c.isASCII && (c.isLowercase || c.isNumber) }
    static func isAlnum(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber) }

    /// osbuild-composer's blueprint versions are semantic versions: 1.2.3, optionally -pre or +build.
    package static func isSemanticVersion(_ v: String) -> Bool {
        let core = v.split(maxSplits: 1, omittingEmptySubsequences: false, whereSeparator: { $0 == "-" || $0 == "+" }).first ?? ""
        let parts = core.split(separator: ".", omittingEmptySubsequences: false)
        return (1...3).contains(parts.count) && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }

    /// Debian Policy §5.6.7: lower-case letters, digits, `+ - .`, at least two characters, starting alphanumeric.
    package static func isPackageName(_ name: String) -> Bool {
        guard name.count >= 2, let first = name.first, isLowerAlnum(first) else { return false }
        return name.allSatisfy { isLowerAlnum($0) || $0 == "+" || $0 == "-" || $0 == "." }
    }

    /// tz database names: `UTC`, `Europe/Berlin`, `America/Argentina/Buenos_Aires`, `Etc/GMT+5`.
    package static func timezoneProblem(_ z: String) -> String? {
        let parts = z.split(separator: "/", omittingEmptySubsequences: false)
        let ok =
            !z.isEmpty && parts.count <= 3
            && parts.allSatisfy { p in
                !p.isEmpty && p.first!.isASCII && p.first!.isLetter && all(p, { isAlnum($0) || "_+-".contains($0) })
            }
        return ok ? nil : "\"\(z)\" is not a time zone name; use a tz database name such as \"UTC\" or \"Europe/Berlin\""
    }

    /// Debian's adduser NAME_REGEX: lower-case letters, digits, `_`, `-`, starting with a letter or `_`,
    /// optionally ending in `$`, at most 32 characters.
    package static func accountNameProblem(_ name: String, kind: String) -> String? {
        var body = Substring(name)
        if body.hasSuffix("$") { body = body.dropLast() }
        let ok =
            !body.isEmpty && name.count <= 32 && (body.first!.isLowercase || body.first! == "_")
            && all(body, { isLowerAlnum($0) || $0 == "_" || $0 == "-" })
        return ok
            ? nil
            : "\"\(name)\" is not a valid Debian \(kind) name; use lower-case letters, digits, '_' and '-', starting with a letter or '_', at most 32 characters"
    }

    /// A crypt(3) hash or a plain-text password (the manifest generator hashes
    /// it). Either goes into /etc/shadow, whose fields are split at ':' and lines.
    package static func passwordProblem(_ pw: String) -> String? {
        if pw.contains(":") || pw.contains("\n") || pw.contains("\r") || pw.contains("\0") {
            return
                "must not contain ':', a line break or a NUL character (it ends up in /etc/shadow); give a crypt(3) hash such as the output of `openssl passwd -6`, or a plain-text password without them"
        }
        return nil
    }

    static let sshKeyTypes: Set<String> = [
        "ssh-rsa", "ssh-dss", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    ]

    /// One or more authorized_keys lines, each with a key type followed by the key.
    package static func sshKeyProblem(_ key: String) -> String? {
        // One key per entry: a line break would start a second authorized_keys
        // line (with options of its own) that nobody reads in the blueprint.
        if key.trimmingCharacters(in: .whitespacesAndNewlines).contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
            return "holds more than one line; give one SSH public key per entry (one [[customizations.sshkey]] or user per key)"
        }
        let lines = key.split(separator: "\n").filter { !$0.allSatisfy(\.isWhitespace) }
        guard !lines.isEmpty else { return "must not be empty; give an SSH public key such as \"ssh-ed25519 AAAAC3… me@host\"" }
        for line in lines {
            let tokens = line.split(whereSeparator: \.isWhitespace).map(String.init)
            guard let i = tokens.firstIndex(where: { sshKeyTypes.contains($0) }), i + 1 < tokens.count else {
                return
                    "\"\(line.prefix(40))\" is not an SSH public key; give a line such as \"ssh-ed25519 AAAAC3… me@host\" (the contents of ~/.ssh/id_ed25519.pub)"
            }
        }
        return nil
    }

    package static func absolutePathProblem(_ path: String) -> String? {
        let ok =
            path.hasPrefix("/") && !path.contains(":") && !path.contains("\n")
            && !path.split(separator: "/").contains("..")
        return ok ? nil : "\"\(path)\" must be an absolute path such as \"/home/kiln\" or \"/bin/bash\" (no '..' or ':')"
    }

    /// Debian's id ranges (Policy §9.2.2): 0 is root, 1–59999 are usable, 60000 and above are reserved.
    package static func idProblem(_ id: Int, kind: String, name: String) -> String? {
        if id == 0 { return name == "root" ? nil : "\(kind) 0 belongs to root; use a value from 1000 to 59999" }
        if (1...59999).contains(id) { return nil }
        return "\(kind) \(id) is outside the range Debian allows for local accounts; use a value from 1000 to 59999"
    }

    static let unitSuffixes = [
        ".service", ".socket", ".timer", ".target", ".path", ".mount", ".automount",
        ".swap", ".slice", ".scope", ".device",
    ]

    /// systemd unit names: letters, digits and `:-_.\@`, at most 255 characters.
    package static func unitNameProblem(_ name: String) -> String? {
        let ok =
            !name.isEmpty && name.count <= 255 && name.first != "." && name.first != "-"
            && name.allSatisfy { isAlnum($0) || ":-_.\\@".contains($0) }
        return ok ? nil : "\"\(name)\" is not a systemd unit name; use a name such as \"ssh\" or \"ssh.service\""
    }

    /// The unit name with `.service` added when no unit type suffix is given (as `systemctl` does).
    package static func unitName(_ name: String) -> String {
        unitSuffixes.contains(where: { name.hasSuffix($0) }) ? name : name + ".service"
    }
}
