import Foundation
import Manifest
import TOMLKit

// Keys implemented in this version, and the osbuild-composer keys that are
// recognised but rejected as not supported yet.
//
// top level:       name, description, version, distro, architecture,
//                  [[packages]], [[modules]], [[groups]] (empty only)
// customizations:  hostname, [timezone] timezone, [[user]], [[group]],
//                  [[sshkey]], [services] enabled/disabled/masked
extension Blueprint {
    /// Reads a blueprint file; `.json` files (or text starting with `{`) are
    /// JSON, anything else TOML. Errors name `path` as given.
    package static func load(path: String) throws(BlueprintError) -> Blueprint {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
            throw BlueprintError(file: path, keyPath: "", problem: .invalid(reason: "the file \(reason); give the path of a blueprint (.toml or .json)"))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw BlueprintError(file: path, keyPath: "", problem: .syntax(format: "UTF-8 text", reason: "the file contains bytes that are not UTF-8"))
        }
        let isJSON = path.lowercased().hasSuffix(".json")
            || (!path.lowercased().hasSuffix(".toml") && text.drop(while: \.isWhitespace).first == "{")
        return isJSON ? try parse(json: text, file: path) : try parse(toml: text, file: path)
    }

    /// Parses a TOML blueprint.
    package static func parse(toml text: String, file: String = "blueprint.toml") throws(BlueprintError) -> Blueprint {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw BlueprintError(file: file, keyPath: "", line: error.source.begin.line,
                                 problem: .syntax(format: "TOML", reason: "\(error.description) (column \(error.source.begin.column))"))
        } catch {
            throw BlueprintError(file: file, keyPath: "", problem: .syntax(format: "TOML", reason: "\(error)"))
        }
        let origin = BlueprintOrigin(file: file, lines: TOMLLineIndex.lines(of: text))
        return try BlueprintReader(origin: origin, format: .toml).blueprint(JSONValue(toml: table))
    }

    /// Parses a JSON blueprint.
    package static func parse(json text: String, file: String = "blueprint.json") throws(BlueprintError) -> Blueprint {
        let value: JSONValue
        do {
            value = try JSONValue.parse(Data(text.utf8))
        } catch {
            let (reason, line) = Self.jsonProblem(text)
            throw BlueprintError(file: file, keyPath: "", line: line, problem: .syntax(format: "JSON", reason: reason))
        }
        return try BlueprintReader(origin: BlueprintOrigin(file: file), format: .json).blueprint(value)
    }

    /// JSONDecoder's errors carry no position; JSONSerialization's say "around character N".
    private static func jsonProblem(_ text: String) -> (String, Int?) {
        do {
            _ = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            return ("the document is not a JSON object", nil)
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            guard let range = detail.range(of: "character "),
                  let offset = Int(detail[range.upperBound...].prefix(while: \.isNumber)) else { return (detail, nil) }
            let before = text.utf8.prefix(offset)
            let line = before.filter { $0 == UInt8(ascii: "\n") }.count + 1
            return (detail, line)
        }
    }
}

extension JSONValue {
    /// A TOML document as a JSON value. TOML dates and times, which no
    /// blueprint key takes, become `null` and are reported as dates.
    init(toml table: TOMLTable) {
        var o: [String: JSONValue] = [:]
        for key in table.keys {
            if let v = table[key] { o[key] = JSONValue(tomlValue: v.tomlValue) }
        }
        self = .object(o)
    }

    init(tomlValue v: TOMLValue) {
        switch v.type {
        case .table: self = v.table.map { JSONValue(toml: $0) } ?? .object([:])
        case .array: self = .array((v.array ?? TOMLArray()).map { JSONValue(tomlValue: $0.tomlValue) })
        case .string: self = .string(v.string ?? "")
        case .int: self = .int(Int64(v.int ?? 0))
        case .double: self = .double(v.double ?? 0)
        case .bool: self = .bool(v.bool ?? false)
        case .date, .time, .dateTime: self = .null
        }
    }
}

/// Turns a parsed document into a `Blueprint`, checking every key.
struct BlueprintReader {
    enum Format { case toml, json }
    let origin: BlueprintOrigin
    let format: Format

    /// osbuild-composer top-level keys not implemented here, with the fix to suggest.
    static let unsupportedTopLevel: [String: String] = [
        "containers": "remove [[containers]]; embedding container images is not implemented",
        "enabled_modules": "remove enabled_modules; Debian has no module streams",
        "minimal": "remove minimal; Kiln's images are minimal already",
    ]

