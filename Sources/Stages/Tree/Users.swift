import Foundation
import StageOptions

/// Adds or updates users: `/etc/passwd` and `/etc/shadow`, a per-user group
/// (Debian's USERGROUPS), supplementary groups, the home directory from
/// `/etc/skel`, and `~/.ssh/authorized_keys` (osbuild's schema).
package struct Users: Stage {
    package typealias Options = UsersOptions
    package typealias User = UsersOptions.User
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        var db = try AccountDatabase(tree: context.tree)
        var homes: [(path: String, uid: Int, gid: Int, key: String?, created: Bool)] = []
        // Users are made in name order: an automatic id must not take an explicit
        // one that a user later in that order asks for (alice without a uid, bob with 1000).
        let explicitUIDs = Set(options.users.values.compactMap(\.uid))
        let explicitGIDs = Set(options.users.values.compactMap(\.gid))
        for (name, u) in options.users.sorted(by: { $0.key < $1.key }) {
            try AccountsError.check(name, kind: "user")
            for field in [u.description, u.home, u.shell, u.password].compactMap({ $0 }) where field.contains(":") || field.contains("\n") {
                throw StageError.invalidOptions(reason: "\(Self.type): users.\(name): \"\(field)\" must not contain ':' or a newline")
            }
            for g in u.groups ?? [] where db.groupIndex(g) == nil { throw AccountsError.unknownGroup(user: name, group: g) }

            let index: Int
            if let i = db.user(name) {
                index = i
                if let uid = u.uid, Int(db.passwd[i][2]) != uid {
                    if let other = db.passwd.first(where: { Int($0[2]) == uid }) {
                        throw AccountsError.idInUse(kind: "uid", id: uid, owner: other.name, wanted: name)
                    }
                    db.passwd[i][2] = "\(uid)"
                }
                if let gid = u.gid { db.passwd[i][3] = "\(gid)" }
                if let d = u.description { db.passwd[i][4] = d }
                if let h = u.home { db.passwd[i][5] = h }
                if let s = u.shell { db.passwd[i][6] = s }
            } else {
                if let uid = u.uid, let other = db.passwd.first(where: { Int($0[2]) == uid }) {
                    throw AccountsError.idInUse(kind: "uid", id: uid, owner: other.name, wanted: name)
                }
                let uid = u.uid ?? AccountDatabase.nextFree(db.usedUIDs.union(explicitUIDs))
                let gid: Int
                if let g = u.gid {
                    gid = g
                    if db.groupIndex(gid: g) == nil { try db.addGroup(name, gid: g) }
                } else if let gi = db.groupIndex(name) {
                    gid = Int(db.group[gi][2]) ?? uid
                } else {
                    gid = AccountDatabase.nextFree(db.usedGIDs.union(explicitGIDs), preferred: uid)
                    try db.addGroup(name, gid: gid)
                }
                let shell = u.shell ?? (TreeFiles.exists("/bin/bash", in: context.tree) ? "/bin/bash" : "/bin/sh")
                db.passwd.append(.init(fields: [name, "x", "\(uid)", "\(gid)", u.description ?? "", u.home ?? "/home/\(name)", shell]))
                db.setShadowPassword(name, "!")
                index = db.passwd.count - 1
            }
            if let p = u.password { db.setShadowPassword(name, p) }
            if db.shadow.first(where: { $0.name == name }) == nil { db.setShadowPassword(name, "!") }
            if let si = db.shadow.firstIndex(where: { $0.name == name }) {
                if let days = u.expiredate {
                    guard days >= 0 else { throw StageError.invalidOptions(reason: "\(Self.type): users.\(name).expiredate must not be negative") }
                    db.shadow[si][7] = "\(days)"
                }
                if u.forcePasswordReset == true { db.shadow[si][2] = "0" }
            }
            for g in u.groups ?? [] { db.addMember(name, toGroup: g) }

            let entry = db.passwd[index]
            let home = entry[5]
            let hostHome = try context.path(home)
            let created = !FileManager.default.fileExists(atPath: hostHome) && home != "/nonexistent" && !home.isEmpty
            homes.append((home, Int(entry[2]) ?? 0, Int(entry[3]) ?? 0, u.key, created))
        }
        try db.save()

        for h in homes {
            let host = try context.path(h.path)
            if h.created {
                try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
                if FileManager.default.fileExists(atPath: try context.path("/etc/skel")) {
                    try await context.run(["cp", "-a", "--no-preserve=ownership", try context.path("/etc/skel") + "/.", host])
                }
                try await context.run(["chown", "-R", "\(h.uid):\(h.gid)", host])
                chmod(host, 0o700)
            }
            if let key = h.key {
                let ssh = host + "/.ssh"
                try FileManager.default.createDirectory(atPath: ssh, withIntermediateDirectories: true)
                let keys = key.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                try TreeFiles.write(keys.joined(separator: "\n") + "\n", to: h.path + "/.ssh/authorized_keys", in: context.tree, mode: 0o600)
                for p in [ssh, ssh + "/authorized_keys"] { chown(p, uid_t(h.uid), gid_t(h.gid)) }
                chmod(ssh, 0o700)
                chmod(ssh + "/authorized_keys", 0o600)
            }
        }
    }
}
