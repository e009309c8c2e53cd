import Manifest

// Options of the tree stages that configure the system: names, locale,
// time, services, cloud-init, certificates, sshd, files and first boot.

/// `org.osbuild.hostname`: `/etc/hostname`.
package struct HostnameOptions: StageOptionsType {
    package static let stageType = "org.osbuild.hostname"

    package var hostname: String

    package init(hostname: String) {
        self.hostname = hostname
    }
}

/// `org.osbuild.locale`: the system locale, and the locales to generate.
package struct LocaleOptions: StageOptionsType {
    package static let stageType = "org.osbuild.locale"

    package var language: String
    /// More locales to generate besides `language` (Kiln's addition).
    package var generate: [String]?

    package init(language: String, generate: [String]? = nil) {
        (self.language, self.generate) = (language, generate)
    }
}

/// `org.osbuild.timezone`: `/etc/localtime` and `/etc/timezone`.
package struct TimezoneOptions: StageOptionsType {
    package static let stageType = "org.osbuild.timezone"

    package var zone: String

    package init(zone: String) {
        self.zone = zone
    }
}

/// `org.osbuild.keymap`: the console keyboard layout.
package struct KeymapOptions: StageOptionsType {
    package static let stageType = "org.osbuild.keymap"

    /// A layout name such as `us`, `de`, `fr-latin9` (`-` separates the variant).
    package var keymap: String

    package init(keymap: String) {
        self.keymap = keymap
    }
}

/// `org.kiln.timesyncd`: systemd-timesyncd's NTP servers.
package struct TimesyncdOptions: StageOptionsType {
    package static let stageType = "org.kiln.timesyncd"

    package var servers: [String]

    package init(servers: [String]) {
        self.servers = servers
    }
}

/// `org.osbuild.machine-id`: what `/etc/machine-id` is on the first boot.
package struct MachineIDOptions: StageOptionsType {
    package static let stageType = "org.osbuild.machine-id"

    package enum FirstBoot: String, Codable, Sendable { case yes, no, preserve }

    package var firstBoot: FirstBoot

    enum CodingKeys: String, CodingKey { case firstBoot = "first-boot" }

    package init(firstBoot: FirstBoot) {
        self.firstBoot = firstBoot
    }
}

/// `org.osbuild.systemd`: units enabled, disabled and masked, and the default target.
package struct SystemdOptions: StageOptionsType {
    package static let stageType = "org.osbuild.systemd"

    package var enabledServices: [String]?
    package var disabledServices: [String]?
    package var maskedServices: [String]?
    package var defaultTarget: String?

    enum CodingKeys: String, CodingKey {
        case enabledServices = "enabled_services"
        case disabledServices = "disabled_services"
        case maskedServices = "masked_services"
        case defaultTarget = "default_target"
    }

    package init(
        enabledServices: [String]? = nil, disabledServices: [String]? = nil,
        maskedServices: [String]? = nil, defaultTarget: String? = nil
    ) {
        (self.enabledServices, self.disabledServices, self.maskedServices, self.defaultTarget) = (
            enabledServices, disabledServices, maskedServices, defaultTarget
        )
    }
}

/// `org.osbuild.cloud-init`: a drop-in of cloud-init's configuration.
package struct CloudInitOptions: StageOptionsType {
    package static let stageType = "org.osbuild.cloud-init"

    /// The drop-in's name, `NAME.cfg`.
    package var filename: String
    package var config: [String: JSONValue]

    package init(filename: String, config: [String: JSONValue]) {
        (self.filename, self.config) = (filename, config)
    }
}

/// `org.kiln.cacerts`: PEM certificates added to the tree's trust store.
package struct CACertsOptions: StageOptionsType {
    package static let stageType = "org.kiln.cacerts"

    package var certs: [String]

    package init(certs: [String]) {
        self.certs = certs
    }
}

/// `org.kiln.sshd.config`: sshd settings, keyword and value.
package struct SSHDConfigOptions: StageOptionsType {
    package static let stageType = "org.kiln.sshd.config"

    package struct Setting: Codable, Sendable {
        package var keyword: String
        package var value: String

        package init(keyword: String, value: String) {
            (self.keyword, self.value) = (keyword, value)
        }
    }

    package var settings: [Setting]

    package init(settings: [Setting]) {
        self.settings = settings
    }
}

/// `org.kiln.ssh.hostkeys`: no options.
package struct SSHHostKeysOptions: StageOptionsType {
    package static let stageType = "org.kiln.ssh.hostkeys"

    package init() {}
}

/// `org.kiln.first-boot`: scripts that run once, on the first boot.
package struct FirstBootOptions: StageOptionsType {
    package static let stageType = "org.kiln.first-boot"

    package struct Script: Codable, Sendable {
        package var name: String
        package var contents: String
        package var ignoreFailure: Bool?

        enum CodingKeys: String, CodingKey {
            case name, contents
            case ignoreFailure = "ignore_failure"
        }

        package init(name: String, contents: String, ignoreFailure: Bool? = nil) {
            (self.name, self.contents, self.ignoreFailure) = (name, contents, ignoreFailure)
        }
    }

    package var scripts: [Script]

    package init(scripts: [Script]) {
        self.scripts = scripts
    }
}

/// `org.kiln.files`: directories and files written into the tree.
package struct FilesOptions: StageOptionsType {
    package static let stageType = "org.kiln.files"

    package struct Directory: Codable, Sendable {
        package var path: String
        /// Octal string, e.g. `"0750"`; default 0755.
        package var mode: String?
        /// Name or numeric id; default root.
        package var user: String?
        package var group: String?
        /// Create missing parents (root-owned, 0755).
        package var parents: Bool?

        package init(path: String, mode: String? = nil, user: String? = nil, group: String? = nil, parents: Bool? = nil) {
            (self.path, self.mode, self.user, self.group, self.parents) = (path, mode, user, group, parents)
        }
    }

    package struct File: Codable, Sendable {
        package var path: String
        package var mode: String?
        package var user: String?
        package var group: String?
        /// The contents, base64.
        package var data: String

        package init(path: String, mode: String? = nil, user: String? = nil, group: String? = nil, data: String) {
            (self.path, self.mode, self.user, self.group, self.data) = (path, mode, user, group, data)
        }
    }

    package var directories: [Directory]?
    package var files: [File]?

    package init(directories: [Directory]? = nil, files: [File]? = nil) {
        (self.directories, self.files) = (directories, files)
    }
}