    /// osbuild-composer customizations not implemented here.
    static let unsupportedCustomizations: [String: String] = [
        "kernel": "remove [customizations.kernel]; Kiln sets the kernel and its command line for the image type",
        "firewall": "remove [customizations.firewall]",
        "locale": "remove [customizations.locale]; images use C.UTF-8",
        "filesystem": "remove [[customizations.filesystem]]; the image type fixes the disk layout",
        "disk": "remove [customizations.disk]; the image type fixes the disk layout",
        "directories": "remove [[customizations.directories]]",
        "files": "remove [[customizations.files]]",
        "repositories": "remove [[customizations.repositories]]; only the Debian archive is used",
        "fips": "remove fips",
        "openscap": "remove [customizations.openscap]",
        "installation_device": "remove installation_device",
        "fdo": "remove [customizations.fdo]",
        "ignition": "remove [customizations.ignition]",
        "partitioning_mode": "remove partitioning_mode; the image type fixes the disk layout",
        "installer": "remove [customizations.installer]",
        "rpm": "remove [customizations.rpm]; Debian images have no RPM database",
        "rhsm": "remove [customizations.rhsm]",
        "cacerts": "remove [customizations.cacerts]",
        "containers-storage": "remove [customizations.containers-storage]",
        "wsl": "remove [customizations.wsl]",
    ]

    func blueprint(_ doc: JSONValue) throws(BlueprintError) -> Blueprint {
        let o = try object(doc, "")
        try checkKeys(o, "", supported: ["name", "description", "version", "distro", "architecture",
                                         "packages", "modules", "groups", "customizations"],
                      unsupported: Self.unsupportedTopLevel)
        guard let nameValue = o["name"] else {
            throw origin.error("name", .missing(fix: "give the blueprint a name, e.g. name = \"base\""))
        }
        let name = try string(nameValue, "name")
        if name.isEmpty { throw origin.error("name", .invalid(reason: "must not be empty")) }
        var bp = Blueprint(name: name, origin: origin)
        bp.description = try o["description"].map { v throws(BlueprintError) in try string(v, "description") } ?? ""
        bp.version = try o["version"].map { v throws(BlueprintError) in try string(v, "version") } ?? ""
        if !bp.version.isEmpty, !BlueprintRules.isSemanticVersion(bp.version) {
            throw origin.error("version", .invalid(reason: "\"\(bp.version)\" is not a semantic version; use the form 1.2.3"))
        }
        bp.distro = try optionalString(o["distro"], "distro")
        bp.architecture = try optionalString(o["architecture"], "architecture")
        if let arch = bp.architecture, Architecture(name: arch) == nil {
            throw origin.error("architecture", .invalid(reason: "unknown architecture \"\(arch)\"; use x86_64 or aarch64"))
        }
        bp.packages = try packageList(o["packages"], "packages")
        bp.modules = try packageList(o["modules"], "modules")
        if let groups = o["groups"] {
            let a = try array(groups, "groups")
            if !a.isEmpty {
                throw origin.error("groups", .unsupported(fix: "package groups are RPM comps groups; list the Debian packages under [[packages]] instead"))
            }
        }
        if let c = o["customizations"] {
            bp.customizations = try customizations(c, "customizations")
        }
        return bp
    }

    // MARK: sections

