/// `org.kiln.debian.install`: the packages of input `packages` installed into an empty tree.
package struct DebianInstallOptions: StageOptionsType {
    package static let stageType = "org.kiln.debian.install"

    package var architecture: String
    package var release: String
    package var mergedUsr: Bool?
    package var deferInitramfs: Bool?

    enum CodingKeys: String, CodingKey {
        case architecture, release
        case mergedUsr = "merged_usr"
        case deferInitramfs = "defer_initramfs"
    }

    package init(architecture: String, release: String, mergedUsr: Bool? = nil, deferInitramfs: Bool? = nil) {
        (self.architecture, self.release, self.mergedUsr, self.deferInitramfs) = (architecture, release, mergedUsr, deferInitramfs)
    }
}

/// `org.kiln.apt.sources`: the tree's apt sources, and repositories of their own.
package struct AptSourcesOptions: StageOptionsType {
    package static let stageType = "org.kiln.apt.sources"

    package struct Source: Codable, Sendable {
        package var uris: [String]
        package var suites: [String]
        package var components: [String]
        package var signedBy: String?

        enum CodingKeys: String, CodingKey {
            case uris, suites, components
            case signedBy = "signed_by"
        }

        package init(uris: [String], suites: [String], components: [String], signedBy: String? = nil) {
            (self.uris, self.suites, self.components, self.signedBy) = (uris, suites, components, signedBy)
        }
    }

    /// A repository of its own: `/etc/apt/sources.list.d/<id>.sources`, its
    /// key at `/etc/apt/keyrings/<id>.asc`, its pin in `/etc/apt/preferences.d/<id>.pref`.
    package struct Extra: Codable, Sendable {
        package var id: String
        package var uris: [String]
        package var suites: [String]
        package var components: [String]?
        /// ASCII-armored OpenPGP keys.
        package var key: String?
        /// `Trusted: yes` instead of a key.
        package var trusted: Bool?
        /// false: written with `Enabled: no`.
        package var enabled: Bool?
        /// apt preferences stanzas (`Package:`, `Pin:`, `Pin-Priority:` lines) for the repository.
        package var preferences: String?

        package init(
            id: String, uris: [String], suites: [String], components: [String]? = nil, key: String? = nil,
            trusted: Bool? = nil, enabled: Bool? = nil, preferences: String? = nil
        ) {
            (self.id, self.uris, self.suites, self.components, self.key, self.trusted, self.enabled, self.preferences) = (
                id, uris, suites, components, key, trusted, enabled, preferences
            )
        }
    }

    package var sources: [Source]
    package var extra: [Extra]?

    package init(sources: [Source], extra: [Extra]? = nil) {
        (self.sources, self.extra) = (sources, extra)
    }
}
