import Manifest

/// What a user wants in an image, in osbuild-composer's blueprint format
/// (TOML or JSON). This version implements the subset listed in
/// `Blueprint+Parsing.swift`; every other osbuild-composer key is rejected
/// with an error that names it.
package struct Blueprint: Sendable, Equatable {
    package var name: String
    package var description: String
    package var version: String
    /// `debian-12`, `bookworm`, … or nil to take the distro from the request.
    package var distro: String?
    /// `x86_64`/`aarch64` (or `amd64`/`arm64`), or nil to take it from the request.
    package var architecture: String?
    package var packages: [PackageSpec]
    /// osbuild-composer's `[[modules]]`; on Debian they are plain packages.
    package var modules: [PackageSpec]
    package var customizations: Customizations
    /// Where the blueprint came from, for error messages after parsing.
    package var origin: BlueprintOrigin

    package init(name: String, description: String = "", version: String = "", distro: String? = nil,
                 architecture: String? = nil, packages: [PackageSpec] = [], modules: [PackageSpec] = [],
                 customizations: Customizations = Customizations(), origin: BlueprintOrigin = BlueprintOrigin()) {
        self.name = name
        self.description = description
        self.version = version
        self.distro = distro
        self.architecture = architecture
        self.packages = packages
        self.modules = modules
        self.customizations = customizations
        self.origin = origin
    }

    /// Every package name the blueprint asks for (`[[packages]]` then `[[modules]]`), without repeats.
    package var packageNames: [String] {
        var seen = Set<String>()
        return (packages + modules).map(\.name).filter { seen.insert($0).inserted }
    }

    /// A package or module request. Only the version glob `*` is implemented.
    package struct PackageSpec: Sendable, Equatable {
        package var name: String
        package var version: String
        package init(name: String, version: String = "*") {
            self.name = name
            self.version = version
        }
    }

    package struct Customizations: Sendable, Equatable {
        package var hostname: String?
        /// `[customizations.timezone] timezone`, e.g. `Europe/Berlin`.
        package var timezone: String?
        package var users: [User]
        package var groups: [Group]
        package var sshKeys: [SSHKey]
        package var services: Services

        package init(hostname: String? = nil, timezone: String? = nil, users: [User] = [], groups: [Group] = [],
                     sshKeys: [SSHKey] = [], services: Services = Services()) {
            self.hostname = hostname
            self.timezone = timezone
            self.users = users
            self.groups = groups
            self.sshKeys = sshKeys
            self.services = services
        }
    }

    /// `[[customizations.user]]`.
    package struct User: Sendable, Equatable {
        package var name: String
        package var description: String?
        /// A crypt(3) hash (`$6$…`, `$y$…`).
        package var password: String?
        /// SSH public key(s), one per line.
        package var key: String?
        package var home: String?
        package var shell: String?
        package var groups: [String]
        package var uid: Int?
        package var gid: Int?

        package init(name: String, description: String? = nil, password: String? = nil, key: String? = nil,
                     home: String? = nil, shell: String? = nil, groups: [String] = [], uid: Int? = nil, gid: Int? = nil) {
            self.name = name
            self.description = description
            self.password = password
            self.key = key
            self.home = home
            self.shell = shell
            self.groups = groups
            self.uid = uid
            self.gid = gid
        }
    }

    /// `[[customizations.group]]`.
    package struct Group: Sendable, Equatable {
        package var name: String
        package var gid: Int?
        package init(name: String, gid: Int? = nil) {
            self.name = name
            self.gid = gid
        }
    }

    /// `[[customizations.sshkey]]`.
    package struct SSHKey: Sendable, Equatable {
        package var user: String
        package var key: String
        package init(user: String, key: String) {
            self.user = user
            self.key = key
        }
    }

    /// `[customizations.services]`; unit names, `.service` added when no unit suffix is given.
    package struct Services: Sendable, Equatable {
        package var enabled: [String]
        package var disabled: [String]
        package var masked: [String]
        package init(enabled: [String] = [], disabled: [String] = [], masked: [String] = []) {
            self.enabled = enabled
            self.disabled = disabled
            self.masked = masked
        }
    }
}

/// The file a blueprint was read from and where its keys are, so that checks
/// made after parsing (for example against a distro's groups) can still point
/// at a line.
package struct BlueprintOrigin: Sendable, Equatable {
    package var file: String
    /// Key path → 1-based line (TOML only).
    package var lines: [String: Int]

    package init(file: String = "blueprint", lines: [String: Int] = [:]) {
        self.file = file
        self.lines = lines
    }

    /// The line of `keyPath`, or of the nearest enclosing key that has one.
    package func line(of keyPath: String) -> Int? {
        var path = keyPath
        while !path.isEmpty {
            if let l = lines[path] { return l }
            if path.hasSuffix("]"), let open = path.lastIndex(of: "[") {
                path = String(path[..<open])
            } else if let dot = path.lastIndex(of: ".") {
                path = String(path[..<dot])
            } else {
                return nil
            }
        }
        return nil
    }

    /// An error at `keyPath` of this blueprint.
    package func error(_ keyPath: String, _ problem: BlueprintError.Problem) -> BlueprintError {
        BlueprintError(file: file, keyPath: keyPath, line: line(of: keyPath), problem: problem)
    }
}
