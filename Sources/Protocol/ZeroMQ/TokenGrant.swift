import Crypto
import Foundation
import Manifest
import Synchronization

/// An HTTP bearer token's entry in the allow directory: `clients/NAME.token`
/// or `admins/NAME.token`, holding `sha256:<hex>` of the token. The name is
/// the token's identity (its owner on the builds it submits, as a CURVE key
/// is for `kiln submit`); the folder is its role.
package struct TokenGrant: Sendable, Equatable {
    package var name: String
    package var role: KeyRole

    package init(name: String, role: KeyRole) { (self.name, self.role) = (name, role) }

    /// The owner recorded on what the token submits: `token:NAME`, which no
    /// CURVE key (40 Z85 characters) can be.
    package var identity: String { "token:\(name)" }

    package static let nameRule = "a token name is 1 to 64 of A-Z a-z 0-9 . _ - and does not start with a dot"

    package static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && !name.hasPrefix(".")
            && name.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F
                    || c == 0x2D
            }
    }

    /// A new token: `kiln_` and 43 URL-safe base64 characters (32 random bytes).
    package static func newToken() -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let text = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return "kiln_" + text
    }

    /// The hex sha256 a token file holds for `token`.
    package static func digest(_ token: some StringProtocol) -> String {
        Hex.encode(SHA256.hash(data: Array(token.utf8)))
    }

    /// The line written to a token file.
    package static func digestLine(_ token: String) -> String { "sha256:\(digest(token))\n" }

    /// The hex digest of a token file's (trimmed) text, or nil when it is not one `sha256:<64 hex>` line.
    package static func parseDigestLine(_ text: String) -> String? {
        guard text.hasPrefix("sha256:") else { return nil }
        let hex = text.dropFirst(7)
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            return nil
        }
        return String(hex)
    }
}

/// The live bearer tokens of the scheduler's HTTP API: replaced whole
/// whenever the allow directory is read again, looked up on every request.
package final class BearerTokens: Sendable {
    private let grants: Mutex<[String: TokenGrant]>

    package init(_ grants: [String: TokenGrant] = [:]) {
        self.grants = Mutex(grants)
    }

    package func replace(_ new: [String: TokenGrant]) {
        grants.withLock { $0 = new }
    }

    /// Who presents `token`, or nil for a token no file names (any more).
    package func grant(forToken token: some StringProtocol) -> TokenGrant? {
        guard token.utf8.count <= 512 else { return nil }
        let digest = TokenGrant.digest(token)
        return grants.withLock { $0[digest] }
    }

    package var count: Int { grants.withLock { $0.count } }
}
