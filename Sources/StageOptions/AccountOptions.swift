/// `org.osbuild.groups`: groups added to the tree, by name.
package struct GroupsOptions: StageOptionsType {
    package static let stageType = "org.osbuild.groups"

    package struct Group: Codable, Sendable {
        package var gid: Int?

        package init(gid: Int? = nil) {
            self.gid = gid
        }
    }

    package var groups: [String: Group]

    package init(groups: [String: Group]) {
        self.groups = groups
    }
}

/// `org.osbuild.users`: users added to (or, when they exist, updated in) the tree, by name.
package struct UsersOptions: StageOptionsType {
    package static let stageType = "org.osbuild.users"

    package struct User: Codable, Sendable {
        package var uid: Int?
        package var gid: Int?
        package var groups: [String]?
        package var description: String?
        package var home: String?
        package var shell: String?
        /// A crypt(3) hash; `!`/`*` lock the account.
        package var password: String?
        /// SSH public keys, one per line.
        package var key: String?
        /// Account expiry in days since 1970-01-01 (shadow's expire field).
        package var expiredate: Int?
        /// Force a password change at the next login (shadow's last change 0).
        package var forcePasswordReset: Bool?

        enum CodingKeys: String, CodingKey {
            case uid, gid, groups, description, home, shell, password, key, expiredate
            case forcePasswordReset = "force_password_reset"
        }

        package init(
            uid: Int? = nil, gid: Int? = nil, groups: [String]? = nil, description: String? = nil, home: String? = nil,
            shell: String? = nil, password: String? = nil, key: String? = nil, expiredate: Int? = nil,
            forcePasswordReset: Bool? = nil
        ) {
            (
                self.uid, self.gid, self.groups, self.description, self.home, self.shell, self.password, self.key, self.expiredate,
                self.forcePasswordReset
            ) = (uid, gid, groups, description, home, shell, password, key, expiredate, forcePasswordReset)
        }
    }

    package var users: [String: User]

    package init(users: [String: User]) {
        self.users = users
    }
}
