import Manifest

extension Blueprint {
    /// The parsed blueprint as JSON (osbuild-composer's key names), without
    /// its origin: what a request's seed and content IDs are computed from.
    package func json() -> JSONValue {
        func opt(_ s: String?) -> JSONValue? { s.map { .string($0) } }
        func optInt(_ i: Int?) -> JSONValue? { i.map { .int(Int64($0)) } }
        func strings(_ a: [String]) -> JSONValue { .array(a.map { .string($0) }) }
        func object(_ pairs: [(String, JSONValue?)]) -> JSONValue {
            var o: [String: JSONValue] = [:]
            for (k, v) in pairs { if let v { o[k] = v } }
            return .object(o)
        }
        let c = customizations
        let custom = object([
            ("hostname", opt(c.hostname)),
            ("timezone", c.timezone.map { .object(["timezone": .string($0)]) }),
            ("user", .array(c.users.map { u in
                object([("name", .string(u.name)), ("description", opt(u.description)), ("password", opt(u.password)),
                        ("key", opt(u.key)), ("home", opt(u.home)), ("shell", opt(u.shell)),
                        ("groups", strings(u.groups)), ("uid", optInt(u.uid)), ("gid", optInt(u.gid))])
            })),
            ("group", .array(c.groups.map { object([("name", .string($0.name)), ("gid", optInt($0.gid))]) })),
            ("sshkey", .array(c.sshKeys.map { .object(["user": .string($0.user), "key": .string($0.key)]) })),
            ("services", .object(["enabled": strings(c.services.enabled), "disabled": strings(c.services.disabled),
                                  "masked": strings(c.services.masked)])),
        ])
        func specs(_ list: [PackageSpec]) -> JSONValue {
            .array(list.map { .object(["name": .string($0.name), "version": .string($0.version)]) })
        }
        return object([
            ("name", .string(name)), ("description", .string(description)), ("version", .string(version)),
            ("distro", opt(distro)), ("architecture", opt(architecture)),
            ("packages", specs(packages)), ("modules", specs(modules)), ("customizations", custom),
        ])
    }
}
