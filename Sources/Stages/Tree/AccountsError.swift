/// Why users or groups could not be created.
package enum AccountsError: Error, Sendable, CustomStringConvertible {
    /// The tree lacks a user database file (no base system installed yet).
    case missingFile(path: String)
    /// A supplementary group of a user does not exist.
    case unknownGroup(user: String, group: String)
    /// A uid/gid is already taken by another account.
    case idInUse(kind: String, id: Int, owner: String, wanted: String)
    /// A name that `/etc/passwd` cannot hold.
    case invalidName(kind: String, name: String)

    package var description: String {
        switch self {
        case .missingFile(let path):
            "\(path) does not exist in the tree; users and groups are added after org.kiln.debian.install"
        case .unknownGroup(let user, let group):
            "users.\(user).groups: group \"\(group)\" does not exist in the image; add it with org.osbuild.groups or install the package that creates it"
        case .idInUse(let kind, let id, let owner, let wanted):
            "\(kind) \(id) for \"\(wanted)\" is already used by \"\(owner)\"; choose another \(kind) or omit it"
        case .invalidName(let kind, let name):
            "\(kind) name \"\(name)\" is invalid: use lower-case letters, digits, '_', '-' (no ':' or whitespace), starting with a letter or '_'"
        }
    }

    /// Debian's default NAME_REGEX, loosened to what useradd accepts.
    static func check(_ name: String, kind: String) throws(AccountsError) {
        let ok = !name.isEmpty && name.count <= 32
            && (name.first!.isLetter || name.first == "_")
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_-.$".contains($0)) }
        if !ok { throw .invalidName(kind: kind, name: name) }
    }
}
