import Foundation
import Protocol
import Testing

struct KeyFileTests {
    static func scratch() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func writtenKeysLoadBackAndTheSecretIsPrivate() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keys = try CurveKeyPair.generate()
        let (secret, pub) = try keys.write(prefix: dir + "/agent1")
        #expect(secret == dir + "/agent1.key" && pub == dir + "/agent1.pub")
        let mode = try #require(FileManager.default.attributesOfItem(atPath: secret)[.posixPermissions] as? Int)
        #expect(mode == 0o600)
        #expect(try CurveKeyPair.load(secretKeyFile: secret) == keys)
        #expect(try CurveKeyPair.loadPublicKey(pub) == keys.publicKey)
        #expect(throws: KeyFileError.exists(path: secret)) { try keys.write(prefix: dir + "/agent1") }
    }

    @Test func allowListIsEveryPubFileOfADirectory() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try CurveKeyPair.generate(), b = try CurveKeyPair.generate()
        try a.write(prefix: dir + "/a")
        try b.write(prefix: dir + "/b")
        #expect(try CurveKeyPair.loadAllowList(directory: dir) == [a.publicKey, b.publicKey])
        #expect(throws: KeyFileError.unreadable(path: dir + "/none", errno: ENOENT)) {
            try CurveKeyPair.loadAllowList(directory: dir + "/none")
        }
    }

    @Test func unusableFilesNameTheProblem() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keys = try CurveKeyPair.generate()
        let (secret, _) = try keys.write(prefix: dir + "/k")
        chmod(secret, 0o644)
        #expect(throws: KeyFileError.tooOpen(path: secret, mode: 0o644)) { try CurveKeyPair.load(secretKeyFile: secret) }

        let bad = dir + "/bad.pub"
        try "not a key\n".write(toFile: bad, atomically: true, encoding: .utf8)
        #expect(throws: KeyFileError.self) { try CurveKeyPair.loadPublicKey(bad) }
        #expect(throws: KeyFileError.unreadable(path: dir + "/missing.key", errno: ENOENT)) {
            try CurveKeyPair.load(secretKeyFile: dir + "/missing.key")
        }
    }
}
