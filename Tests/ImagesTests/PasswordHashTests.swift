import Foundation
import KilnTestSupport
import Manifest
import Testing
@testable import Images

@Suite struct PasswordHashTests {
    /// The hash must be what the system's own crypt implementation computes, or nobody could log in.
    @Test(arguments: [("kiln", "saltsalt"), ("correct horse battery staple", "0123456789abcdefXYZ"), ("a", "x"),
                      ("päßwörd:with$odd*chars", "a/b.C")])
    func matchesOpenSSL(password: String, salt: String) async throws {
        let out = try await runChild("/bin/sh", ["-c", "printf '%s' \"$PW\" | openssl passwd -6 -salt \"$SALT\" -stdin"],
                                     environment: ["PW": password, "SALT": salt])
        #expect(out.status == 0)
        #expect(PasswordHash.sha512Crypt(password, salt: salt) == out.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func hashesAreKeptAndPlainTextIsHashedReproducibly() {
        let existing = "$6$saltsalt$Xq0Jb1ZbH0c3Yh2d1aSx0cgxJ7wVhQn7P4tHf5U6rQ8w9m6G2E.yD2kBq/3p5L6t8k1C3mA9oR7s0uV2xW4zY."
        #expect(PasswordHash.hashed(existing, context: "bp\u{0}alice") == existing)
        #expect(PasswordHash.hashed("!", context: "x") == "!")
        let a = PasswordHash.hashed("secret", context: "bp\u{0}alice")
        #expect(a.hasPrefix("$6$") && !a.contains("secret"))
        #expect(a == PasswordHash.hashed("secret", context: "bp\u{0}alice"))
        #expect(a != PasswordHash.hashed("secret", context: "bp\u{0}bob"))
    }

    /// The request's seed (and so every UUID in the manifest) sees only the hash, never the clear text.
    @Test func blueprintJSONCarriesOnlyTheHash() throws {
        let bp = try Blueprint.parse(toml: "name = \"pw\"\n[[customizations.user]]\nname = \"alice\"\npassword = \"correct horse\"\n")
        let json = CanonicalJSON.encode(bp.json())
        #expect(!json.contains("correct horse"))
        #expect(json.contains(PasswordHash.hashed("correct horse", context: "pw\u{0}alice")))
    }
}