    func packageList(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> [Blueprint.PackageSpec] {
        guard let v else { return [] }
        var out: [Blueprint.PackageSpec] = []
        for (i, item) in try array(v, path, example: tablesExample(path)).enumerated() {
            let p = "\(path)[\(i)]"
            let o = try object(item, p)
            try checkKeys(o, p, supported: ["name", "version"])
            let name = try required(o, "name", p, fix: "give the Debian package name, e.g. name = \"openssh-server\"")
            guard BlueprintRules.isPackageName(name) else {
                throw origin.error("\(p).name", .invalid(reason: "\"\(name)\" is not a Debian package name (lower-case letters, digits, '+', '-', '.'; at least two characters, starting with a letter or digit)"))
            }
            let version = try optionalString(o["version"], "\(p).version") ?? "*"
            if version != "*" && !version.isEmpty {
                throw origin.error("\(p).version", .unsupported(fix: "pinning package versions is not implemented yet; use version = \"*\" (the newest version in the archive)"))
            }
            out.append(.init(name: name, version: "*"))
        }
        return out
    }

    func customizations(_ v: JSONValue, _ path: String) throws(BlueprintError) -> Blueprint.Customizations {
        let o = try object(v, path)
        try checkKeys(o, path, supported: ["hostname", "timezone", "user", "group", "sshkey", "services"],
                      unsupported: Self.unsupportedCustomizations)
        var c = Blueprint.Customizations()
        if let h = o["hostname"] {
            let hostname = try string(h, "\(path).hostname")
            if let reason = BlueprintRules.hostnameProblem(hostname) {
                throw origin.error("\(path).hostname", .invalid(reason: reason))
            }
            c.hostname = hostname
        }
        if let tz = o["timezone"] {
            let tp = "\(path).timezone"
            let t = try object(tz, tp)
            try checkKeys(t, tp, supported: ["timezone"],
                          unsupported: ["ntpservers": "remove ntpservers for now; the image uses systemd-timesyncd's defaults"])
            if let zone = try optionalString(t["timezone"], "\(tp).timezone") {
                if let reason = BlueprintRules.timezoneProblem(zone) {
                    throw origin.error("\(tp).timezone", .invalid(reason: reason))
                }
                c.timezone = zone
            }
        }
        c.groups = try groups(o["group"], "\(path).group")
        c.users = try users(o["user"], "\(path).user")
        c.sshKeys = try sshKeys(o["sshkey"], "\(path).sshkey")
        if let s = o["services"] { c.services = try services(s, "\(path).services") }
        return c
    }

    func users(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> [Blueprint.User] {
        guard let v else { return [] }
        var out: [Blueprint.User] = []
        var seen: [String: String] = [:]
        for (i, item) in try array(v, path, example: tablesExample(path)).enumerated() {
            let p = "\(path)[\(i)]"
            let o = try object(item, p)
            try checkKeys(o, p, supported: ["name", "description", "password", "key", "home", "shell", "groups", "uid", "gid"],
                          unsupported: ["expiredate": "remove expiredate", "force_password_reset": "remove force_password_reset"])
            let name = try required(o, "name", p, fix: "give the user's login name, e.g. name = \"kiln\"")
            if let reason = BlueprintRules.accountNameProblem(name, kind: "user") {
                throw origin.error("\(p).name", .invalid(reason: reason))
            }
            if let first = seen[name] { throw origin.error("\(p).name", .duplicate(name: name, firstAt: first)) }
            seen[name] = p
            var user = Blueprint.User(name: name)
            user.description = try optionalString(o["description"], "\(p).description")
            if let d = user.description, d.contains(":") || d.contains("\n") {
                throw origin.error("\(p).description", .invalid(reason: "must not contain ':' or a line break (it goes into /etc/passwd)"))
            }
            user.password = try optionalString(o["password"], "\(p).password")
            if let pw = user.password, let reason = BlueprintRules.passwordProblem(pw) {
                throw origin.error("\(p).password", .invalid(reason: reason))
            }
            user.key = try optionalString(o["key"], "\(p).key")
            if let key = user.key, let reason = BlueprintRules.sshKeyProblem(key) {
                throw origin.error("\(p).key", .invalid(reason: reason))
            }
            user.home = try optionalString(o["home"], "\(p).home")
            if let home = user.home, let reason = BlueprintRules.absolutePathProblem(home) {
                throw origin.error("\(p).home", .invalid(reason: reason))
            }
            user.shell = try optionalString(o["shell"], "\(p).shell")
            if let shell = user.shell, let reason = BlueprintRules.absolutePathProblem(shell) {
                throw origin.error("\(p).shell", .invalid(reason: reason))
            }
            if let g = o["groups"] {
                user.groups = try stringArray(g, "\(p).groups")
                for (gi, group) in user.groups.enumerated() {
                    if let reason = BlueprintRules.accountNameProblem(group, kind: "group") {
                        throw origin.error("\(p).groups[\(gi)]", .invalid(reason: reason))
                    }
                }
            }
            user.uid = try optionalInt(o["uid"], "\(p).uid")
            if let uid = user.uid, let reason = BlueprintRules.idProblem(uid, kind: "uid", name: name) {
                throw origin.error("\(p).uid", .invalid(reason: reason))
            }
            user.gid = try optionalInt(o["gid"], "\(p).gid")
            if let gid = user.gid, let reason = BlueprintRules.idProblem(gid, kind: "gid", name: name) {
                throw origin.error("\(p).gid", .invalid(reason: reason))
            }
            out.append(user)
        }
        try unique(out.map { ($0.name, $0.uid) }, path, key: "uid")
        return out
    }

    func groups(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> [Blueprint.Group] {
        guard let v else { return [] }
        var out: [Blueprint.Group] = []
        var seen: [String: String] = [:]
        for (i, item) in try array(v, path, example: tablesExample(path)).enumerated() {
            let p = "\(path)[\(i)]"
            let o = try object(item, p)
            try checkKeys(o, p, supported: ["name", "gid"])
            let name = try required(o, "name", p, fix: "give the group's name, e.g. name = \"developers\"")
            if let reason = BlueprintRules.accountNameProblem(name, kind: "group") {
                throw origin.error("\(p).name", .invalid(reason: reason))
            }
            if let first = seen[name] { throw origin.error("\(p).name", .duplicate(name: name, firstAt: first)) }
            seen[name] = p
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
        guard let v else { return [] }
        var out: [Blueprint.SSHKey] = []
        for (i, item) in try array(v, path, example: tablesExample(path)).enumerated() {
            let p = "\(path)[\(i)]"
            let o = try object(item, p)
            try checkKeys(o, p, supported: ["user", "key"])
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
        let o = try object(v, path)
        try checkKeys(o, path, supported: ["enabled", "disabled", "masked"])
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
                    throw origin.error(p, .invalid(reason: "\"\(unit)\" is also listed at \(first); a unit can be only one of enabled, disabled or masked"))
                }
                owner[unit] = p
                units.append(unit)
            }
            lists[key] = units
        }
        return .init(enabled: lists["enabled"] ?? [], disabled: lists["disabled"] ?? [], masked: lists["masked"] ?? [])
    }

    // MARK: typed access

    func typeName(_ v: JSONValue) -> String {
        switch v {
        case .null: format == .toml ? "a date or time" : "null"
        case .bool: "a boolean"
        case .int: "an integer"
        case .double: format == .toml ? "a float" : "a number with a fraction"
        case .string(let s): "a string (\"\(s.count > 40 ? String(s.prefix(40)) + "…" : s)\")"
        case .array: "an array"
        case .object: format == .toml ? "a table" : "an object"
        }
    }

    func object(_ v: JSONValue, _ path: String) throws(BlueprintError) -> [String: JSONValue] {
        guard case .object(let o) = v else {
            throw origin.error(path, .wrongType(expected: format == .toml ? "a table" : "an object", found: typeName(v)))
        }
        return o
    }

    /// `example` shows the expected TOML form, e.g. `groups = ["a", "b"]` or `[[packages]]`.
    func array(_ v: JSONValue, _ path: String, example: String? = nil) throws(BlueprintError) -> [JSONValue] {
        guard case .array(let a) = v else {
            let hint = format == .toml ? example.map { " (\($0))" } ?? "" : ""
            throw origin.error(path, .wrongType(expected: "an array\(hint)", found: typeName(v)))
        }
        return a
    }

    /// `customizations.user[0]` → `[[customizations.user]]`.
    func tablesExample(_ path: String) -> String {
        "one [[\(path.replacingOccurrences(of: #"\[[0-9]+\]"#, with: "", options: .regularExpression))]] section per entry"
    }

    func string(_ v: JSONValue, _ path: String) throws(BlueprintError) -> String {
        guard case .string(let s) = v else { throw origin.error(path, .wrongType(expected: "a string", found: typeName(v))) }
        return s
    }

    func optionalString(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> String? {
        guard let v else { return nil }
        return try string(v, path)
    }

    func optionalInt(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> Int? {
        guard let v else { return nil }
        guard case .int(let i) = v else { throw origin.error(path, .wrongType(expected: "an integer", found: typeName(v))) }
        return Int(i)
    }

    func stringArray(_ v: JSONValue, _ path: String) throws(BlueprintError) -> [String] {
        var out: [String] = []
        let key = path.split(separator: ".").last.map(String.init) ?? path
        for (i, item) in try array(v, path, example: "e.g. \(key) = [\"a\", \"b\"]").enumerated() {
            out.append(try string(item, "\(path)[\(i)]"))
        }
        return out
    }

    func required(_ o: [String: JSONValue], _ key: String, _ path: String, fix: String) throws(BlueprintError) -> String {
        guard let v = o[key] else { throw origin.error("\(path).\(key)", .missing(fix: fix)) }
        let s = try string(v, "\(path).\(key)")
        if s.isEmpty { throw origin.error("\(path).\(key)", .invalid(reason: "must not be empty; \(fix)")) }
        return s
    }

    /// Rejects keys outside `supported`, naming recognised osbuild-composer keys as unsupported.
    func checkKeys(_ o: [String: JSONValue], _ path: String, supported: [String],
                   unsupported: [String: String] = [:]) throws(BlueprintError) {
        let allowed = Set(supported)
        let child = { (key: String) in path.isEmpty ? key : "\(path).\(key)" }
        // Report the first offending key in file order (line), then by name.
        let offending = o.keys.filter { !allowed.contains($0) }
            .sorted { (origin.lines[child($0)] ?? .max, $0) < (origin.lines[child($1)] ?? .max, $1) }
        guard let key = offending.first else { return }
        if let fix = unsupported[key] {
            throw origin.error(child(key), .unsupported(fix: fix))
        }
        throw origin.error(child(key), .unknownKey(allowed: supported))
    }

    /// Rejects two entries with one numeric id.
    func unique(_ items: [(name: String, id: Int?)], _ path: String, key: String) throws(BlueprintError) {
        var seen: [Int: String] = [:]
        for (index, item) in items.enumerated() {
            guard let id = item.id else { continue }
            if let first = seen[id] {
                throw origin.error("\(path)[\(index)].\(key)", .invalid(reason: "\(key) \(id) is already used by \"\(first)\"; give each a different \(key)"))
            }
            seen[id] = item.name
        }
    }
}
