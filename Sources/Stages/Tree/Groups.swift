import StageOptions

/// Adds groups to `/etc/group` and `/etc/gshadow` (osbuild's schema).
package struct Groups: Stage {
    package typealias Options = GroupsOptions
    package typealias Group = GroupsOptions.Group
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        var db = try AccountDatabase(tree: context.tree)
        // Groups are made in name order: an automatic gid must not take an explicit
        // one that a group later in that order asks for.
        let explicitGIDs = Set(options.groups.values.compactMap(\.gid))
        for (name, g) in options.groups.sorted(by: { $0.key < $1.key }) {
            try AccountsError.check(name, kind: "group")
            if let i = db.groupIndex(name) {
                if let gid = g.gid, Int(db.group[i][2]) != gid {
                    if let other = db.groupIndex(gid: gid) {
                        throw AccountsError.idInUse(kind: "gid", id: gid, owner: db.group[other].name, wanted: name)
                    }
                    db.group[i][2] = "\(gid)"
                }
                continue
            }
            try db.addGroup(name, gid: g.gid ?? AccountDatabase.nextFree(db.usedGIDs.union(explicitGIDs)))
        }
        try db.save()
    }
}
