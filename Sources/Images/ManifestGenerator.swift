import Foundation
import Manifest
import StageOptions

/// Turns an image request into a build manifest: depsolves the base set and
/// the blueprint's packages, then lays out the pipelines `os` (the tree),
/// `image` (the raw GPT disk) and, for qcow2, `qcow2`. Stage types and options
/// are exactly those of docs/stages.md.
package struct ManifestGenerator: Sendable {
    package var resolver: any PackageResolver

    package init(resolver: any PackageResolver) {
        self.resolver = resolver
    }

    /// Depsolves and generates.
    package func manifest(for request: ImageRequest) async throws -> BuildManifest {
        try await generate(for: request).manifest
    }

    /// A manifest and what a person should know about it.
    package struct Generated: Sendable {
        package var manifest: BuildManifest
        /// Extras of the image type left out because a blueprint package conflicts with them.
        package var dropped: [PackageSelection.Dropped]
        /// One line per dropped extra, for the build's events and `kiln manifest`.
        package var notes: [String]
    }

    /// Depsolves (the blueprint's packages beat the image type's extras) and generates.
    package func generate(for request: ImageRequest) async throws -> Generated {
        let definition = try ImageDefinition(
            distro: request.distro, architecture: request.architecture,
            imageType: request.imageType)
        try Self.validate(request)
        var distro = request.distro
        distro.extraSources = Self.extraSources(request)
        let selection = Self.packageSelection(request, definition)
        let result = try await selection.resolve(
            with: resolver, distro: distro, architecture: request.architecture,
            blueprint: request.blueprint)
        let manifest = try Self.manifest(for: request, packages: result.packages)
        return Generated(
            manifest: manifest, dropped: result.dropped,
            notes: result.dropped.map { Self.note($0, request) })
    }

    /// "cloud-init left out: …" for a dropped extra.
    static func note(_ d: PackageSelection.Dropped, _ request: ImageRequest) -> String {
        let who =
            d.conflictsWith.isEmpty
            ? "the blueprint's packages"
            : d.conflictsWith.joined(separator: ", ") + ", which the blueprint asks for"
        let apt = d.apt.isEmpty ? "" : " (apt: \(d.apt.prefix(4).joined(separator: "; ")))"
        let note =
            "\(d.extra.name) left out: the \(request.imageType.rawValue) image type adds it for \(d.extra.why), "
            + "but in \(request.distro.name) it cannot be installed beside \(who)\(apt); what the blueprint asks for comes first"
        // The scheduler takes notes of at most 2048 bytes.
        var cut = note
        while cut.utf8.count > 2000 { cut.removeLast() }
        return cut.count == note.count ? note : cut + "…"
    }

    /// What to depsolve: the image's own packages (with the blueprint's
    /// kernel instead of the default one), what the disk and the
    /// customizations need, the type's extras, and the blueprint's tasks
    /// (`task-NAME`), packages and modules (`name=GLOB` when a version is given).
    package static func packageSelection(_ request: ImageRequest, _ definition: ImageDefinition) -> PackageSelection {
        let bp = request.blueprint
        var base = definition.requiredPackages
        if bp.customizations.kernel?.name != nil { base.removeAll { $0.hasPrefix("linux-image-") } }
        let customization = customizationPackageReasons(request)
        let disk = diskPackages(request)
        var because: [String: String] = [:]
        for (name, why) in customization where because[name] == nil { because[name] = why }
        for name in disk where because[name] == nil { because[name] = "the disk layout" }
        func spec(_ p: Blueprint.PackageSpec) -> String { p.version == "*" || p.version.isEmpty ? p.name : "\(p.name)=\(p.version)" }
        var requested = bp.groups.enumerated().map { PackageSelection.Requested(request: "task-\($1)", field: "groups[\($0)].name") }
        requested += bp.packages.enumerated().map { PackageSelection.Requested(request: spec($1), field: "packages[\($0)]") }
        requested += bp.modules.enumerated().map { PackageSelection.Requested(request: spec($1), field: "modules[\($0)]") }
        var seen = Set<String>()
        requested = requested.filter { seen.insert($0.request).inserted }
        let required = base + disk + customization.map(\.0)
        // A package of an extra that the blueprint asks for itself is the blueprint's, not the type's;
        // the rest of that extra stays an extra.
        let asked = Set(requested.map(\.name))
        let extras = definition.extras.compactMap { e -> ImageExtra? in
            var e = e
            e.packages.removeAll(where: asked.contains)
            return e.packages.isEmpty ? nil : e
        }
        return PackageSelection(required: required, requiredBecause: because, extras: extras, requested: requested)
    }

    /// Every name to depsolve, in order (the selection's, flattened).
    package static func packageNames(_ request: ImageRequest, _ definition: ImageDefinition) -> [String] {
        packageSelection(request, definition).allNames
    }

    /// Checks the blueprint against the distro: groups that users join must
    /// exist, new groups and gids must not clash with the base system, keys
    /// must belong to a defined user.
    package static func validate(_ request: ImageRequest) throws(BlueprintError) {
        let bp = request.blueprint
        let c = bp.customizations
        let distro = request.distro
        let base = distro.baseGroups
        let baseGIDs = Dictionary(base.compactMap { name, gid in gid.map { ($0, name) } }, uniquingKeysWith: { a, _ in a })
        for (i, g) in c.groups.enumerated() {
            let p = "customizations.group[\(i)]"
            if base[g.name] != nil {
                throw bp.origin.error(
                    "\(p).name",
                    .invalid(
                        reason: "group \"\(g.name)\" already exists in \(distro.name); remove it from [[customizations.group]] and use it directly"))
            }
            if let gid = g.gid, let owner = baseGIDs[gid] {
                throw bp.origin.error(
                    "\(p).gid", .invalid(reason: "gid \(gid) belongs to group \"\(owner)\" in \(distro.name); choose a gid from 1000 to 59999"))
            }
        }
        let defined = Set(c.groups.map(\.name))
        let definedGIDs = Set(c.groups.compactMap(\.gid))
        for (i, u) in c.users.enumerated() {
            for (gi, group) in u.groups.enumerated() where base[group] == nil && !defined.contains(group) {
                let hint = group == "wheel" ? " or use \"sudo\"" : ""
                throw bp.origin.error(
                    "customizations.user[\(i)].groups[\(gi)]",
                    .invalid(reason: "group \"\(group)\" does not exist in \(distro.name); add it under [[customizations.group]]\(hint)"))
            }
            if let gid = u.gid, !definedGIDs.contains(gid), baseGIDs[gid] == nil {
                throw bp.origin.error(
                    "customizations.user[\(i)].gid",
                    .invalid(
                        reason:
                            "no group has gid \(gid); add a [[customizations.group]] with gid = \(gid), or remove gid to give the user its own group")
                )
            }
        }
        let users = Set(c.users.map(\.name))
        for (i, k) in c.sshKeys.enumerated() where k.user != "root" && !users.contains(k.user) {
            throw bp.origin.error(
                "customizations.sshkey[\(i)].user",
                .invalid(reason: "user \"\(k.user)\" is not defined; add it under [[customizations.user]] (or use \"root\")"))
        }
        try validateDisk(request)
        try validateCustomizations(request)
    }

    /// The manifest for `request` with an already resolved package set.
    package static func manifest(for request: ImageRequest, packages: [ResolvedPackage]) throws -> BuildManifest {
        let definition = try ImageDefinition(
            distro: request.distro, architecture: request.architecture,
            imageType: request.imageType)
        try validate(request)
        let ids = DeterministicIDs(seed: request.seed)
        let disk = try diskLayout(request, definition, ids)
        var pipelines = [osPipeline(request, definition, disk, packages)]
        if request.imageType.isDisk { pipelines.append(imagePipeline(request, definition, disk)) }
        pipelines += formatPipelines(request, disk)
        var items: [String: SourceItem] = [:]
        for p in packages { items[p.checksum] = SourceItem(url: p.url) }
        return BuildManifest(pipelines: pipelines, sources: ["org.osbuild.curl": SourceGroup(items: items)])
    }

    // MARK: pipelines

    static let rawFile = ImageType.raw.outputFile

    static func osPipeline(
        _ request: ImageRequest, _ def: ImageDefinition, _ disk: DiskLayout,
        _ packages: [ResolvedPackage]
    ) -> Pipeline {
        let bp = request.blueprint
        let c = bp.customizations
        let arch = request.architecture
        var stages: [ManifestStage] = []

        stages.append(
            ManifestStage(
                DebianInstallOptions(architecture: arch.debian, release: request.distro.codename, mergedUsr: true, deferInitramfs: true),
                inputs: ["packages": .files(packages.map(\.checksum))]))
        let extra = extraSources(request, all: true)
        let enabled = Set(c.repositories.filter(\.enabled).map(\.id))
        stages.append(
            ManifestStage(
                AptSourcesOptions(
                    sources: request.distro.repositories.map { r in
                        .init(uris: [r.uri], suites: r.suites, components: r.components, signedBy: r.signedBy)
                    },
                    extra: nonEmpty(
                        extra.map { e in
                            .init(
                                id: e.id, uris: e.uris, suites: e.suites, components: e.components, key: e.key, trusted: e.trusted ? true : nil,
                                enabled: enabled.contains(e.id) ? nil : false, preferences: e.preferences(sharedHosts: request.distro.mirrorHosts))
                        }))))
        stages.append(ManifestStage(HostnameOptions(hostname: c.hostname ?? def.defaultHostname)))
        let languages = c.locale?.languages ?? []
        stages.append(
            ManifestStage(
                LocaleOptions(
                    language: languages.first ?? def.defaultLanguage,
                    generate: nonEmpty(Array(languages.dropFirst())))))
        if let keyboard = c.locale?.keyboard {
            stages.append(ManifestStage(KeymapOptions(keymap: keyboard)))
        }
        stages.append(ManifestStage(TimezoneOptions(zone: c.timezone ?? def.defaultTimezone)))
        if !c.ntpServers.isEmpty {
            stages.append(ManifestStage(TimesyncdOptions(servers: c.ntpServers)))
        }
        if !c.groups.isEmpty {
            let groups = c.groups.map { ($0.name, GroupsOptions.Group(gid: $0.gid)) }
            stages.append(ManifestStage(GroupsOptions(groups: Dictionary(groups) { _, last in last })))
        }
        let users = usersOptions(c, blueprint: bp.name)
        if !users.isEmpty {
            stages.append(ManifestStage(UsersOptions(users: users)))
        }
        stages += customizationStages(request)
        if hasSSHServer(packages) { stages.append(ManifestStage(SSHHostKeysOptions())) }
        stages.append(ManifestStage(systemdOptions(request, def, packages)))
        if let sources = request.imageType.cloudInitDataSources, packages.contains(where: { $0.name == "cloud-init" }) {
            // Kiln's images configure the network themselves (ip=dhcp, systemd-networkd), and
            // cloud-init keeps the image's locale instead of resetting it to its own default.
            stages.append(
                ManifestStage(
                    CloudInitOptions(
                        filename: "91-kiln-datasources.cfg",
                        config: [
                            "datasource_list": strings(sources), "network": ["config": "disabled"],
                            "locale": .string(languages.first ?? def.defaultLanguage),
                        ])))
            // ds-identify turns cloud-init off for a boot that finds no data source only where
            // the machine has DMI (x86); elsewhere (aarch64) its default runs cloud-init anyway,
            // which then fails the first boot. One policy for every architecture; a blueprint's
            // own /etc/cloud/ds-identify.cfg wins.
            if !c.files.contains(where: { $0.path == Self.dsIdentifyPath }) {
                stages.append(
                    ManifestStage(
                        FilesOptions(files: [
                            .init(path: Self.dsIdentifyPath, mode: "0644", data: Data(Self.dsIdentifyPolicy.utf8).base64EncodedString())
                        ])))
            }
        }
        if request.imageType.isDisk { stages += bootStages(request, def, disk) }
        stages.append(ManifestStage(MachineIDOptions(firstBoot: .yes)))
        return Pipeline(name: "os", stages: stages)
    }

    /// Where cloud-init's generator reads its policy, and the policy every
    /// image with cloud-init gets: with no data source found, cloud-init is
    /// off for that boot, on every architecture.
    static let dsIdentifyPath = "/etc/cloud/ds-identify.cfg"
    static let dsIdentifyPolicy = "policy: search,found=all,maybe=all,notfound=disabled\n"

    /// osbuild-composer's mapping: blueprint users, with the keys of
    /// `[[customizations.sshkey]]` added to the user's `key`; a key for a user
    /// the blueprint does not define (root) updates that user.
    /// A plain-text password is hashed here (SHA-512 crypt); the clear text goes no further.
    static func usersOptions(_ c: Blueprint.Customizations, blueprint: String) -> [String: UsersOptions.User] {
        var users: [String: UsersOptions.User] = [:]
        var keys: [String: [String]] = [:]
        for k in c.sshKeys { keys[k.user, default: []].append(k.key) }
        for u in c.users {
            let allKeys = (u.key.map { [$0] } ?? []) + (keys.removeValue(forKey: u.name) ?? [])
            users[u.name] = UsersOptions.User(
                uid: u.uid, gid: u.gid, groups: nonEmpty(u.groups), description: u.description, home: u.home, shell: u.shell,
                password: u.passwordHash(blueprint: blueprint), key: allKeys.isEmpty ? nil : joinKeys(allKeys),
                expiredate: u.expireDate, forcePasswordReset: u.forcePasswordReset ? true : nil)
        }
        for (name, k) in keys { users[name] = UsersOptions.User(key: joinKeys(k)) }
        return users
    }

    static func joinKeys(_ keys: [String]) -> String {
        keys.flatMap { $0.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } }
            .filter { !$0.isEmpty }.joined(separator: "\n")
    }

    static func systemdOptions(
        _ request: ImageRequest, _ def: ImageDefinition,
        _ packages: [ResolvedPackage]
    ) -> SystemdOptions {
        let c = request.blueprint.customizations
        let off = Set(c.services.disabled + c.services.masked)
        var enabled = def.baseServices
        if hasSSHServer(packages) { enabled += ["ssh.service", "kiln-ssh-keygen.service"] }
        enabled += customizationServices(request) + c.services.enabled
        var seen = Set<String>()
        enabled = enabled.filter { !off.contains($0) && seen.insert($0).inserted }
        return SystemdOptions(
            enabledServices: enabled, disabledServices: nonEmpty(c.services.disabled),
            maskedServices: nonEmpty(c.services.masked), defaultTarget: def.defaultTarget)
    }

    /// The pipelines that turn the disk (or the tree) into the requested file.
    static func formatPipelines(_ request: ImageRequest, _ disk: DiskLayout) -> [Pipeline] {
        let type = request.imageType
        let output = type.outputFile
        let rawImage = Input.pipelineFile(rawFile, of: "image")
        func convert(_ filename: String, _ format: QemuOptions.Format) -> ManifestStage {
            ManifestStage(QemuOptions(filename: filename, format: format), inputs: ["image": rawImage])
        }
        func archive(of pipeline: String, format: String? = nil, paths: [String]? = nil, sparse: Bool? = nil) -> Pipeline {
            Pipeline(
                name: "archive",
                stages: [
                    ManifestStage(TarOptions(filename: output, format: format, paths: paths, sparse: sparse), inputs: ["tree": .tree(pipeline)])
                ])
        }
        switch type {
        case .raw, .ami:
            return []
        case .qcow2:
            return [Pipeline(name: "qcow2", stages: [convert(type.outputFile, .init(type: "qcow2", compat: "1.1"))])]
        case .vmdk:
            return [
                Pipeline(
                    name: "vmdk",
                    stages: [
                        convert(type.outputFile, .init(type: "vmdk", subformat: "streamOptimized"))
                    ])
            ]
        case .vhd:
            // Azure takes fixed VHDs whose virtual size is a whole number of MiB (force_size keeps it exact).
            return [
                Pipeline(
                    name: "vpc",
                    stages: [
                        convert(type.outputFile, .init(type: "vpc", subformat: "fixed", force_size: true))
                    ])
            ]
        case .minimalRaw, .minimalRawZstd:
            let stage =
                type == .minimalRaw
                ? ManifestStage(XZOptions(filename: output), inputs: ["file": rawImage])
                : ManifestStage(ZstdOptions(filename: output), inputs: ["file": rawImage])
            return [Pipeline(name: type.exportPipeline, stages: [stage])]
        case .ova:
            // The descriptor must come first in the archive, the manifest second (OVF 1.x).
            return [
                Pipeline(
                    name: "ovf",
                    stages: [
                        convert("image.vmdk", .init(type: "vmdk", adapter_type: "lsilogic", subformat: "streamOptimized")),
                        ManifestStage(OVFOptions(vmdk: "image.vmdk", vmware: .init(os_type: request.distro.vmwareGuestOS))),
                    ]),
                archive(of: "ovf", format: "ustar", paths: ["image.ovf", "image.mf", "image.vmdk"]),
            ]
        case .gce:
            // GCE imports a gzip'd GNU tar holding exactly `disk.raw`.
            return [archive(of: "image", format: "oldgnu", paths: [rawFile], sparse: true)]
        case .tar:
            return [archive(of: "os")]
        case .container:
            return [
                Pipeline(
                    name: "container",
                    stages: [
                        ManifestStage(
                            OCIArchiveOptions(
                                filename: output, architecture: request.architecture.debian,
                                config: .init(
                                    Cmd: ["/bin/bash"], Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])),
                            inputs: ["base": .tree("os")])
                    ])
            ]
        }
    }

    static func hasSSHServer(_ packages: [ResolvedPackage]) -> Bool {
        packages.contains { $0.name == "openssh-server" }
    }

    /// The image type's kernel command line with the blueprint's `[customizations.kernel] append`.
    static func kernelOptions(_ request: ImageRequest, _ def: ImageDefinition) -> String {
        let append = request.blueprint.customizations.kernel?.append?.trimmingCharacters(in: .whitespaces) ?? ""
        return append.isEmpty ? def.kernelOptions : def.kernelOptions + " " + append
    }

    static func strings(_ a: [String]) -> JSONValue { .array(a.map { .string($0) }) }

    /// nil for an empty list: an option the stage's options leave out rather than write empty.
    static func nonEmpty<T>(_ a: [T]) -> [T]? { a.isEmpty ? nil : a }
}
