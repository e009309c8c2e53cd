import Crypto
import Foundation

/// SHA-512 crypt (`$6$`, Ulrich Drepper's "Unix crypt using SHA-256 and
/// SHA-512", the scheme glibc and libxcrypt implement): what a plain-text
/// blueprint password becomes in the manifest, so that the clear text never
/// reaches a manifest, a log or the farm.
package enum PasswordHash {
    /// True for a crypt(3) hash (`$id$…`) or a locked/disabled entry (`!…`, `*`).
    package static func isHash(_ password: String) -> Bool {
        if password.hasPrefix("!") || password == "*" { return true }
        let fields = password.split(separator: "$", omittingEmptySubsequences: false)
        return password.hasPrefix("$") && fields.count >= 4 && !fields[1].isEmpty && !fields.last!.isEmpty
    }

    /// `password` unchanged when it already is a hash, else its SHA-512 crypt
    /// with a salt derived from `context` (the blueprint and user name): the
    /// same request gives the same manifest, and two users with one password
    /// get different hashes.
    package static func hashed(_ password: String, context: String) -> String {
        if isHash(password) { return password }
        let digest = SHA256.hash(data: Data("kiln-password-salt\u{0}\(context)".utf8))
        let salt = String(encode(Array(digest)).prefix(16))
        return sha512Crypt(password, salt: salt)
    }

    /// `$6$<salt>$<hash>` with the default 5000 rounds; `salt` is cut to 16 characters.
    package static func sha512Crypt(_ password: String, salt rawSalt: String) -> String {
        let p = Array(password.utf8)
        let s = Array(rawSalt.utf8.prefix(16))

        func digest(_ parts: [[UInt8]]) -> [UInt8] {
            var h = SHA512()
            for part in parts { h.update(data: part) }
            return Array(h.finalize())
        }
        func repeated(_ block: [UInt8], toLength n: Int) -> [UInt8] {
            (0..<n).map { block[$0 % block.count] }
        }

        let b = digest([p, s, p])
        var aParts: [[UInt8]] = [p, s, repeated(b, toLength: p.count)]
        var length = p.count
        while length > 0 {
            aParts.append(length & 1 == 1 ? b : p)
            length >>= 1
        }
        var a = digest(aParts)
        let dp = digest(Array(repeating: p, count: p.count))
        let pBytes = p.isEmpty ? [] : repeated(dp, toLength: p.count)
        let ds = digest(Array(repeating: s, count: 16 + Int(a[0])))
        let sBytes = repeated(ds, toLength: s.count)
        for round in 0..<5000 {
            var parts: [[UInt8]] = [round & 1 == 1 ? pBytes : a]
            if round % 3 != 0 { parts.append(sBytes) }
            if round % 7 != 0 { parts.append(pBytes) }
            parts.append(round & 1 == 1 ? a : pBytes)
            a = digest(parts)
        }
        // Bytes are emitted in groups of three in this fixed order, then the last one alone.
        let order: [(Int, Int, Int)] = [
            (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
            (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
            (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41),
        ]
        var out = ""
        for (x, y, z) in order {
            let hi = UInt32(a[x]) << 16
            let mid = UInt32(a[y]) << 8
            out += base64(hi | mid | UInt32(a[z]), count: 4)
        }
        out += base64(UInt32(a[63]), count: 2)
        return "$6$\(String(decoding: s, as: UTF8.self))$\(out)"
    }

    static let alphabet = Array("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

    /// crypt's base64: six bits at a time, least significant first.
    static func base64(_ value: UInt32, count: Int) -> String {
        var v = value
        var s = ""
        for _ in 0..<count {
            s.append(alphabet[Int(v & 0x3f)])
            v >>= 6
        }
        return s
    }

    /// Bytes as crypt-alphabet characters (for salts).
    static func encode(_ bytes: [UInt8]) -> String {
        var out = ""
        var i = 0
        while i + 2 < bytes.count {
            let hi = UInt32(bytes[i]) << 16
            let mid = UInt32(bytes[i + 1]) << 8
            out += base64(hi | mid | UInt32(bytes[i + 2]), count: 4)
            i += 3
        }
        return out
    }
}

extension Blueprint.User {
    /// The password as it goes into the manifest: a given hash unchanged, clear text
    /// hashed with a salt derived from the blueprint's and the user's names.
    package func passwordHash(blueprint: String) -> String? {
        password.map { PasswordHash.hashed($0, context: "\(blueprint)\u{0}\(name)") }
    }
}
