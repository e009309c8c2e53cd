import Manifest

/// `[[customizations.user]]`, `[[customizations.group]]`, `[[customizations.sshkey]]`
/// and `[customizations.services]`.
extension BlueprintReader {
    /// shadow's expiry field counts days since 1970-01-01; 2932896 is 9999-12-31.
    static let lastExpireDay = 2_932_896

    func users(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> [Blueprint.User] {
        var out: [Blueprint.User] = []
        var seen: [String: String] = [:]
        for (p, o) in try tables(v, path) {
            let name = try required(o, "name", p, fix: "give the user's login name, e.g. name = \"kiln\"")
            if let reason = BlueprintRules.accountNameProblem(name, kind: "user") {
                throw origin.error("\(p).name", .invalid(reason: reason))
            }
            try claim(name, p, in: &seen)
            var user = Blueprint.User(name: name)
            user.description = try optionalString(o["description"], "\(p).description")
            if let d = user.description, d.contains(":") || d.contains("\n") {
                throw origin.error("\(p).description", .invalid(reason: "must not contain ':' or a line break (it goes into /etc/passwd)"))
            }
            user.password = try optionalString(o["password"], "\(p).password")
            if let pw = user.password, let reason = BlueprintRules.passwordProblem(pw) {
                throw origin.error("\(p).password", .invalid(reason: reason))
            }
            // As osbuild: an empty password is no password.
            if user.password == "" { user.password = nil }
            user.key = try optionalString(o["key"], "\(p).key")
            if let key = user.key, let reason = BlueprintRules.sshKeyProblem(key) {
                throw origin.error("\(p).key", .invalid(reason: reason))
            }
            user.home = try optionalString(o["home"], "\(p).home")
            if let home = user.home, let reason = BlueprintRules.absolutePathProblem(home) {
                throw origin.error("\(p).home", .invalid(reason: reason))
            }
            // As osbuild: "/srv/widget/" is "/srv/widget".
            while let home = user.home, home.count > 1, home.hasSuffix("/") { user.home = String(home.dropLast()) }
            user.shell = try optionalString(o["shell"], "\(p).shell")
            if let shell = user.shell, let reason = BlueprintRules.absolutePathProblem(shell) {
                throw origin.error("\(p).shell", .invalid(reason: reason))
            }
            user.groups = try checkedStrings(o["groups"], "\(p).groups") { BlueprintRules.accountNameProblem($0, kind: "group") }
            user.uid = try optionalInt(o["uid"], "\(p).uid")
            if let uid = user.uid, let reason = BlueprintRules.idProblem(uid, kind: "uid", name: name) {
                throw origin.error("\(p).uid", .invalid(reason: reason))
            }
            user.gid = try optionalInt(o["gid"], "\(p).gid")
            if let gid = user.gid, let reason = BlueprintRules.idProblem(gid, kind: "gid", name: name) {
                throw origin.error("\(p).gid", .invalid(reason: reason))
            }
            user.expireDate = try optionalInt(o["expiredate"], "\(p).expiredate")
            if let days = user.expireDate, !(1...Self.lastExpireDay).contains(days) {
                throw origin.error("\(p).expiredate", .invalid(reason: "\(days) is not a day the account can expire on; give the number of days since 1970-01-01 (1 to \(Self.lastExpireDay)), e.g. 20454 for 2026-01-01 (`echo $(( $(date -d 2026-01-01 +%s) / 86400 ))`)"))
            }
            user.forcePasswordReset = try optionalBool(o["force_password_reset"], "\(p).force_password_reset") ?? false
            out.append(user)
        }
        try unique(out.map { ($0.name, $0.uid) }, path, key: "uid")
        return out
    }

    func groups(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> [Blueprint.Group] {
        var out: [Blueprint.Group] = []
        var seen: [String: String] = [:]
        for (p, o) in try tables(v, path) {
            let name = try required(o, "name", p, fix: "give the group's name, e.g. name = \"developers\"")
            if let reason = BlueprintRules.accountNameProblem(name, kind: "group") {
                throw origin.error("\(p).name", .invalid(reason: reason))
            }
            try claim(name, p, in: &seen)
            let gid = try optionalInt(o["gid"], "\(p).gid")
            if let gid, let reason = BlueprintRules.idProblem(gid, kind: "gid", name: name) {
                throw origin.error("\(p).gid", .invalid(reason: reason))
            }
            out.append(.init(name: name, gid: gid))
        }
        try unique(out.map { ($0.name, $0.gid) }, path, key: "gid")
        return out
    }

    func sshKeys(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> [Blueprint.SSHKey] {
        var out: [Blueprint.SSHKey] = []
        for (p, o) in try tables(v, path) {
            let user = try required(o, "user", p, fix: "name the user whose authorized_keys get the key")
            if let reason = BlueprintRules.accountNameProblem(user, kind: "user") {
                throw origin.error("\(p).user", .invalid(reason: reason))
            }
            let key = try required(o, "key", p, fix: "give an SSH public key, e.g. key = \"ssh-ed25519 AAAA… me@host\"")
            if let reason = BlueprintRules.sshKeyProblem(key) { throw origin.error("\(p).key", .invalid(reason: reason)) }
            out.append(.init(user: user, key: key))
        }
        return out
    }

    func services(_ v: JSONValue, _ path: String) throws(BlueprintError) -> Blueprint.Services {
        let o = try table(v, path)
        var lists: [String: [String]] = [:]
        var owner: [String: String] = [:]
        for key in ["enabled", "disabled", "masked"] {
            guard let value = o[key] else { continue }
            var units: [String] = []
            for (i, name) in try stringArray(value, "\(path).\(key)").enumerated() {
                let p = "\(path).\(key)[\(i)]"
                if let reason = BlueprintRules.unitNameProblem(name) { throw origin.error(p, .invalid(reason: reason)) }
                let unit = BlueprintRules.unitName(name)
                if let first = owner[unit] {
                    throw origin.error(p, .invalid(reason: "\"\(unit)\" is also listed at \(first); a unit can be only one of enabled, disabled or masked: remove one"))
                }
                owner[unit] = p
                units.append(unit)
            }
            lists[key] = units
        }
        return .init(enabled: lists["enabled"] ?? [], disabled: lists["disabled"] ?? [], masked: lists["masked"] ?? [])
    }
}
