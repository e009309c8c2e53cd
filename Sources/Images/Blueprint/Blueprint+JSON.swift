import Manifest

extension Blueprint {
    /// The parsed blueprint as JSON (osbuild-composer's key names, Kiln's
    /// additions beside them), without its origin: what a request's seed and
    /// content IDs are computed from. Every field of the model is here, so
    /// two blueprints that differ in anything give different JSON, and the
    /// TOML and JSON forms of one blueprint give the same.
    package func json() -> JSONValue {
        var o: [String: JSONValue] = [
            "name": .string(name), "description": .string(description), "version": .string(version),
            "packages": Self.json(packages), "modules": Self.json(modules),
            "groups": .array(groups.map { .object(["name": .string($0)]) }),
            "minimal": .bool(minimal),
            "customizations": customizations.json(blueprint: name),
        ]
        o["distro"] = distro.map { .string($0) }
        o["architecture"] = architecture.map { .string($0) }
        return .object(o)
    }

    static func json(_ list: [PackageSpec]) -> JSONValue {
        .array(list.map { .object(["name": .string($0.name), "version": .string($0.version)]) })
    }
}

/// `[key: value?]` without the nil values.
private func object(_ pairs: [(String, JSONValue?)]) -> JSONValue {
    var o: [String: JSONValue] = [:]
    for (k, v) in pairs { if let v { o[k] = v } }
    return .object(o)
}

private func strings(_ a: [String]) -> JSONValue { .array(a.map { .string($0) }) }
private func opt(_ s: String?) -> JSONValue? { s.map { .string($0) } }
private func opt(_ i: Int?) -> JSONValue? { i.map { .int(Int64($0)) } }
private func opt(_ i: Int64?) -> JSONValue? { i.map { .int($0) } }
private func opt(_ m: UInt32?) -> JSONValue? { m.map { .string("0" + String($0, radix: 8)) } }

extension Blueprint.Customizations {
    /// Passwords appear only hashed (see `Blueprint.User.passwordHash`): the seed,
    /// and so the UUIDs in the manifest, never derive from a clear-text password.
    func json(blueprint: String) -> JSONValue {
        object([
            ("hostname", opt(hostname)),
            ("timezone", .object(["timezone": opt(timezone) ?? .null, "ntpservers": strings(ntpServers)])),
            ("user", .array(users.map { u in
                object([("name", .string(u.name)), ("description", opt(u.description)), ("password", opt(u.passwordHash(blueprint: blueprint))),
                        ("key", opt(u.key)), ("home", opt(u.home)), ("shell", opt(u.shell)),
                        ("groups", strings(u.groups)), ("uid", opt(u.uid)), ("gid", opt(u.gid)),
                        ("expiredate", opt(u.expireDate)), ("force_password_reset", .bool(u.forcePasswordReset))])
            })),
            ("group", .array(groups.map { object([("name", .string($0.name)), ("gid", opt($0.gid))]) })),
            ("sshkey", .array(sshKeys.map { .object(["user": .string($0.user), "key": .string($0.key)]) })),
            ("services", .object(["enabled": strings(services.enabled), "disabled": strings(services.disabled),
                                  "masked": strings(services.masked)])),
            ("kernel", kernel.map { object([("name", opt($0.name)), ("append", opt($0.append))]) }),
            ("locale", locale.map { object([("languages", strings($0.languages)), ("keyboard", opt($0.keyboard))]) }),
            ("firewall", firewall.map { f in
                .object(["ports": strings(f.ports),
                         "services": .object(["enabled": strings(f.enabledServices), "disabled": strings(f.disabledServices)]),
                         "zones": .array(f.zones.map { .object(["name": .string($0.name), "sources": strings($0.sources)]) })])
            }),
            ("filesystem", .array(filesystems.map { .object(["mountpoint": .string($0.mountpoint), "minsize": .int($0.minSize)]) })),
            ("disk", disk.map { d in
                object([("type", opt(d.type)), ("minsize", opt(d.minSize)), ("partitions", .array(d.partitions.map(\.json)))])
            }),
            ("partitioning_mode", partitioningMode.map { .string($0.rawValue) }),
            ("directories", .array(directories.map { d in
                object([("path", .string(d.path)), ("user", opt(d.user)), ("group", opt(d.group)), ("mode", opt(d.mode)),
                        ("ensure_parents", .bool(d.ensureParents))])
            })),
            ("files", .array(files.map { f in
                object([("path", .string(f.path)), ("user", opt(f.user)), ("group", opt(f.group)), ("mode", opt(f.mode)),
                        ("data", .string(f.data))])
            })),
            ("repositories", .array(repositories.map { r in
                object([("id", .string(r.id)), ("name", opt(r.name)), ("baseurls", strings(r.baseURLs)),
                        ("suites", strings(r.suites)), ("components", strings(r.components)), ("gpgkeys", strings(r.gpgKeys)),
                        ("gpgcheck", .bool(r.gpgCheck)), ("enabled", .bool(r.enabled)), ("priority", opt(r.priority)),
                        ("install_from", .bool(r.installFrom))])
            })),
            ("cacerts", .object(["pem_certs": strings(caCerts)])),
            ("sshd", sshd.map { .object(["config": .array($0.config.map { .array([.string($0.0), .string($0.1)]) })]) }),
            ("firstboot", .object(["scripts": .array(firstBoot.map { s in
                .object(["type": "custom", "name": .string(s.name), "contents": .string(s.contents),
                         "ignore_failure": .bool(s.ignoreFailure)])
            })])),
        ])
    }
}

extension Blueprint.DiskPartition {
    var json: JSONValue {
        switch self {
        case .plain(let fs):
            var o = fs.json
            o["type"] = "plain"
            return .object(o)
        case .lvm(let vg):
            return object([("type", "lvm"), ("name", .string(vg.name)), ("minsize", .int(vg.minSize)),
                           ("part_type", opt(vg.partType)),
                           ("logical_volumes", .array(vg.logicalVolumes.map { .object($0.json) }))])
        }
    }
}

extension Blueprint.FilesystemSpec {
    var json: [String: JSONValue] {
        guard case .object(let o) = object([
            ("part_type", opt(partType)), ("name", opt(name)), ("mountpoint", opt(mountpoint)),
            ("fs_type", .string(fsType)), ("label", opt(label)), ("minsize", .int(minSize)),
        ]) else { return [:] }
        return o
    }
}
