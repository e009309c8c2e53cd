import Foundation

/// `/etc/passwd`, `/etc/shadow`, `/etc/group` and `/etc/gshadow` of a tree,
/// edited in memory and written back with Debian's modes and owners
/// (0644 root:root; 0640 root:shadow). No target binary runs, so this works
/// the same for any architecture.
struct AccountDatabase {
    /// One colon-separated line.
    struct Entry {
        var fields: [String]
        var name: String { fields[0] }
        subscript(_ i: Int) -> String {
            get { i < fields.count ? fields[i] : "" }
            set {
                while fields.count <= i { fields.append("") }
                fields[i] = newValue
            }
        }
    }

    static let files: [(path: String, width: Int, shadow: Bool)] = [
        ("/etc/passwd", 7, false), ("/etc/shadow", 9, true), ("/etc/group", 4, false), ("/etc/gshadow", 4, true),
    ]

    let tree: String
    var passwd: [Entry]
    var shadow: [Entry]
    var group: [Entry]
    var gshadow: [Entry]

    init(tree: String) throws {
        self.tree = tree
        func load(_ path: String, _ width: Int) throws -> [Entry] {
            guard let text = try TreeFiles.read(path, in: tree) else {
                if path == "/etc/passwd" || path == "/etc/group" {
                    throw AccountsError.missingFile(path: path)
                }
                return []
            }
            return text.split(separator: "\n").filter { !$0.isEmpty }.map {
                var e = Entry(fields: $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init))
                if e.fields.count < width { e[width - 1] = e[width - 1] }
                return e
            }
        }
        passwd = try load("/etc/passwd", 7)
        shadow = try load("/etc/shadow", 9)
        group = try load("/etc/group", 4)
        gshadow = try load("/etc/gshadow", 4)
    }

    // MARK: Lookups

    func user(_ name: String) -> Int? { passwd.firstIndex { $0.name == name } }
    func groupIndex(_ name: String) -> Int? { group.firstIndex { $0.name == name } }
    func groupIndex(gid: Int) -> Int? { group.firstIndex { Int($0[2]) == gid } }

    var usedUIDs: Set<Int> { Set(passwd.compactMap { Int($0[2]) }) }
    var usedGIDs: Set<Int> { Set(group.compactMap { Int($0[2]) }) }

    /// The smallest free id ≥ `minimum` (Debian's UID_MIN/GID_MIN, 1000), preferring `preferred`.
    static func nextFree(_ used: Set<Int>, minimum: Int = 1000, preferred: Int? = nil) -> Int {
        if let p = preferred, !used.contains(p) { return p }
        var id = minimum
        while used.contains(id) { id += 1 }
        return id
    }

    // MARK: Edits

    mutating func addGroup(_ name: String, gid: Int) throws {
        if let i = groupIndex(gid: gid), group[i].name != name {
            throw AccountsError.idInUse(kind: "gid", id: gid, owner: group[i].name, wanted: name)
        }
        group.append(Entry(fields: [name, "x", "\(gid)", ""]))
        gshadow.append(Entry(fields: [name, "!", "", ""]))
    }

    mutating func setShadowPassword(_ user: String, _ hash: String) {
        if let i = shadow.firstIndex(where: { $0.name == user }) {
            shadow[i][1] = hash
        } else {
            // Empty date of last change: aging off, and no clock in the build.
            shadow.append(Entry(fields: [user, hash, "", "0", "99999", "7", "", "", ""]))
        }
    }

    mutating func addMember(_ user: String, toGroup name: String) {
        guard let i = groupIndex(name) else { return }
        var members = group[i][3].split(separator: ",").map(String.init)
        if !members.contains(user) { members.append(user) }
        group[i][3] = members.joined(separator: ",")
        if let j = gshadow.firstIndex(where: { $0.name == name }) {
            var m = gshadow[j][3].split(separator: ",").map(String.init)
            if !m.contains(user) { m.append(user) }
            gshadow[j][3] = m.joined(separator: ",")
        }
    }

    /// Writes the four files atomically with Debian's modes and owners.
    func save() throws {
        let shadowGID = groupIndex("shadow").flatMap { Int(group[$0][2]) } ?? 0
        for (path, entries, isShadow) in [("/etc/passwd", passwd, false), ("/etc/shadow", shadow, true),
                                          ("/etc/group", group, false), ("/etc/gshadow", gshadow, true)] {
            let text = entries.map { $0.fields.joined(separator: ":") }.joined(separator: "\n") + (entries.isEmpty ? "" : "\n")
            try TreeFiles.write(text, to: path, in: tree, mode: isShadow ? 0o640 : 0o644)
            let host = try TreePath.resolve(path, in: tree)
            chown(host, 0, gid_t(isShadow ? shadowGID : 0))
            chmod(host, isShadow ? 0o640 : 0o644)
        }
    }
}
