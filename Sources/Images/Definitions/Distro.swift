import Manifest

/// A Debian release Kiln can build images of: where its packages come from and
/// what its base system already contains.
package struct Distro: Sendable, Hashable {
    /// Kiln's name, e.g. `debian-12`.
    package var name: String
    /// Other names accepted on the command line and in blueprints (`bookworm`).
    package var aliases: [String]
    /// The Debian codename (`bookworm`), the `release` of `org.kiln.debian.install`.
    package var codename: String
    package var architectures: [Architecture]
    /// The package archive, e.g. `http://deb.debian.org/debian`; overridable.
    package var mirror: String
    /// The security archive, e.g. `http://deb.debian.org/debian-security`; overridable.
    package var securityMirror: String
    package var components: [String]
    /// The keyring every repository is verified against, on the host and in the image.
    package var keyring: String
    /// Groups the base system has (base-passwd and systemd's sysusers), name → fixed gid if any.
    package var baseGroups: [String: Int?]
    /// Repositories a blueprint adds (`[[customizations.repositories]]`), used by the depsolve.
    package var extraSources: [ExtraSource] = []

    /// An apt repository beyond the Debian archive, verified with its own key.
    package struct ExtraSource: Sendable, Hashable {
        /// File stem: `/etc/apt/sources.list.d/<id>.sources`, `/etc/apt/keyrings/<id>.asc`.
        package var id: String
        package var uris: [String]
        package var suites: [String]
        package var components: [String]
        /// ASCII-armored OpenPGP keys (concatenated); nil with `trusted`.
        package var key: String?
        /// No signature check (`Trusted: yes`): only when the blueprint sets gpgcheck = false.
        package var trusted: Bool
        /// apt pin priority for the repository's packages; nil is apt's default.
        package var priority: Int?
        package init(id: String, uris: [String], suites: [String], components: [String], key: String?, trusted: Bool,
                     priority: Int?) {
            self.id = id
            self.uris = uris
            self.suites = suites
            self.components = components
            self.key = key
            self.trusted = trusted
            self.priority = priority
        }

        /// Where the key lives inside the image (and inside the depsolve's private apt root, under its root).
        package var keyPath: String { "/etc/apt/keyrings/\(id).asc" }

        /// The deb822 stanza; `keyDirectory` is where `<id>.asc` is.
        package func stanza(keyDirectory: String = "/etc/apt/keyrings", enabled: Bool = true) -> String {
            var lines = ["Types: deb", "URIs: " + uris.joined(separator: " "), "Suites: " + suites.joined(separator: " ")]
            if !components.isEmpty { lines.append("Components: " + components.joined(separator: " ")) }
            if trusted { lines.append("Trusted: yes") } else { lines.append("Signed-By: \(keyDirectory)/\(id).asc") }
            if !enabled { lines.append("Enabled: no") }
            return lines.joined(separator: "\n") + "\n"
        }

        /// The apt preferences pinning the repository's packages, nil without a priority.
        /// A repository on a host of its own is pinned by host (`origin`); one on
        /// the distro's own mirror host (backports, say) by its suites, since a
        /// host pin would catch the whole archive.
        package func preferences(sharedHosts: Set<String>) -> String? {
            guard let priority else { return nil }
            let hosts = uris.map(Self.host)
            let pins = hosts.contains(where: sharedHosts.contains)
                ? suites.map { "release a=\($0)" } : hosts.map { "origin \"\($0)\"" }
            return pins.map { "Package: *\nPin: \($0)\nPin-Priority: \(priority)\n" }.joined(separator: "\n")
        }

        static func host(_ uri: String) -> String {
            uri.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first.map(String.init) ?? ""
        }
    }

    /// The apt repositories: the archive with `<codename>` and `<codename>-updates`, and the security archive.
    package var repositories: [Repository] {
        [
            Repository(uri: mirror, suites: [codename, "\(codename)-updates"], components: components, signedBy: keyring),
            Repository(uri: securityMirror, suites: ["\(codename)-security"], components: components, signedBy: keyring),
        ]
    }

    /// One deb822 source entry.
    package struct Repository: Sendable, Hashable {
        package var uri: String
        package var suites: [String]
        package var components: [String]
        package var signedBy: String
    }

    /// Debian 12 "bookworm".
    package static let debian12 = debian(12, "bookworm", baseGroups: bookwormBaseGroups)
    /// Debian 13 "trixie".
    package static let debian13 = debian(13, "trixie", baseGroups: trixieBaseGroups)

    /// A Debian release from deb.debian.org, for both architectures, verified with Debian's archive keyring.
    private static func debian(_ version: Int, _ codename: String, baseGroups: [String: Int?]) -> Distro {
        Distro(name: "debian-\(version)", aliases: [codename], codename: codename,
               architectures: [.x86_64, .aarch64],
               mirror: "http://deb.debian.org/debian", securityMirror: "http://deb.debian.org/debian-security",
               components: ["main"], keyring: "/usr/share/keyrings/debian-archive-keyring.gpg",
               baseGroups: baseGroups)
    }

    package static let all: [Distro] = [.debian12, .debian13]

    /// The distro named `name` or one of its aliases.
    package static func named(_ name: String) throws(DefinitionError) -> Distro {
        let lower = name.lowercased()
        guard let d = all.first(where: { $0.name == lower || $0.aliases.contains(lower) }) else {
            throw .unknownDistro(name: name, known: all.flatMap { [$0.name] + $0.aliases })
        }
        return d
    }

    /// This distro with other mirrors (nil keeps the default).
    package func with(mirror: String? = nil, securityMirror: String? = nil) -> Distro {
        var d = self
        if let mirror { d.mirror = Self.trimmed(mirror) }
        if let securityMirror { d.securityMirror = Self.trimmed(securityMirror) }
        return d
    }

    private static func trimmed(_ url: String) -> String {
        var u = url
        while u.hasSuffix("/") { u.removeLast() }
        return u
    }

    /// Hosts of the distro's own archives.
    package var mirrorHosts: Set<String> { Set([mirror, securityMirror].map(ExtraSource.host)) }

    /// Throws unless this distro has definitions for `arch`.
    package func check(_ arch: Architecture) throws(DefinitionError) {
        guard architectures.contains(arch) else {
            throw .unsupportedArchitecture(distro: name, architecture: arch.rawValue, supported: architectures.map(\.rawValue))
        }
    }

    /// base-passwd's static groups (the same in bookworm and trixie).
    static let basePasswdGroups: [String: Int?] = [
        "root": 0, "daemon": 1, "bin": 2, "sys": 3, "adm": 4, "tty": 5, "disk": 6, "lp": 7, "mail": 8,
        "news": 9, "uucp": 10, "man": 12, "proxy": 13, "kmem": 15, "dialout": 20, "fax": 21, "voice": 22,
        "cdrom": 24, "floppy": 25, "tape": 26, "sudo": 27, "audio": 29, "dip": 30, "www-data": 33,
        "backup": 34, "operator": 37, "list": 38, "irc": 39, "src": 40, "shadow": 42, "utmp": 43,
        "video": 44, "sasl": 45, "plugdev": 46, "staff": 50, "games": 60, "users": 100, "nogroup": 65534,
    ]

    /// Bookworm: base-passwd's groups plus the dynamic ones of systemd's sysusers (systemd 252, udev).
    static let bookwormBaseGroups: [String: Int?] = basePasswdGroups.merging(
        ["systemd-journal": nil, "input": nil, "kvm": nil, "render": nil, "sgx": nil]) { $1 }

    /// Trixie: bookworm's, plus `clock` (udev's sysusers file in systemd 257 adds it for /dev/rtc).
    static let trixieBaseGroups: [String: Int?] = bookwormBaseGroups.merging(["clock": nil]) { $1 }
}
