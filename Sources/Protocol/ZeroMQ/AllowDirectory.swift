import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What a key may do on the scheduler: the folder of the allow directory its
/// `.pub` file is in.
package enum KeyRole: String, Sendable, CaseIterable, Comparable {
    /// `agents/`: may say Hello and run jobs; may not submit or query builds.
    case agent
    /// `clients/`: may submit builds and see, cancel and fetch its own.
    case client
    /// `admins/`: a client that sees and acts on every build and on the farm.
    case admin

    /// The folder of the allow directory that holds keys of this role.
    package var folder: String {
        switch self {
        case .agent: "agents"
        case .client: "clients"
        case .admin: "admins"
        }
    }

    package static func < (a: KeyRole, b: KeyRole) -> Bool { a.rawValue < b.rawValue }
}

/// The scheduler's allow directory: `agents/`, `clients/` and `admins/`,
/// each holding `*.pub` files (one Z85 public key each); `clients/` and
/// `admins/` may also hold `*.token` files, each the sha256 of one HTTP
/// bearer token (`kiln tokens new`), never the token. It is read whole at
/// start and again whenever its `listing` changes; a read never follows a
/// symlink, reads at most `maxFileBytes` of a file and takes at most `maxKeys`
/// keys and as many tokens.
package struct AllowDirectory: Sendable {
    package static let maxKeys = 10_000
    package static let maxFileBytes = 1024

    package let path: String

    /// Keys and their roles, tokens, and what was skipped (one line each, for the log).
    package struct Snapshot: Sendable, Equatable {
        package var roles: [String: KeyRole] = [:]
        /// HTTP bearer tokens by the hex sha256 of the token.
        package var tokens: [String: TokenGrant] = [:]
        package var warnings: [String] = []

        package var keys: Set<String> { Set(roles.keys) }
        package func count(_ role: KeyRole) -> Int { roles.values.count { $0 == role } }
    }

    package init(path: String) {
        self.path = path
    }

    /// Reads the three folders. Throws when the directory is missing, still
    /// flat (`*.pub` directly in it: `AllowDirectoryError.flat`), or a folder
    /// cannot be listed. A file that is not a key (a symlink, too big, not
    /// Z85) is skipped with a warning; a key in two folders counts in none.
    package func load() throws(AllowDirectoryError) -> Snapshot {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw .unreadable(path: path, errno: errno) }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw .notADirectory(path: path) }
        let flat = try names(path).filter { $0.hasSuffix(".pub") }
        if !flat.isEmpty { throw .flat(directory: path, files: flat) }
        var snapshot = Snapshot()
        var seen: [String: KeyRole] = [:]
        var conflicts = Set<String>()
        var tokens = TokenListing()
        for role in KeyRole.allCases {
            let folder = path + "/" + role.folder
            guard lstat(folder, &info) == 0 else {
                if errno == ENOENT { continue }
                throw .unreadable(path: folder, errno: errno)
            }
            guard info.st_mode & S_IFMT == S_IFDIR else { throw .notADirectory(path: folder) }
            let listed = try names(folder)
            readTokens(listed.filter { $0.hasSuffix(".token") }, in: folder, role: role, into: &tokens)
            for name in listed where name.hasSuffix(".pub") {
                let file = folder + "/" + name
                guard seen.count < Self.maxKeys else {
                    snapshot.warnings.append("\(file): skipped; the allow directory holds more than \(Self.maxKeys) keys")
                    continue
                }
                switch Self.readKey(file) {
                case .failure(let reason):
                    snapshot.warnings.append("\(file): skipped: \(reason)")
                case .success(let key):
                    if let other = seen[key], other != role {
                        conflicts.insert(key)
                        snapshot.warnings.append("\(file): key is also in \(other.folder)/; refused in both until it is in one folder")
                    }
                    seen[key] = role
                }
            }
        }
        for (key, role) in seen where !conflicts.contains(key) { snapshot.roles[key] = role }
        snapshot.tokens = tokens.grants
        snapshot.warnings += tokens.warnings
        return snapshot
    }

    /// Tokens read so far: a name (its identity) or a hash in two files counts in none.
    private struct TokenListing {
        var byHash: [String: TokenGrant] = [:]
        var files: [String: [String]] = [:]  // name → files
        var warnings: [String] = []

        var grants: [String: TokenGrant] {
            let refusedNames = Set(files.filter { $0.value.count > 1 }.keys)
            return byHash.filter { !refusedNames.contains($0.value.name) && $0.value.name != "" }
        }
    }

    private func readTokens(_ names: [String], in folder: String, role: KeyRole, into listing: inout TokenListing) {
        for name in names {
            let file = folder + "/" + name
            guard role != .agent else {
                listing.warnings.append("\(file): skipped; agents use keys, tokens belong in clients/ or admins/")
                continue
            }
            guard listing.byHash.count < Self.maxKeys else {
                listing.warnings.append("\(file): skipped; the allow directory holds more than \(Self.maxKeys) tokens")
                continue
            }
            let tokenName = String(name.dropLast(".token".count))
            guard TokenGrant.isValidName(tokenName) else {
                listing.warnings.append("\(file): skipped: \(TokenGrant.nameRule)")
                continue
            }
            switch Self.readFile(file, what: "token file", expected: "one line sha256:<64 hex digits> as `kiln tokens new` writes") {
            case .failure(let reason):
                listing.warnings.append("\(file): skipped: \(reason)")
            case .success(let text):
                guard let hash = TokenGrant.parseDigestLine(text) else {
                    listing.warnings.append("\(file): skipped: not one line sha256:<64 hex digits> as `kiln tokens new` writes")
                    continue
                }
                listing.files[tokenName, default: []].append(file)
                if (listing.files[tokenName]?.count ?? 0) > 1 {
                    listing.warnings.append("\(file): token name \(tokenName) is also used by \(listing.files[tokenName]![0]); refused in both")
                }
                if let other = listing.byHash[hash], other.name != tokenName {
                    listing.warnings.append("\(file): the same token as \(other.name)'s; refused in both")
                    listing.byHash[hash] = TokenGrant(name: "", role: role)
                    continue
                }
                listing.byHash[hash] = TokenGrant(name: tokenName, role: role)
            }
        }
    }

    private func names(_ directory: String) throws(AllowDirectoryError) -> [String] {
        guard let dir = opendir(directory) else { throw .unreadable(path: directory, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            names.append(name)
            // A directory of a million names is not an allow list; stop listing.
            if names.count > Self.maxKeys * 4 { break }
        }
        return names.sorted()
    }

    /// One key file, opened without following a symlink and read to at most `maxFileBytes`.
    static func readKey(_ file: String) -> Result<String, KeyReadFailure> {
        readFile(file, what: "key file", expected: "one 40-character line").flatMap { text in
            CurveKeyPair.isZ85Key(text)
                ? .success(text) : .failure(KeyReadFailure("not one 40-character Z85 key as `kiln keys new` writes"))
        }
    }

    /// A small file of the allow directory, trimmed: opened without following
    /// a symlink, a regular file of at most `maxFileBytes`.
    static func readFile(_ file: String, what: String, expected: String) -> Result<String, KeyReadFailure> {
        let fd = open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        if fd == -1 {
            return .failure(
                KeyReadFailure(
                    errno == ELOOP
                        ? "a symlink; copy the \(what) in instead"
                        : String(cString: strerror(errno))))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            return .failure(KeyReadFailure("not a regular file"))
        }
        guard info.st_size <= Self.maxFileBytes else {
            return .failure(KeyReadFailure("\(info.st_size) bytes; a \(what) is \(expected)"))
        }
        var bytes = [UInt8](repeating: 0, count: Self.maxFileBytes + 1)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n >= 0, n <= Self.maxFileBytes else { return .failure(KeyReadFailure("unreadable or grown past \(Self.maxFileBytes) bytes")) }
        return .success(String(decoding: bytes.prefix(n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    struct KeyReadFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Moves each flat `NAME.pub` of the directory into the folder of its
    /// role. Every flat file must be named exactly once; nothing moves
    /// otherwise. Returns the moves made (from, to).
    package func migrate(_ assignment: [KeyRole: [String]]) throws(AllowDirectoryError) -> [(String, String)] {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw .unreadable(path: path, errno: errno) }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw .notADirectory(path: path) }
        let flat = Set(try names(path).filter { $0.hasSuffix(".pub") })
        var target: [String: KeyRole] = [:]
        for (role, given) in assignment {
            for raw in given {
                let file = raw.hasSuffix(".pub") ? raw : raw + ".pub"
                guard !file.contains("/"), flat.contains(file) else {
                    throw .migration("\(raw): no \(file) directly in \(path)")
                }
                if let other = target[file], other != role {
                    throw .migration("\(raw) is named for both \(other.folder)/ and \(role.folder)/; give it one role")
                }
                target[file] = role
            }
        }
        let unassigned = flat.subtracting(target.keys).sorted()
        if !unassigned.isEmpty {
            throw .migration("no role given for \(unassigned.joined(separator: ", ")); name each with --agents, --clients or --admins")
        }
        var moves: [(String, String)] = []
        for role in KeyRole.allCases where target.values.contains(role) {
            let folder = path + "/" + role.folder
            if mkdir(folder, 0o755) == -1, errno != EEXIST { throw .unreadable(path: folder, errno: errno) }
        }
        for (file, role) in target.sorted(by: { $0.key < $1.key }) {
            let from = path + "/" + file, to = path + "/" + role.folder + "/" + file
            if access(to, F_OK) == 0 { throw .migration("\(to) exists already; move \(from) by hand") }
            guard rename(from, to) == 0 else { throw .unreadable(path: from, errno: errno) }
            moves.append((from, to))
        }
        return moves
    }
}

/// An allow directory that cannot be used.
package enum AllowDirectoryError: Error, Equatable, CustomStringConvertible {
    /// It or one of its folders cannot be read.
    case unreadable(path: String, errno: Int32)
    /// It or one of its folders is not a directory (or is a symlink).
    case notADirectory(path: String)
    /// The layout from before roles: `*.pub` files directly in the directory.
    case flat(directory: String, files: [String])
    /// `kiln keys migrate` was given names that do not fit the directory.
    case migration(String)

    package var description: String {
        switch self {
        case .unreadable(let path, let code):
            "cannot read \(path): \(String(cString: strerror(code)))"
        case .notADirectory(let path):
            "\(path) is not a directory; the allow directory holds agents/, clients/ and admins/ folders of *.pub files"
        case .flat(let directory, let files):
            """
            \(directory) holds public keys directly (\(files.joined(separator: ", "))); keys now live in \
            \(directory)/agents/, \(directory)/clients/ or \(directory)/admins/, and the folder is the key's role. \
            Move them (check each name's role first; names are guessed from the file names) with: \
            \(Self.migrateCommand(directory: directory, files: files))
            """
        case .migration(let message):
            "kiln keys migrate: \(message)"
        }
    }

    /// The `kiln keys migrate` command for a flat directory, each name's role
    /// guessed from its file name (agent…, admin…, else a client).
    package static func migrateCommand(directory: String, files: [String]) -> String {
        var groups: [KeyRole: [String]] = [:]
        for file in files.sorted() {
            let name = String(file.dropLast(4))
            let role: KeyRole = name.lowercased().contains("agent") ? .agent : name.lowercased().contains("admin") ? .admin : .client
            groups[role, default: []].append(name)
        }
        return
            (["kiln keys migrate --allow \(directory)"]
            + KeyRole.allCases.compactMap { role in
                groups[role].map { "--\(role.folder) \($0.joined(separator: ","))" }
            }).joined(separator: " ")
    }
}
