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

    @Test("an allow directory's folder is each key's role; symlinks, big files and stray names are skipped")
    func allowDirectoryRoles() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let agent = try CurveKeyPair.generate(), client = try CurveKeyPair.generate(), admin = try CurveKeyPair.generate()
        for folder in ["agents", "clients", "admins"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(folder)", withIntermediateDirectories: true)
        }
        try agent.write(prefix: dir + "/agents/a")
        try client.write(prefix: dir + "/clients/c")
        try admin.write(prefix: dir + "/admins/boss")
        let outside = try CurveKeyPair.generate()
        try outside.write(prefix: dir + "/outside")
        try FileManager.default.removeItem(atPath: dir + "/outside.pub")
        try (outside.publicKey + "\n").write(toFile: dir + "/elsewhere.txt", atomically: true, encoding: .utf8)
        symlink(dir + "/elsewhere.txt", dir + "/clients/linked.pub")
        try String(repeating: "x", count: 5000).write(toFile: dir + "/clients/big.pub", atomically: true, encoding: .utf8)
        try "notes".write(toFile: dir + "/clients/README", atomically: true, encoding: .utf8)
        let snapshot = try AllowDirectory(path: dir).load()
        #expect(snapshot.roles == [agent.publicKey: .agent, client.publicKey: .client, admin.publicKey: .admin])
        #expect(snapshot.warnings.count == 2)
        #expect(snapshot.warnings.contains { $0.contains("linked.pub") && $0.contains("symlink") })
        #expect(snapshot.warnings.contains { $0.contains("big.pub") && $0.contains("5000 bytes") })
    }

    @Test("a flat allow directory is refused with the migrate command, and that command moves every key")
    func flatAllowDirectoryMigrates() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let agent = try CurveKeyPair.generate(), client = try CurveKeyPair.generate()
        try agent.write(prefix: dir + "/agent-1")
        try client.write(prefix: dir + "/alice")
        for name in ["agent-1.key", "alice.key"] { try FileManager.default.removeItem(atPath: dir + "/" + name) }
        let allow = AllowDirectory(path: dir)
        #expect(throws: AllowDirectoryError.flat(directory: dir, files: ["agent-1.pub", "alice.pub"])) { try allow.load() }
        #expect(AllowDirectoryError.flat(directory: dir, files: ["agent-1.pub", "alice.pub"]).description
            .contains("kiln keys migrate --allow \(dir) --agents agent-1 --clients alice"))
        // Every key needs a role; nothing moves otherwise.
        #expect(throws: AllowDirectoryError.self) { try allow.migrate([.agent: ["agent-1"]]) }
        #expect(FileManager.default.fileExists(atPath: dir + "/agent-1.pub"))
        let moves = try allow.migrate([.agent: ["agent-1"], .client: ["alice.pub"]])
        #expect(moves.count == 2)
        #expect(try allow.load().roles == [agent.publicKey: .agent, client.publicKey: .client])
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
