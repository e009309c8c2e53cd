import Foundation
import Manifest

/// Package versions, kernel, locale, certificates and keys, sshd and first-boot scripts.
extension BlueprintRules {
    /// A glob over Debian versions (Policy §5.6.12): letters, digits, `. + ~ : -`, with `*` and `?` as wildcards.
    package static func versionGlobProblem(_ v: String) -> String? {
        let ok = v.allSatisfy { isAlnum($0) || ".+~:-*?".contains($0) }
            && (v.first.map { $0.isNumber || $0 == "*" || $0 == "?" } ?? false)
        return ok ? nil : "\"\(v)\" cannot match a Debian version (versions start with a digit and contain only letters, digits and . + ~ : -); use * and ? as wildcards, e.g. \"2.36*\" or \"1:9.2p1-2+deb12u?\""
    }

    /// `[[groups]]` names Debian tasks: `ssh-server` installs `task-ssh-server`.
    package static func taskNameProblem(_ name: String) -> String? {
        if name.hasPrefix("task-") {
            return "give the task without its package prefix: \"\(name.dropFirst(5))\" (Kiln installs task-\(name.dropFirst(5)))"
        }
        guard isPackageName("task-" + name), name.first.map({ isLowerAlnum($0) }) == true else {
            return "\"\(name)\" is not a Debian task name; use one such as \"ssh-server\", \"web-server\" or \"gnome-desktop\" (`tasksel --list-tasks` lists them)"
        }
        return nil
    }

    /// Arguments appended to the kernel command line: one line, no `root=`
    /// (Kiln sets it from the disk layout), and none of the characters that
    /// GRUB's script (grub.cfg's `linux` line) or the shell reading
    /// /etc/default/grub would take as syntax: `;` would end GRUB's command
    /// and start another, `$` expands a variable, quotes end the string.
    package static func kernelAppendProblem(_ s: String) -> String? {
        if s.contains(where: { $0.isNewline || $0 == "\0" || ($0.asciiValue.map { $0 < 0x20 && $0 != 0x09 } ?? false) }) {
            return "must be one line without control characters; separate arguments with spaces"
        }
        if let bad = s.first(where: { "\"'`$\\;&|<>{}".contains($0) }) {
            return "\"\(bad)\" would be read as syntax by GRUB's grub.cfg or by the shell reading /etc/default/grub; remove it: kernel arguments are words such as \"quiet\" or \"console=ttyS0,115200\""
        }
        if let root = s.split(whereSeparator: \.isWhitespace).first(where: { $0.hasPrefix("root=") }) {
            return "\"\(root)\": Kiln sets root= itself from the disk layout; remove it"
        }
        return nil
    }

    /// Locale names as `locale -a` and /etc/locale.gen spell them: `C.UTF-8`, `en_US.UTF-8`, `sr_RS@latin`.
    package static func localeProblem(_ s: String) -> String? {
        var rest = Substring(s)
        var modifier: Substring = ""
        if let at = rest.firstIndex(of: "@") { modifier = rest[rest.index(after: at)...]; rest = rest[..<at] }
        var codeset: Substring? = nil
        if let dot = rest.firstIndex(of: ".") { codeset = rest[rest.index(after: dot)...]; rest = rest[..<dot] }
        let lang = rest.split(separator: "_", maxSplits: 1, omittingEmptySubsequences: false)
        let isLanguage = lang[0] == "C" || lang[0] == "POSIX"
            || ((2...3).contains(lang[0].count) && lang[0].allSatisfy { $0.isASCII && $0.isLowercase })
        let ok = isLanguage
            && (lang.count == 1 || ((2...3).contains(lang[1].count) && lang[1].allSatisfy { isAlnum($0) }))
            && (codeset.map { !$0.isEmpty && $0.allSatisfy { isAlnum($0) || $0 == "-" } } ?? true)
            && (s.contains("@") ? !modifier.isEmpty && modifier.allSatisfy { isAlnum($0) } : true)
        return ok ? nil : "\"\(s)\" is not a locale name; use one such as \"en_US.UTF-8\", \"de_DE.UTF-8\" or \"C.UTF-8\""
    }

