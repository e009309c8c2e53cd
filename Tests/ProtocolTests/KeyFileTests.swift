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

    @Test("the allow directory's listing changes with every change load would see; keys changed within the last second are read again")
    func allowListingSeesEveryChange() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let allow = AllowDirectory(path: dir)
        for folder in ["agents", "clients", "admins"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(folder)", withIntermediateDirectories: true)
        }
        for name in ["agents/a", "clients/c", "admins/boss"] {
            try CurveKeyPair.generate().write(prefix: "\(dir)/\(name)")
        }
        // Looked at later (an injected clock): every change has settled.
        func later() -> AllowDirectory.Listing { allow.listing(nowNS: AllowDirectory.realtimeNS() + 5_000_000_000) }
        var read = later()
        #expect(later().unchanged(since: read), "nothing changed: the keys are not read again")
        #expect(!read.unchanged(since: nil), "the first look reads the keys")

        let changes: [(String, () throws -> Void)] = [
            ("a key added", { try CurveKeyPair.generate().write(prefix: "\(dir)/clients/new") }),
            ("a key moved to another folder", {
                try FileManager.default.moveItem(atPath: "\(dir)/clients/c.pub", toPath: "\(dir)/agents/c.pub")
            }),
            ("a key replaced by another of the same size", {
                let other = try CurveKeyPair.generate().publicKey + "\n"
                try other.write(toFile: "\(dir)/agents/a.pub", atomically: true, encoding: .utf8)
            }),
            ("a key removed", { try FileManager.default.removeItem(atPath: "\(dir)/admins/boss.pub") }),
            ("a folder removed", { try FileManager.default.removeItem(atPath: "\(dir)/admins") }),
            ("a flat key beside the folders", { try CurveKeyPair.generate().write(prefix: "\(dir)/flat") }),
        ]
        for (what, change) in changes {
            try change()
            let now = later()
            #expect(!now.unchanged(since: read), "\(what): the keys are read again")
            read = now
        }

        // A key rewritten in place just now may keep its size and its times
        // (one tick of the file system's clock): a listing taken within a
        // second of the newest change is never trusted, so the keys are read again.
        let before = AllowDirectory.realtimeNS()
        let handle = try #require(FileHandle(forWritingAtPath: "\(dir)/agents/c.pub"))
        try handle.write(contentsOf: Data((try CurveKeyPair.generate().publicKey + "\n").utf8))
        try handle.close()
        let fresh = allow.listing(nowNS: before + 500_000_000)
        #expect(!fresh.settled && !fresh.unchanged(since: fresh))
    }
}
