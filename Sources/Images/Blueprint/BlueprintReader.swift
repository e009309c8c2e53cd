import Manifest

/// Turns a parsed document into a `Blueprint`, checking every key against
/// `BlueprintKeys` and every value against `BlueprintRules`. The first problem
/// found is thrown as a `BlueprintError` with its key path and TOML line.
struct BlueprintReader {
    enum Format { case toml, json }
    let origin: BlueprintOrigin
    let format: Format

    func blueprint(_ doc: JSONValue) throws(BlueprintError) -> Blueprint {
        try refuseNUL(doc, "")
        let o = try object(doc, "")
        try checkKeys(o, "")
        guard let nameValue = o["name"] else {
            throw origin.error("name", .missing(fix: "give the blueprint a name, e.g. name = \"base\""))
        }
        let name = try string(nameValue, "name")
        if name.isEmpty { throw origin.error("name", .invalid(reason: "must not be empty; give the blueprint a name, e.g. name = \"base\"")) }
        var bp = Blueprint(name: name, origin: origin)
        bp.description = try optionalString(o["description"], "description") ?? ""
        bp.version = try optionalString(o["version"], "version") ?? ""
        if !bp.version.isEmpty, !BlueprintRules.isSemanticVersion(bp.version) {
            throw origin.error("version", .invalid(reason: "\"\(bp.version)\" is not a semantic version; use the form 1.2.3"))
        }
        bp.distro = try optionalString(o["distro"], "distro")
        bp.architecture = try optionalString(o["architecture"], "architecture")
        if let arch = bp.architecture, Architecture(name: arch) == nil {
            throw origin.error("architecture", .invalid(reason: "unknown architecture \"\(arch)\"; use x86_64 or aarch64"))
        }
        var packageNames: [String: String] = [:]
        bp.packages = try packageList(o["packages"], "packages", &packageNames)
        bp.modules = try packageList(o["modules"], "modules", &packageNames)
        bp.groups = try tasks(o["groups"], "groups")
        bp.minimal = try optionalBool(o["minimal"], "minimal") ?? false
        if let c = o["customizations"] {
            bp.customizations = try customizations(c, "customizations")
        }
        return bp
    }

    // MARK: content

    /// `[[packages]]` or `[[modules]]` (both are installed as packages). A name may
    /// appear once in the two lists, as apt installs one version of a package: a
    /// second entry with another version glob would contradict the first.
    func packageList(_ v: JSONValue?, _ path: String, _ seen: inout [String: String]) throws(BlueprintError) -> [Blueprint.PackageSpec] {
        var out: [Blueprint.PackageSpec] = []
        for (p, o) in try tables(v, path) {
            let name = try required(o, "name", p, fix: "give the Debian package name, e.g. name = \"openssh-server\"")
            guard BlueprintRules.isPackageName(name) else {
                throw origin.error("\(p).name", .invalid(reason: "\"\(name)\" is not a Debian package name; use lower-case letters, digits, '+', '-' and '.' (at least two characters, starting with a letter or digit)"))
            }
            try claim(name, p, in: &seen)
            var version = try optionalString(o["version"], "\(p).version") ?? "*"
            if version.isEmpty { version = "*" }
            if let reason = BlueprintRules.versionGlobProblem(version) {
                throw origin.error("\(p).version", .invalid(reason: reason))
            }
            out.append(.init(name: name, version: version))
        }
        return out
    }