    /// Keyboard layouts (XKB layout or console keymap names): `us`, `de`, `fr-latin9`, `de_CH`.
    package static func keymapProblem(_ s: String) -> String? {
        let ok = !s.isEmpty && s.count <= 64 && s.allSatisfy { isAlnum($0) || $0 == "-" || $0 == "_" }
        return ok ? nil : "\"\(s)\" is not a keyboard layout name; use letters, digits, '-' and '_', e.g. \"us\", \"de\" or \"fr-latin9\""
    }

    /// File modes as osbuild writes them: a string of three octal digits, optionally after a leading 0.
    package static func parseMode(_ s: String) -> UInt32? {
        let digits = s.count == 4 && s.first == "0" ? s.dropFirst() : Substring(s)
        guard digits.count == 3, digits.allSatisfy({ ("0"..."7").contains($0) }) else { return nil }
        return UInt32(digits, radix: 8)
    }

    /// PEM certificates (one or a bundle): each block's body is base64 DER, a SEQUENCE.
    package static func certificateProblem(_ pem: String) -> String? {
        if pem.contains("PRIVATE KEY-----") {
            return "contains a private key; a blueprint must never carry one (it would be in every image): give only the CA's certificate"
        }
        guard let bodies = PEM.blocks(of: "CERTIFICATE", in: pem)?.map(\.body) else {
            return "is not a PEM certificate; give the text from \"-----BEGIN CERTIFICATE-----\" to \"-----END CERTIFICATE-----\""
        }
        for body in bodies {
            let b64 = body.filter { !$0.isWhitespace }
            guard let der = Data(base64Encoded: String(b64)), der.first == 0x30, der.count > 64 else {
                return "has a certificate whose body is not base64 DER; copy the PEM file unchanged"
            }
        }
        return nil
    }

    /// ASCII-armored OpenPGP public keys (`gpg --armor --export`).
    package static func gpgKeyProblem(_ key: String) -> String? {
        if key.contains("PRIVATE KEY BLOCK") {
            return "is a private key; give the repository's public key (gpg --armor --export KEYID)"
        }
        if key.hasPrefix("http://") || key.hasPrefix("https://") || key.hasPrefix("file://") {
            return "is a URL; Kiln does not download keys during a build (the image would depend on something outside the manifest): paste the ASCII-armored key, the output of `gpg --armor --export KEYID`"
        }
        guard PEM.blocks(of: "PGP PUBLIC KEY BLOCK", in: key) != nil else {
            return "is not an ASCII-armored OpenPGP public key; give the text from \"-----BEGIN PGP PUBLIC KEY BLOCK-----\" to \"-----END PGP PUBLIC KEY BLOCK-----\""
        }
        return nil
    }

    /// The sshd_config keywords `[customizations.sshd.config]` may set, and how each value is checked.
    package enum SSHDValue: Sendable { case yesNo, permitRootLogin, count, port, seconds, patterns, address, path }

    package static let sshdKeywords: [(String, SSHDValue)] = [
        ("PasswordAuthentication", .yesNo), ("PermitRootLogin", .permitRootLogin),
        ("ClientAliveInterval", .count), ("ClientAliveCountMax", .count),
        ("KbdInteractiveAuthentication", .yesNo), ("ChallengeResponseAuthentication", .yesNo),
        ("PubkeyAuthentication", .yesNo), ("X11Forwarding", .yesNo), ("MaxAuthTries", .count),
        ("LoginGraceTime", .seconds), ("AllowUsers", .patterns), ("AllowGroups", .patterns),
        ("Port", .port), ("ListenAddress", .address), ("Banner", .path), ("UseDNS", .yesNo),
    ]

    /// osbuild's `[customizations.sshd]` keys and the sshd_config keyword each sets.
    package static let sshdBlueprintKeys: [String: String] = [
        "password_authentication": "PasswordAuthentication",
        "kbd_interactive_authentication": "KbdInteractiveAuthentication",
        "challenge_response_authentication": "ChallengeResponseAuthentication",
        "client_alive_interval": "ClientAliveInterval",
        "permit_root_login": "PermitRootLogin",
    ]

    /// First-boot script names (they name files): letters, digits, `-` and `_`, at most 64 characters.
    package static func scriptNameProblem(_ name: String) -> String? {
        let ok = !name.isEmpty && name.count <= 64 && name.allSatisfy { isAlnum($0) || $0 == "-" || $0 == "_" }
        return ok ? nil : "\"\(name)\" is not a usable script name; use letters, digits, '-' and '_' (at most 64 characters), e.g. \"register-host\""
    }
}
