import Foundation
import Protocol
import Testing

/// Bearer tokens in the allow directory: what a hostile or careless file
/// there cannot do.
struct TokenFileTests {
    @Test("token files grant their folder's role by hash; symlinks, agents/, bad names, bad lines and shared names or tokens are refused")
    func tokenFilesGrantTheirFolder() throws {
        let dir = try KeyFileTests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for folder in ["agents", "clients", "admins"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(folder)", withIntermediateDirectories: true)
        }
        func put(_ path: String, _ text: String) throws { try text.write(toFile: "\(dir)/\(path)", atomically: true, encoding: .utf8) }
        let alice = TokenGrant.newToken(), ops = TokenGrant.newToken(), shared = TokenGrant.newToken()
        try put("clients/alice.token", TokenGrant.digestLine(alice))
        try put("admins/ops.token", TokenGrant.digestLine(ops))
        try put("agents/sneaky.token", TokenGrant.digestLine(TokenGrant.newToken()))  // agents use keys
        try put("clients/plain.token", alice)  // the token itself, not its hash
        try put("clients/.hidden.token", TokenGrant.digestLine(TokenGrant.newToken()))
        try put("clients/huge.token", String(repeating: "a", count: 5000))
        // One name in two folders: refused in both, so that a move cannot leave two roles.
        try put("clients/twice.token", TokenGrant.digestLine(TokenGrant.newToken()))
        try put("admins/twice.token", TokenGrant.digestLine(TokenGrant.newToken()))
        // One token under two names: refused in both.
        try put("clients/first.token", TokenGrant.digestLine(shared))
        try put("clients/second.token", TokenGrant.digestLine(shared))
        // A symlink to a token file elsewhere is not followed.
        try TokenGrant.digestLine(TokenGrant.newToken()).write(toFile: "\(dir)/outside", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/admins/linked.token", withDestinationPath: "\(dir)/outside")

        let snapshot = try AllowDirectory(path: dir).load()
        #expect(
            snapshot.tokens == [
                TokenGrant.digest(alice): TokenGrant(name: "alice", role: .client),
                TokenGrant.digest(ops): TokenGrant(name: "ops", role: .admin),
            ])
        let warnings = snapshot.warnings.joined(separator: "\n")
        for words in [
            "sneaky.token: skipped; agents use keys", "plain.token: skipped: not one line sha256:",
            ".hidden.token: skipped: a token name is", "huge.token: skipped: 5000 bytes",
            "twice.token: token name twice is also used", "second.token: the same token as first's",
            "linked.token: skipped: a symlink",
        ] {
            #expect(warnings.contains(words), "\(words) in:\n\(warnings)")
        }

        let live = BearerTokens(snapshot.tokens)
        #expect(live.grant(forToken: alice)?.identity == "token:alice")
        #expect(live.grant(forToken: ops)?.role == .admin)
        #expect(live.grant(forToken: shared) == nil)
        #expect(live.grant(forToken: String(repeating: "x", count: 100_000)) == nil)
    }

    @Test("a token file changed in place is read again")
    func tokenChangesShowInTheListing() throws {
        let dir = try KeyFileTests.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/clients", withIntermediateDirectories: true)
        let allow = AllowDirectory(path: dir)
        try TokenGrant.digestLine(TokenGrant.newToken()).write(toFile: "\(dir)/clients/a.token", atomically: false, encoding: .utf8)
        let before = allow.listing()
        let handle = try #require(FileHandle(forWritingAtPath: "\(dir)/clients/a.token"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("\n".utf8))
        try handle.close()
        #expect(allow.listing() != before)
    }
}