    /// `[[groups]]`: Debian tasks.
    func tasks(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> [String] {
        var out: [String] = []
        var seen: [String: String] = [:]
        for (p, o) in try tables(v, path) {
            let name = try required(o, "name", p, fix: "give a Debian task, e.g. name = \"ssh-server\"")
            if let reason = BlueprintRules.taskNameProblem(name) { throw origin.error("\(p).name", .invalid(reason: reason)) }
            try claim(name, p, in: &seen)
            out.append(name)
        }
        return out
    }

    func customizations(_ v: JSONValue, _ path: String) throws(BlueprintError) -> Blueprint.Customizations {
        let o = try object(v, path)
        try checkKeys(o, path)
        var c = Blueprint.Customizations()
        if let h = o["hostname"] {
            let hostname = try string(h, "\(path).hostname")
            if let reason = HostName.problem(hostname) {
                throw origin.error("\(path).hostname", .invalid(reason: reason))
            }
            c.hostname = hostname
        }
        if let k = o["kernel"] { c.kernel = try kernel(k, "\(path).kernel") }
        if let tz = o["timezone"] { (c.timezone, c.ntpServers) = try timezone(tz, "\(path).timezone") }
        if let l = o["locale"] { c.locale = try locale(l, "\(path).locale") }
        if let f = o["firewall"] { c.firewall = try firewall(f, "\(path).firewall") }
        if let s = o["services"] { c.services = try services(s, "\(path).services") }
        c.groups = try groups(o["group"], "\(path).group")
        c.users = try users(o["user"], "\(path).user")
        c.sshKeys = try sshKeys(o["sshkey"], "\(path).sshkey")
        c.filesystems = try filesystems(o["filesystem"], "\(path).filesystem")
        if let d = o["disk"] {
            if o["filesystem"] != nil {
                let other = origin.line(of: "\(path).filesystem").map { " (line \($0))" } ?? ""
                throw origin.error("\(path).disk", .invalid(reason: "cannot be combined with [[customizations.filesystem]]\(other): [customizations.disk] describes the whole partition table; move those mountpoints into its partitions, or remove [customizations.disk]"))
            }
            c.disk = try disk(d, "\(path).disk")
        }
        if let m = o["partitioning_mode"] {
            c.partitioningMode = try partitioningMode(m, "\(path).partitioning_mode")
            if o["disk"] != nil {
                throw origin.error("\(path).partitioning_mode", .invalid(reason: "applies to the image type's layout and [[customizations.filesystem]]; [customizations.disk] already says which partitions are LVM: remove partitioning_mode"))
            }
        }
        c.directories = try directories(o["directories"], "\(path).directories")
        c.files = try files(o["files"], "\(path).files", directories: c.directories)
        c.repositories = try repositories(o["repositories"], "\(path).repositories")
        if let ca = o["cacerts"] { c.caCerts = try caCerts(ca, "\(path).cacerts") }
        if let s = o["sshd"] { c.sshd = try sshd(s, "\(path).sshd") }
        if let f = o["firstboot"] { c.firstBoot = try firstBoot(f, "\(path).firstboot") }
        return c
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

    /// A table or object. In JSON a `null` member counts as absent (exports write them for empty
    /// optionals); in TOML `.null` stands for a date, which no key takes, so it stays and is reported.
    func object(_ v: JSONValue, _ path: String) throws(BlueprintError) -> [String: JSONValue] {
        guard case .object(let o) = v else {
            throw origin.error(path, .wrongType(expected: format == .toml ? "a table" : "an object", found: typeName(v)))
        }
        guard format == .json else { return o }
        return o.filter { if case .null = $0.value { false } else { true } }
    }

    /// `example` shows the expected TOML form, e.g. `groups = ["a", "b"]` or `[[packages]]`.
    func array(_ v: JSONValue, _ path: String, example: String? = nil) throws(BlueprintError) -> [JSONValue] {
        guard case .array(let a) = v else {
            let hint = format == .toml ? example.map { " (\($0))" } ?? "" : ""
            throw origin.error(path, .wrongType(expected: "an array\(hint)", found: typeName(v)))
        }
        return a
    }

    /// The entries of an array of tables, each with its indexed path, keys already checked.
    func tables(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> [(String, [String: JSONValue])] {
        guard let v else { return [] }
        var out: [(String, [String: JSONValue])] = []
        for (i, item) in try array(v, path, example: tablesExample(path)).enumerated() {
            let p = "\(path)[\(i)]"
            let o = try object(item, p)
            try checkKeys(o, p)
            out.append((p, o))
        }
        return out
    }

    /// A table whose keys are checked.
    func table(_ v: JSONValue, _ path: String) throws(BlueprintError) -> [String: JSONValue] {
        let o = try object(v, path)
        try checkKeys(o, path)
        return o
    }

    /// `customizations.user[0]` → `[[customizations.user]]`.
    func tablesExample(_ path: String) -> String {
        "one [[\(BlueprintKeys.section(of: path))]] section per entry"
    }

    /// A NUL (`\u0000` in TOML or JSON) anywhere, in a value or a key: a C
    /// string, a file name or a command line would end there without a word.
    func refuseNUL(_ v: JSONValue, _ path: String) throws(BlueprintError) {
        switch v {
        case .string(let s) where s.utf8.contains(0):
            throw origin.error(path, .invalid(reason: "contains a NUL character (\\u0000), which would cut the value short; remove it"))
        case .array(let items):
            for (i, item) in items.enumerated() { try refuseNUL(item, "\(path)[\(i)]") }
        case .object(let o):
            for (key, value) in o {
                let p = path.isEmpty ? key : "\(path).\(key)"
                if key.utf8.contains(0) {
                    throw origin.error(path.isEmpty ? "(top level)" : path, .invalid(reason: "a key contains a NUL character (\\u0000); remove it"))
                }
                try refuseNUL(value, p)
            }
        default: break
        }
    }

    func string(_ v: JSONValue, _ path: String) throws(BlueprintError) -> String {
        guard case .string(let s) = v else { throw origin.error(path, .wrongType(expected: "a string", found: typeName(v))) }
        return s
    }

    func optionalString(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> String? {
        guard let v else { return nil }
        return try string(v, path)
    }

    func int(_ v: JSONValue, _ path: String) throws(BlueprintError) -> Int {
        guard case .int(let i) = v, let n = Int(exactly: i) else {
            throw origin.error(path, .wrongType(expected: "an integer", found: typeName(v)))
        }
        return n
    }

    func optionalInt(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> Int? {
        guard let v else { return nil }
        return try int(v, path)
    }

    func optionalBool(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> Bool? {
        guard let v else { return nil }
        guard case .bool(let b) = v else {
            throw origin.error(path, .wrongType(expected: "a boolean (true or false)", found: typeName(v)))
        }
        return b
    }

    func stringArray(_ v: JSONValue, _ path: String) throws(BlueprintError) -> [String] {
        var out: [String] = []
        let key = path.split(separator: ".").last.map(String.init) ?? path
        for (i, item) in try array(v, path, example: "e.g. \(key) = [\"a\", \"b\"]").enumerated() {
            out.append(try string(item, "\(path)[\(i)]"))
        }
        return out
    }

    /// A string array whose every element passes `rule`.
    func checkedStrings(_ v: JSONValue?, _ path: String, _ rule: (String) -> String?) throws(BlueprintError) -> [String] {
        guard let v else { return [] }
        let items = try stringArray(v, path)
        for (i, item) in items.enumerated() {
            if let reason = rule(item) { throw origin.error("\(path)[\(i)]", .invalid(reason: reason)) }
        }
        return items
    }

    func required(_ o: [String: JSONValue], _ key: String, _ path: String, fix: String) throws(BlueprintError) -> String {
        guard let v = o[key] else { throw origin.error("\(path).\(key)", .missing(fix: fix)) }
        let s = try string(v, "\(path).\(key)")
        if s.isEmpty { throw origin.error("\(path).\(key)", .invalid(reason: "must not be empty; \(fix)")) }
        return s
    }

    /// A size: an integer number of bytes or a string with a unit; more than zero.
    func size(_ v: JSONValue, _ path: String) throws(BlueprintError) -> Int64 {
        let bytes: Int64
        switch v {
        case .int(let i):
            bytes = i
        case .string(let s):
            switch BlueprintRules.parseSize(s) {
            case .success(let b): bytes = b
            case .failure(let problem): throw origin.error(path, .invalid(reason: problem.reason))
            }
        default:
            throw origin.error(path, .wrongType(expected: "an integer (bytes) or a string with a unit such as \"2 GiB\"", found: typeName(v)))
        }
        if bytes <= 0 { throw origin.error(path, .invalid(reason: "must be more than 0 bytes; \(BlueprintRules.sizeFix)")) }
        return bytes
    }

    /// Rejects keys outside the section's supported keys, naming recognised osbuild-composer keys as unsupported.
    func checkKeys(_ o: [String: JSONValue], _ path: String) throws(BlueprintError) {
        let section = BlueprintKeys.section(of: path)
        let supported = BlueprintKeys.supported[section] ?? []
        assert(BlueprintKeys.supported[section] != nil, "no BlueprintKeys entry for section \(section)")
        let rejected = BlueprintKeys.rejected[section] ?? [:]
        let allowed = Set(supported)
        let child = { (key: String) in BlueprintKeys.join(path, key) }
        // Report the first offending key in file order (line), then by name.
        let offending = o.keys.filter { !allowed.contains($0) }
            .sorted { (origin.lines[child($0)] ?? .max, $0) < (origin.lines[child($1)] ?? .max, $1) }
        guard let key = offending.first else { return }
        if let fix = rejected[key] {
            throw origin.error(child(key), .unsupported(fix: fix))
        }
        throw origin.error(child(key), .unknownKey(allowed: supported))
    }

    /// Records that `entry` uses `name`, or throws at `entry.key` if an earlier entry does.
    func claim(_ name: String, _ entry: String, key: String = "name", in seen: inout [String: String]) throws(BlueprintError) {
        if let first = seen[name] { throw origin.error("\(entry).\(key)", .duplicate(name: name, firstAt: first)) }
        seen[name] = entry
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
