import Foundation
import Testing
@testable import Stages

/// `org.osbuild.groups` and `org.osbuild.users` on a tree with Debian's base accounts.
struct AccountStagesTests {
    static let passwd = """
    root:x:0:0:root:/root:/bin/bash
    daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
    nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin

    """
    static let group = """
    root:x:0:
    sudo:x:27:
    shadow:x:42:
    users:x:100:
    nogroup:x:65534:

    """

    func baseTree() throws -> TreeStageFixture {
        let f = try TreeStageFixture(stageType: Users.type)
        try f.write("/etc/passwd", Self.passwd)
        try f.write("/etc/group", Self.group)
        try f.write("/etc/shadow", "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", mode: 0o640)
        try f.write("/etc/gshadow", "root:*::\nsudo:*::\nshadow:*::\nusers:*::\nnogroup:*::\n", mode: 0o640)
        try f.write("/etc/skel/.bashrc", "# skel\n")
        return f
    }

    func line(_ f: TreeStageFixture, _ file: String, _ name: String) -> [String]? {
        f.read(file)?.split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
            .first { $0.first == name }
    }

    @Test func addsUserWithKeyGroupsAndHome() async throws {
        let f = try baseTree()
        defer { f.remove() }
        try await Groups().run(.init(groups: ["devs": .init(gid: 2000)]), in: f.context)
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiln user@example"
        let hash = "$6$salt$abcdefghijklmnopqrstuvwxyz"
        try await Users().run(.init(users: [
            "alice": .init(uid: 1500, groups: ["sudo", "devs"], description: "Alice", password: hash, key: key),
        ]), in: f.context)

        #expect(line(f, "/etc/passwd", "alice") == ["alice", "x", "1500", "1500", "Alice", "/home/alice", "/bin/sh"])
        #expect(line(f, "/etc/group", "alice")?[2] == "1500", "per-user group with gid = uid")
        #expect(line(f, "/etc/shadow", "alice")?[1] == hash)
        #expect(line(f, "/etc/group", "sudo")?[3] == "alice")
        #expect(line(f, "/etc/group", "devs") == ["devs", "x", "2000", "alice"])
        #expect(line(f, "/etc/gshadow", "devs")?[3] == "alice")

        let keys = f.tree + "/home/alice/.ssh/authorized_keys"
        #expect(f.read("/home/alice/.ssh/authorized_keys") == key + "\n")
        let st = try FileManager.default.attributesOfItem(atPath: keys)
        #expect((st[.posixPermissions] as? Int) == 0o600)
        #expect((st[.ownerAccountID] as? Int) == 1500)
        let ssh = try FileManager.default.attributesOfItem(atPath: f.tree + "/home/alice/.ssh")
        #expect((ssh[.posixPermissions] as? Int) == 0o700)
        #expect(f.read("/home/alice/.bashrc") == "# skel\n", "home filled from /etc/skel")
        let bashrc = try FileManager.default.attributesOfItem(atPath: f.tree + "/home/alice/.bashrc")
        #expect((bashrc[.ownerAccountID] as? Int) == 1500)
        // Debian's modes and owners for the shadow files.
        let shadow = try FileManager.default.attributesOfItem(atPath: f.tree + "/etc/shadow")
        #expect((shadow[.posixPermissions] as? Int) == 0o640)
        #expect((shadow[.groupOwnerAccountID] as? Int) == 42)
    }

    @Test func updatesRootInsteadOfDuplicating() async throws {
        let f = try baseTree()
        defer { f.remove() }
        try await Users().run(.init(users: ["root": .init(password: "$6$x$y", key: "ssh-rsa AAAA root@example")]), in: f.context)
        let roots = f.read("/etc/passwd")!.split(separator: "\n").filter { $0.hasPrefix("root:") }
        #expect(roots.count == 1)
        #expect(line(f, "/etc/shadow", "root")?[1] == "$6$x$y")
        #expect(f.read("/root/.ssh/authorized_keys") == "ssh-rsa AAAA root@example\n")
    }

    @Test func nextFreeUIDAndLockedPassword() async throws {
        let f = try baseTree()
        defer { f.remove() }
        try await Users().run(.init(users: ["bob": .init(), "carol": .init()]), in: f.context)
        #expect(line(f, "/etc/passwd", "bob")?[2] == "1000")
        #expect(line(f, "/etc/passwd", "carol")?[2] == "1001")
        #expect(line(f, "/etc/shadow", "bob")?[1] == "!")
    }

    /// Users are made in name order; an automatic id must leave alone the explicit
    /// uids and gids of users later in that order.
    @Test func automaticIDsLeaveExplicitOnesOfLaterUsers() async throws {
        let f = try baseTree()
        defer { f.remove() }
        try await Users().run(.init(users: ["alice": .init(), "bob": .init(uid: 1000), "carol": .init(), "dave": .init(gid: 1002)]),
                              in: f.context)
        #expect(line(f, "/etc/passwd", "alice")?[2...3] == ["1001", "1001"])
        #expect(line(f, "/etc/passwd", "bob")?[2...3] == ["1000", "1000"])
        #expect(line(f, "/etc/passwd", "carol")?[2...3] == ["1002", "1003"], "gid 1002 is dave's")
        #expect(line(f, "/etc/passwd", "dave")?[2...3] == ["1003", "1002"])
        #expect(line(f, "/etc/group", "dave")?[2] == "1002", "dave's own group, not carol's")
    }

    @Test func automaticGIDsLeaveExplicitOnesOfLaterGroups() async throws {
        let f = try baseTree()
        defer { f.remove() }
        try await Groups().run(.init(groups: ["admins": .init(), "builders": .init(gid: 1000)]), in: f.context)
        #expect(line(f, "/etc/group", "admins")?[2] == "1001")
        #expect(line(f, "/etc/group", "builders")?[2] == "1000")
    }

    @Test func unknownSupplementaryGroupIsNamed() async throws {
        let f = try baseTree()
        defer { f.remove() }
        await #expect {
            try await Users().run(.init(users: ["dave": .init(groups: ["wheel"])]), in: f.context)
        } throws: { error in
            "\(error)".contains("\"wheel\"") && "\(error)".contains("users.dave")
        }
        #expect(line(f, "/etc/passwd", "dave") == nil)
    }
}
