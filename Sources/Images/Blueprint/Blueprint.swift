import Manifest

/// What a user wants in an image, in osbuild-composer's blueprint format
/// (TOML or JSON). `BlueprintKeys` lists the keys Kiln reads and the osbuild
/// keys it rejects; `docs/blueprint.md` is the user's reference.
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
    /// `[[groups]]`: Debian tasks (`ssh-server`, `web-server`, …), installed as their `task-NAME` package.
    package var groups: [String] = []
    /// `minimal = true`: no Recommends (Kiln never installs them) — accepted for compatibility.
    package var minimal: Bool = false
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

    /// A package or module request. `version` is a glob over Debian
    /// versions (`*`, `2.36*`, `1:9.2p1-2+deb12u?`); `*` means the candidate.
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
        /// `[customizations.timezone] ntpservers`: systemd-timesyncd's `NTP=`.
        package var ntpServers: [String] = []
        package var users: [User]
        package var groups: [Group]
        package var sshKeys: [SSHKey]
        package var services: Services
        package var kernel: Kernel?
        package var locale: Locale?
        package var firewall: Firewall?
        /// `[[customizations.filesystem]]`: mountpoints with minimum sizes.
        package var filesystems: [Filesystem] = []
        /// `[customizations.disk]`: a whole partition table (wins over `filesystems`).
        package var disk: Disk?
        /// `partitioning_mode`: `raw` (plain partitions), `lvm` (root on LVM) or `auto-lvm`
        /// (LVM when mountpoints beyond `/` are asked for); nil is `auto-lvm`.
        package var partitioningMode: PartitioningMode?
        package var directories: [Directory] = []
        package var files: [File] = []
        package var repositories: [Repository] = []
        /// `[customizations.cacerts] pem_certs`: PEM certificates added to the system trust store.
        package var caCerts: [String] = []
        /// `[customizations.sshd.config]` settings written to a drop-in under `/etc/ssh/sshd_config.d`.
        package var sshd: SSHD?
        /// Scripts run once, on the first boot, in order.
        package var firstBoot: [FirstBootScript] = []

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

    /// `[customizations.kernel]`.
    package struct Kernel: Sendable, Equatable {
        /// A kernel package replacing the image type's (e.g. `linux-image-cloud-amd64`, `linux-image-rt-amd64`).
        package var name: String?
        /// Arguments appended to the image type's kernel command line.
        package var append: String?
        package init(name: String? = nil, append: String? = nil) {
            self.name = name
            self.append = append
        }
    }

    /// `[customizations.locale]`.
    package struct Locale: Sendable, Equatable {
        /// Locales to generate; the first is the system's `LANG`.
        package var languages: [String]
        /// Console keymap (`/etc/default/keyboard` XKBLAYOUT), e.g. `us`, `de`, `fr`.
        package var keyboard: String?
        package init(languages: [String] = [], keyboard: String? = nil) {
            self.languages = languages
            self.keyboard = keyboard
        }
    }

    /// `[customizations.firewall]`.
    package struct Firewall: Sendable, Equatable {
        /// `PORT:PROTO` or `FROM-TO:PROTO` (proto `tcp`/`udp`), or a service name from /etc/services (`https:tcp`).
        package var ports: [String]
        /// firewalld service names (`ssh`, `http`, …) to open / close.
        package var enabledServices: [String]
        package var disabledServices: [String]
        package var zones: [Zone]
        package init(ports: [String] = [], enabledServices: [String] = [], disabledServices: [String] = [], zones: [Zone] = []) {
            self.ports = ports
            self.enabledServices = enabledServices
            self.disabledServices = disabledServices
            self.zones = zones
        }

        /// `[[customizations.firewall.zones]]`: sources (addresses or networks) bound to a zone.
        package struct Zone: Sendable, Equatable {
            package var name: String
            package var sources: [String]
            package init(name: String, sources: [String] = []) {
                self.name = name
                self.sources = sources
            }
        }
    }

    /// `[[customizations.filesystem]]`.
    package struct Filesystem: Sendable, Equatable {
        package var mountpoint: String
        /// Bytes (the blueprint gives an integer or a string such as `"2 GiB"`).
        package var minSize: Int64
        package init(mountpoint: String, minSize: Int64) {
            self.mountpoint = mountpoint
            self.minSize = minSize
        }
    }

    package enum PartitioningMode: String, Sendable, Equatable, CaseIterable {
        case raw, lvm, autoLVM = "auto-lvm"
    }

    /// `[customizations.disk]`.
    package struct Disk: Sendable, Equatable {
        /// `gpt` (default) or `dos`.
        package var type: String?
        /// Minimum size of the whole disk in bytes.
        package var minSize: Int64?
        package var partitions: [DiskPartition]
        package init(type: String? = nil, minSize: Int64? = nil, partitions: [DiskPartition] = []) {
            self.type = type
            self.minSize = minSize
            self.partitions = partitions
        }
    }

    /// One `[[customizations.disk.partitions]]` entry.
    package enum DiskPartition: Sendable, Equatable {
        /// `type = "plain"`: a partition with one filesystem (`ext4`, `xfs`, `vfat`) or swap.
        case plain(FilesystemSpec)
        /// `type = "lvm"`: a physical volume holding one volume group.
        case lvm(VolumeGroup)
    }

    /// A filesystem on a partition or a logical volume.
    package struct FilesystemSpec: Sendable, Equatable {
        /// Partition type of the table (osbuild's `part_type`), nil for the filesystem's default.
        package var partType: String?
        /// Logical volume name (LVM only).
        package var name: String?
        /// nil for swap.
        package var mountpoint: String?
        /// `ext4`, `xfs`, `vfat` or `swap`.
        package var fsType: String
        package var label: String?
        package var minSize: Int64
        package init(partType: String? = nil, name: String? = nil, mountpoint: String?, fsType: String,
                     label: String? = nil, minSize: Int64) {
            self.partType = partType
            self.name = name
            self.mountpoint = mountpoint
            self.fsType = fsType
            self.label = label
            self.minSize = minSize
        }
    }

    package struct VolumeGroup: Sendable, Equatable {
        package var name: String
        /// Minimum size of the physical volume in bytes (0: the sum of its volumes).
        package var minSize: Int64
        package var logicalVolumes: [FilesystemSpec]
        /// Partition type of the physical volume's partition (osbuild's `part_type`), nil for LVM's default.
        package var partType: String?
        package init(name: String, minSize: Int64 = 0, logicalVolumes: [FilesystemSpec] = [], partType: String? = nil) {
            self.name = name
            self.minSize = minSize
            self.logicalVolumes = logicalVolumes
            self.partType = partType
        }
    }

    /// `[[customizations.directories]]`.
    package struct Directory: Sendable, Equatable {
        package var path: String
        /// User and group by name or numeric id (as a string of digits); nil is root.
        package var user: String?
        package var group: String?
        /// Octal, e.g. `0755`; nil is 0755.
        package var mode: UInt32?
        package var ensureParents: Bool
        package init(path: String, user: String? = nil, group: String? = nil, mode: UInt32? = nil, ensureParents: Bool = false) {
            self.path = path
            self.user = user
            self.group = group
            self.mode = mode
            self.ensureParents = ensureParents
        }
    }

    /// `[[customizations.files]]`.
    package struct File: Sendable, Equatable {
        package var path: String
        package var user: String?
        package var group: String?
        /// Octal; nil is 0644.
        package var mode: UInt32?
        package var data: String
        package init(path: String, user: String? = nil, group: String? = nil, mode: UInt32? = nil, data: String = "") {
            self.path = path
            self.user = user
            self.group = group
            self.mode = mode
            self.data = data
        }
    }

    /// `[[customizations.repositories]]`: an extra apt repository, used by
    /// the depsolve and written to the image as a deb822 `.sources` file.
    package struct Repository: Sendable, Equatable {
        /// File name stem under `/etc/apt/sources.list.d` and the key's name.
        package var id: String
        package var name: String?
        /// Base URIs of the archive (`https://…/debian`).
        package var baseURLs: [String]
        /// Suites (osbuild has no such key; Debian needs one): default the distro's codename.
        package var suites: [String]
        /// Components: default `main`.
        package var components: [String]
        /// ASCII-armored OpenPGP public keys that sign the repository.
        package var gpgKeys: [String]
        /// false: `Trusted: yes` (only for local test repositories).
        package var gpgCheck: Bool
        /// false: only written to the image, with `Enabled: no`, and not used by the depsolve.
        package var enabled: Bool
        /// apt pin priority for the repository's packages (nil: apt's default 500).
        package var priority: Int?
        /// The depsolve may take packages from it (osbuild's `install_from`; Kiln's default is true
        /// for enabled repositories). The repository is written to the image either way.
        package var installFrom: Bool
        package init(id: String, name: String? = nil, baseURLs: [String], suites: [String] = [], components: [String] = ["main"],
                     gpgKeys: [String] = [], gpgCheck: Bool = true, enabled: Bool = true, priority: Int? = nil,
                     installFrom: Bool = true) {
            self.id = id
            self.name = name
            self.baseURLs = baseURLs
            self.suites = suites
            self.components = components
            self.gpgKeys = gpgKeys
            self.gpgCheck = gpgCheck
            self.enabled = enabled
            self.priority = priority
            self.installFrom = installFrom
        }
    }

    /// `[customizations.sshd]`.
    package struct SSHD: Sendable, Equatable {
        /// sshd_config keywords → values, in the order given.
        package var config: [(String, String)]
        package init(config: [(String, String)] = []) { self.config = config }
        package static func == (a: SSHD, b: SSHD) -> Bool {
            a.config.map(\.0) == b.config.map(\.0) && a.config.map(\.1) == b.config.map(\.1)
        }
    }

    /// A first-boot script.
    package struct FirstBootScript: Sendable, Equatable {
        package var name: String
        /// The script; a `#!` line picks the interpreter (default `/bin/sh`).
        package var contents: String
        package var ignoreFailure: Bool
        package init(name: String, contents: String, ignoreFailure: Bool = false) {
            self.name = name
            self.contents = contents
            self.ignoreFailure = ignoreFailure
        }
    }

    /// `[[customizations.user]]`.
    package struct User: Sendable, Equatable {
        package var name: String
        package var description: String?
        /// A crypt(3) hash (`$6$…`, `$y$…`) or a plain-text password, which
        /// the manifest generator hashes (sha512crypt) and never writes in clear.
        package var password: String?
        /// SSH public key(s), one per line.
        package var key: String?
        package var home: String?
        package var shell: String?
        package var groups: [String]
        package var uid: Int?
        package var gid: Int?
        /// Account expiry, days since 1970-01-01 (shadow's field 8).
        package var expireDate: Int?
        /// The password must be changed at the first login (shadow's last-change 0).
        package var forcePasswordReset: Bool = false

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
