import Manifest

/// `[[customizations.directories]]` and `[[customizations.files]]`.
extension BlueprintReader {
    func directories(_ v: JSONValue?, _ path: String) throws(BlueprintError) -> [Blueprint.Directory] {
        var out: [Blueprint.Directory] = []
        var seen: [String: String] = [:]
        for (p, o) in try tables(v, path) {
            let dir = try nodePath(o, p, policy: BlueprintRules.directoryPaths, example: "/etc/myapp")
            if let first = seen[dir] {
                throw origin.error("\(p).path", .invalid(reason: "\"\(dir)\" is already created by \(first); list each directory once"))
            }
            seen[dir] = p
            var d = Blueprint.Directory(path: dir)
            (d.user, d.group, d.mode) = try ownership(o, p, mode: "0755")
            d.ensureParents = try optionalBool(o["ensure_parents"], "\(p).ensure_parents") ?? false
            out.append(d)
        }
        return out
    }

    func files(_ v: JSONValue?, _ path: String, directories: [Blueprint.Directory]) throws(BlueprintError) -> [Blueprint.File] {
        var out: [Blueprint.File] = []
        var where_: [String: String] = [:]
        for (i, d) in directories.enumerated() { where_[d.path] = "customizations.directories[\(i)]" }
        var filePaths: [String: String] = [:]
        for (p, o) in try tables(v, path) {
            let file = try nodePath(o, p, policy: BlueprintRules.filePaths, example: "/etc/myapp.conf")
            if let first = where_[file] {
                throw origin.error("\(p).path", .invalid(reason: "\"\(file)\" is already created by \(first); give each file and directory its own path"))
            }
            where_[file] = p
            filePaths[file] = p
            var f = Blueprint.File(path: file)
            (f.user, f.group, f.mode) = try ownership(o, p, mode: "0644")
            f.data = try optionalString(o["data"], "\(p).data") ?? ""
            out.append(f)
        }
        // A file cannot be the parent of another file or directory.
        for (node, p) in where_.sorted(by: { $0.value < $1.value }) {
            var parent = Substring(node)
            while let slash = parent.lastIndex(of: "/"), slash != parent.startIndex {
                parent = parent[..<slash]
                if let owner = filePaths[String(parent)] {
                    throw origin.error("\(p).path", .invalid(reason: "\"\(node)\" would be inside \"\(parent)\", which \(owner) creates as a file; make \(parent) a [[customizations.directories]] entry or move one of them"))
                }
            }
        }
        return out
    }

    /// The `path` of a directory or file: canonical, below '/', allowed by `policy`.
    func nodePath(_ o: [String: JSONValue], _ p: String, policy: BlueprintRules.PathPolicy, example: String) throws(BlueprintError) -> String {
        let node = try required(o, "path", p, fix: "give an absolute path, e.g. path = \"\(example)\"")
        if let reason = BlueprintRules.canonicalPathProblem(node, example: example) {
            throw origin.error("\(p).path", .invalid(reason: reason))
        }
        if node == "/" { throw origin.error("\(p).path", .invalid(reason: "\"/\" exists already; give a path below it, e.g. \"\(example)\"")) }
        if let why = policy.problem(node) {
            throw origin.error("\(p).path", .invalid(reason: "\"\(node)\" is not allowed: \(why); choose a path under /etc, /usr/local, /opt, /srv, /var or /home"))
        }
        return node
    }

    /// `user`, `group` and `mode` of a directory or file; `mode` is the example mode for errors.
    func ownership(_ o: [String: JSONValue], _ p: String, mode example: String) throws(BlueprintError) -> (String?, String?, UInt32?) {
        (try owner(o["user"], "\(p).user", kind: "user"), try owner(o["group"], "\(p).group", kind: "group"),
         try mode(o["mode"], "\(p).mode", example: example))
    }

    /// A user or group by name, or by numeric id (kept as a string of digits).
    func owner(_ v: JSONValue?, _ path: String, kind: String) throws(BlueprintError) -> String? {
        guard let v else { return nil }
        switch v {
        case .string(let name):
            if let reason = BlueprintRules.accountNameProblem(name, kind: kind) { throw origin.error(path, .invalid(reason: reason)) }
            return name
        case .int(let id):
            guard (0...4_294_967_294).contains(id) else {
                throw origin.error(path, .invalid(reason: "\(id) is not a \(kind) id; ids run from 0 to 4294967294"))
            }
            return String(id)
        default:
            throw origin.error(path, .wrongType(expected: "a \(kind) name or a numeric id", found: typeName(v)))
        }
    }

    /// An octal mode written as a string ("0755"), as osbuild reads it.
    func mode(_ v: JSONValue?, _ path: String, example: String) throws(BlueprintError) -> UInt32? {
        guard let v else { return nil }
        guard case .string(let s) = v else {
            throw origin.error(path, .wrongType(expected: "a string of octal digits such as \"\(example)\"", found: typeName(v)))
        }
        guard let mode = BlueprintRules.parseMode(s) else {
            throw origin.error(path, .invalid(reason: "\"\(s)\" is not a file mode; give three octal digits, optionally after a 0, e.g. \"\(example)\""))
        }
        return mode
    }
}
