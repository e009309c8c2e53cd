import Foundation
import Manifest

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
        let definition = try ImageDefinition(distro: request.distro, architecture: request.architecture,
                                             imageType: request.imageType)
        try Self.validate(request)
        var distro = request.distro
        distro.extraSources = Self.extraSources(request)
        let selection = Self.packageSelection(request, definition)
        let result = try await selection.resolve(with: resolver, distro: distro, architecture: request.architecture,
                                                 blueprint: request.blueprint)
        let manifest = try Self.manifest(for: request, packages: result.packages)
        return Generated(manifest: manifest, dropped: result.dropped,
                         notes: result.dropped.map { Self.note($0, request) })
    }

    /// "cloud-init left out: …" for a dropped extra.
    static func note(_ d: PackageSelection.Dropped, _ request: ImageRequest) -> String {
        let who = d.conflictsWith.isEmpty ? "the blueprint's packages"
            : d.conflictsWith.joined(separator: ", ") + ", which the blueprint asks for"
        let apt = d.apt.isEmpty ? "" : " (apt: \(d.apt.prefix(4).joined(separator: "; ")))"
        let note = "\(d.extra.name) left out: the \(request.imageType.rawValue) image type adds it for \(d.extra.why), "
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
                throw bp.origin.error("\(p).name", .invalid(reason: "group \"\(g.name)\" already exists in \(distro.name); remove it from [[customizations.group]] and use it directly"))
            }
            if let gid = g.gid, let owner = baseGIDs[gid] {
                throw bp.origin.error("\(p).gid", .invalid(reason: "gid \(gid) belongs to group \"\(owner)\" in \(distro.name); choose a gid from 1000 to 59999"))
            }
        }
        let defined = Set(c.groups.map(\.name))
        let definedGIDs = Set(c.groups.compactMap(\.gid))
        for (i, u) in c.users.enumerated() {
            for (gi, group) in u.groups.enumerated() where base[group] == nil && !defined.contains(group) {
                let hint = group == "wheel" ? " or use \"sudo\"" : ""
                throw bp.origin.error("customizations.user[\(i)].groups[\(gi)]", .invalid(reason: "group \"\(group)\" does not exist in \(distro.name); add it under [[customizations.group]]\(hint)"))
            }
            if let gid = u.gid, !definedGIDs.contains(gid), baseGIDs[gid] == nil {
                throw bp.origin.error("customizations.user[\(i)].gid", .invalid(reason: "no group has gid \(gid); add a [[customizations.group]] with gid = \(gid), or remove gid to give the user its own group"))
            }
        }
        let users = Set(c.users.map(\.name))
        for (i, k) in c.sshKeys.enumerated() where k.user != "root" && !users.contains(k.user) {
            throw bp.origin.error("customizations.sshkey[\(i)].user", .invalid(reason: "user \"\(k.user)\" is not defined; add it under [[customizations.user]] (or use \"root\")"))
        }
        try validateDisk(request)
        try validateCustomizations(request)
    }

    /// The manifest for `request` with an already resolved package set.
    package static func manifest(for request: ImageRequest, packages: [ResolvedPackage]) throws -> BuildManifest {
        let definition = try ImageDefinition(distro: request.distro, architecture: request.architecture,
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

    static func osPipeline(_ request: ImageRequest, _ def: ImageDefinition, _ disk: DiskLayout,
                           _ packages: [ResolvedPackage]) -> Pipeline {
        let bp = request.blueprint
        let c = bp.customizations
        let arch = request.architecture
        var stages: [ManifestStage] = []

        stages.append(ManifestStage(
            type: "org.kiln.debian.install",
            options: ["architecture": .string(arch.debian), "release": .string(request.distro.codename),
                      "merged_usr": true, "defer_initramfs": true],
            inputs: ["packages": .files(packages.map(\.checksum))]))
        var apt: [String: JSONValue] = [
            "sources": .array(request.distro.repositories.map { r in
                .object(["uris": strings([r.uri]), "suites": strings(r.suites), "components": strings(r.components),
                         "signed_by": .string(r.signedBy)])
            }),
        ]
        let extra = extraSources(request, all: true)
        if !extra.isEmpty {
            let enabled = Set(c.repositories.filter(\.enabled).map(\.id))
            apt["extra"] = .array(extra.map { e in
                var o: [String: JSONValue] = ["id": .string(e.id), "uris": strings(e.uris), "suites": strings(e.suites),
                                              "components": strings(e.components)]
                if let key = e.key { o["key"] = .string(key) }
                if e.trusted { o["trusted"] = true }
                if !enabled.contains(e.id) { o["enabled"] = false }
                if let pin = e.preferences(sharedHosts: request.distro.mirrorHosts) { o["preferences"] = .string(pin) }
                return .object(o)
            })
        }
        stages.append(ManifestStage(type: "org.kiln.apt.sources", options: apt))
        stages.append(ManifestStage(type: "org.osbuild.hostname",
                                    options: ["hostname": .string(c.hostname ?? def.defaultHostname)]))
        let languages = c.locale?.languages ?? []
        var locale: [String: JSONValue] = ["language": .string(languages.first ?? def.defaultLanguage)]
        if languages.count > 1 { locale["generate"] = strings(Array(languages.dropFirst())) }
        stages.append(ManifestStage(type: "org.osbuild.locale", options: locale))
        if let keyboard = c.locale?.keyboard {
            stages.append(ManifestStage(type: "org.osbuild.keymap", options: ["keymap": .string(keyboard)]))
        }
        stages.append(ManifestStage(type: "org.osbuild.timezone",
                                    options: ["zone": .string(c.timezone ?? def.defaultTimezone)]))
        if !c.ntpServers.isEmpty {
            stages.append(ManifestStage(type: "org.kiln.timesyncd", options: ["servers": strings(c.ntpServers)]))
        }
        if !c.groups.isEmpty {
            var groups: [String: JSONValue] = [:]
            for g in c.groups { groups[g.name] = .object(g.gid.map { ["gid": .int(Int64($0))] } ?? [:]) }
            stages.append(ManifestStage(type: "org.osbuild.groups", options: ["groups": .object(groups)]))
        }
        let users = usersOptions(c, blueprint: bp.name)
        if !users.isEmpty {
            stages.append(ManifestStage(type: "org.osbuild.users", options: ["users": .object(users)]))
        }
        stages += customizationStages(request)
        if hasSSHServer(packages) { stages.append(ManifestStage(type: "org.kiln.ssh.hostkeys")) }
        stages.append(ManifestStage(type: "org.osbuild.systemd", options: systemdOptions(request, def, packages)))
        if let sources = request.imageType.cloudInitDataSources, packages.contains(where: { $0.name == "cloud-init" }) {
            // Kiln's images configure the network themselves (ip=dhcp, systemd-networkd), and
            // cloud-init keeps the image's locale instead of resetting it to its own default.
            stages.append(ManifestStage(type: "org.osbuild.cloud-init", options: [
                "filename": "91-kiln-datasources.cfg",
                "config": ["datasource_list": strings(sources), "network": ["config": "disabled"],
                           "locale": .string(languages.first ?? def.defaultLanguage)],
            ]))
            // ds-identify turns cloud-init off for a boot that finds no data source only where
            // the machine has DMI (x86); elsewhere (aarch64) its default runs cloud-init anyway,
            // which then fails the first boot. One policy for every architecture; a blueprint's
            // own /etc/cloud/ds-identify.cfg wins.
            if !c.files.contains(where: { $0.path == Self.dsIdentifyPath }) {
                stages.append(ManifestStage(type: "org.kiln.files", options: ["files": [[
                    "path": .string(Self.dsIdentifyPath), "mode": "0644",
                    "data": .string(Data(Self.dsIdentifyPolicy.utf8).base64EncodedString()),
                ]]]))
            }
        }
        if request.imageType.isDisk { stages += bootStages(request, def, disk) }
        stages.append(ManifestStage(type: "org.osbuild.machine-id", options: ["first-boot": "yes"]))
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
    static func usersOptions(_ c: Blueprint.Customizations, blueprint: String) -> [String: JSONValue] {
        var users: [String: JSONValue] = [:]
        var keys: [String: [String]] = [:]
        for k in c.sshKeys { keys[k.user, default: []].append(k.key) }
        for u in c.users {
            var o: [String: JSONValue] = [:]
            if let uid = u.uid { o["uid"] = .int(Int64(uid)) }
            if let gid = u.gid { o["gid"] = .int(Int64(gid)) }
            if !u.groups.isEmpty { o["groups"] = strings(u.groups) }
            if let d = u.description { o["description"] = .string(d) }
            if let h = u.home { o["home"] = .string(h) }
            if let s = u.shell { o["shell"] = .string(s) }
            if let p = u.passwordHash(blueprint: blueprint) { o["password"] = .string(p) }
            if let e = u.expireDate { o["expiredate"] = .int(Int64(e)) }
            if u.forcePasswordReset { o["force_password_reset"] = true }
            let allKeys = (u.key.map { [$0] } ?? []) + (keys.removeValue(forKey: u.name) ?? [])
            if !allKeys.isEmpty { o["key"] = .string(joinKeys(allKeys)) }
            users[u.name] = .object(o)
        }
        for (name, k) in keys { users[name] = .object(["key": .string(joinKeys(k))]) }
        return users
    }

    static func joinKeys(_ keys: [String]) -> String {
        keys.flatMap { $0.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } }
            .filter { !$0.isEmpty }.joined(separator: "\n")
    }

    static func systemdOptions(_ request: ImageRequest, _ def: ImageDefinition,
                               _ packages: [ResolvedPackage]) -> [String: JSONValue] {
        let c = request.blueprint.customizations
        let off = Set(c.services.disabled + c.services.masked)
        var enabled = def.baseServices
        if hasSSHServer(packages) { enabled += ["ssh.service", "kiln-ssh-keygen.service"] }
        enabled += customizationServices(request) + c.services.enabled
        var seen = Set<String>()
        enabled = enabled.filter { !off.contains($0) && seen.insert($0).inserted }
        var o: [String: JSONValue] = ["enabled_services": strings(enabled), "default_target": .string(def.defaultTarget)]
        if !c.services.disabled.isEmpty { o["disabled_services"] = strings(c.services.disabled) }
        if !c.services.masked.isEmpty { o["masked_services"] = strings(c.services.masked) }
        return o
    }

    /// The pipelines that turn the disk (or the tree) into the requested file.
    static func formatPipelines(_ request: ImageRequest, _ disk: DiskLayout) -> [Pipeline] {
        let type = request.imageType
        let output = JSONValue.string(type.outputFile)
        let rawImage = Input(type: "org.osbuild.files", origin: Input.pipelineOrigin, references: ["name:image"],
                             referenceOptions: ["name:image": ["file": .string(rawFile)]])
        func convert(_ filename: String, _ format: JSONValue) -> ManifestStage {
            ManifestStage(type: "org.osbuild.qemu", options: ["filename": .string(filename), "format": format],
                          inputs: ["image": rawImage])
        }
        func archive(of pipeline: String, _ options: [String: JSONValue]) -> Pipeline {
            Pipeline(name: "archive", stages: [
                ManifestStage(type: "org.osbuild.tar", options: options.merging(["filename": output]) { $1 },
                              inputs: ["tree": .tree(pipeline)]),
            ])
        }
        switch type {
        case .raw, .ami:
            return []
        case .qcow2:
            return [Pipeline(name: "qcow2", stages: [convert(type.outputFile, ["type": "qcow2", "compat": "1.1"])])]
        case .vmdk:
            return [Pipeline(name: "vmdk", stages: [
                convert(type.outputFile, ["type": "vmdk", "subformat": "streamOptimized"]),
            ])]
        case .vhd:
            // Azure takes fixed VHDs whose virtual size is a whole number of MiB (force_size keeps it exact).
            return [Pipeline(name: "vpc", stages: [
                convert(type.outputFile, ["type": "vpc", "subformat": "fixed", "force_size": true]),
            ])]
        case .minimalRaw, .minimalRawZstd:
            let stage = type == .minimalRaw ? "org.osbuild.xz" : "org.osbuild.zstd"
            return [Pipeline(name: type.exportPipeline, stages: [
                ManifestStage(type: stage, options: ["filename": output], inputs: ["file": rawImage]),
            ])]
        case .ova:
            // The descriptor must come first in the archive, the manifest second (OVF 1.x).
            return [
                Pipeline(name: "ovf", stages: [
                    convert("image.vmdk", ["type": "vmdk", "subformat": "streamOptimized", "adapter_type": "lsilogic"]),
                    ManifestStage(type: "org.osbuild.ovf", options: [
                        "vmdk": "image.vmdk", "vmware": ["os_type": .string(request.distro.vmwareGuestOS)],
                    ]),
                ]),
                archive(of: "ovf", ["format": "ustar", "paths": strings(["image.ovf", "image.mf", "image.vmdk"])]),
            ]
        case .gce:
            // GCE imports a gzip'd GNU tar holding exactly `disk.raw`.
            return [archive(of: "image", ["format": "oldgnu", "sparse": true, "paths": strings([rawFile])])]
        case .tar:
            return [archive(of: "os", [:])]
        case .container:
            return [Pipeline(name: "container", stages: [
                ManifestStage(type: "org.osbuild.oci-archive", options: [
                    "filename": output, "architecture": .string(request.architecture.debian),
                    "config": ["Cmd": ["/bin/bash"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]],
                ], inputs: ["base": .tree("os")]),
            ])]
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
}
