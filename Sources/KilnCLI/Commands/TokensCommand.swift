import ArgumentParser
import Foundation
import Protocol

/// `kiln tokens`: bearer tokens for the HTTP API. The allow directory keeps
/// only each token's sha256; the token itself is printed once.
struct TokensCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens",
        abstract: "Manage bearer tokens for the scheduler's HTTP API (--api).",
        subcommands: [NewToken.self])

    struct NewToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new",
            abstract: "Make a token, print it once, and allow it under its role.",
            discussion: """
                Writes ALLOW/clients/NAME.token (or admins/) holding only the token's sha256, and prints the token \
                on standard output: keep it, it is not stored anywhere. A running scheduler honours the token within \
                2 s; deleting the file revokes it as fast. A client token sees only the composes it submitted; an \
                admin token sees every compose. Never overwrites an existing token of that name.
                """)

        @Argument(help: "The token's name: its identity, 1-64 of A-Z a-z 0-9 . _ -.") var name: String
        @Option(help: "client or admin.") var role: String
        @Option(help: "The scheduler's allow directory (e.g. /etc/kiln/allow).") var allow: String

        func run() async throws {
            try await CLI.main {
                guard TokenGrant.isValidName(name) else {
                    throw CLIError.badInput("kiln tokens new: NAME \"\(name)\": \(TokenGrant.nameRule)")
                }
                guard let keyRole = KeyRole(rawValue: role), keyRole != .agent else {
                    throw CLIError.badInput("kiln tokens new: --role \(role): use client or admin (agents use keys, not tokens)")
                }
                var info = stat()
                guard lstat(allow, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
                    throw CLIError.badInput("kiln tokens new: --allow \(allow) is not a directory; give the scheduler's allow directory")
                }
                for other in KeyRole.allCases {
                    let existing = "\(allow)/\(other.folder)/\(name).token"
                    if lstat(existing, &info) == 0 {
                        throw CLIError.badInput(
                            "kiln tokens new: \(existing) exists already; choose another NAME, or delete that file first to revoke the old token")
                    }
                }
                let folder = "\(allow)/\(keyRole.folder)"
                if mkdir(folder, 0o755) == -1, errno != EEXIST {
                    throw CLIError.badInput("kiln tokens new: cannot create \(folder): \(String(cString: strerror(errno)))")
                }
                let token = TokenGrant.newToken()
                let file = "\(folder)/\(name).token"
                let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
                guard fd >= 0 else {
                    throw CLIError.badInput("kiln tokens new: cannot create \(file): \(String(cString: strerror(errno)))")
                }
                let line = Array(TokenGrant.digestLine(token).utf8)
                let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                let synced = fsync(fd) == 0
                close(fd)
                guard written == line.count, synced else {
                    unlink(file)
                    throw CLIError.badInput("kiln tokens new: cannot write \(file)")
                }
                print(token)
                CLI.say("wrote \(file) (the token's sha256, role \(keyRole.rawValue)); the token above is shown only now")
            }
        }
    }
}
