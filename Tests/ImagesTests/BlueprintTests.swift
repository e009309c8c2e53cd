import Foundation
import Manifest
import Testing
@testable import Images

@Suite struct BlueprintParsingTests {
    @Test func fullTOMLBlueprint() throws {
        let bp = try Blueprint.load(path: Fixtures.path("full.toml"))
        #expect(bp.name == "full")
        #expect(bp.description == "Every key this version implements")
        #expect(bp.version == "1.2.3")
        #expect(bp.distro == "debian-12")
        #expect(bp.architecture == "x86_64")
        #expect(bp.packages == [.init(name: "openssh-server"), .init(name: "curl")])
        #expect(bp.modules == [.init(name: "tmux")])
        #expect(bp.packageNames == ["openssh-server", "curl", "tmux"])
        let c = bp.customizations
        #expect(c.hostname == "full-vm")
        #expect(c.timezone == "Europe/Berlin")
        #expect(c.users.count == 2)
        let alice = try #require(c.users.first)
        #expect(alice.name == "alice")
        #expect(alice.description == "Alice Admin")
        #expect(alice.password?.hasPrefix("$6$saltsalt$") == true)
        #expect(alice.key?.hasPrefix("ssh-ed25519 ") == true)
        #expect(alice.home == "/home/alice")
        #expect(alice.shell == "/bin/bash")
        #expect(alice.groups == ["sudo", "developers"])
        #expect(alice.uid == 1200)
        #expect(alice.gid == 1300)
        #expect(c.users[1] == Blueprint.User(name: "bob"))
        #expect(c.groups == [.init(name: "developers", gid: 1300)])
        #expect(c.sshKeys.map(\.user) == ["bob", "root"])
        #expect(c.services.enabled == ["ssh.service", "systemd-timesyncd.service"])
        #expect(c.services.disabled == ["apt-daily.timer"])
        #expect(c.services.masked == ["getty@tty1.service"])
    }

    @Test func jsonAndTOMLGiveTheSameBlueprint() throws {
        let toml = try Blueprint.load(path: Fixtures.path("full.toml"))
        let json = try Blueprint.load(path: Fixtures.path("full.json"))
        #expect(json.origin.file.hasSuffix("full.json"))
        #expect(CanonicalJSON.encode(toml.json()) == CanonicalJSON.encode(json.json()))
    }

    @Test func exampleBlueprintLoads() throws {
        let bp = try Blueprint.load(path: Fixtures.repository.appendingPathComponent("examples/blueprints/base.toml").path)
        #expect(bp.name == "base")
        #expect(bp.packageNames == ["openssh-server"])
        #expect(bp.customizations.users.map(\.name) == ["kiln"])
        #expect(bp.customizations.users.first?.groups == ["sudo"])
        #expect(bp.customizations.services.enabled == ["ssh.service"])
        #expect(bp.customizations.timezone == "UTC")
    }

    @Test func minimalBlueprintHasDefaults() throws {
        let bp = try Blueprint.parse(toml: "name = \"tiny\"\n")
        #expect(bp.packages.isEmpty)
        #expect(bp.customizations == Blueprint.Customizations())
        #expect(bp.distro == nil)
    }

    @Test func missingFileNamesThePath() {
        let e = #expect(throws: BlueprintError.self) { try Blueprint.load(path: "/nonexistent/bp.toml") }
        #expect(e?.description.contains("/nonexistent/bp.toml") == true)
        #expect(e?.description.contains("does not exist") == true)
    }

    @Test func tomlLineIndexFindsKeys() {
        let text = """
        name = "x"

        [customizations]
        hostname = "h"

        [[customizations.user]]
        name = "a"

        [[customizations.user]]
        name = "b"
        groups = ["x",
                  "y"]
        [customizations.services]
        enabled = ["a"]
        """
        let lines = TOMLLineIndex.lines(of: text)
        #expect(lines["name"] == 1)
        #expect(lines["customizations"] == 3)
        #expect(lines["customizations.hostname"] == 4)
        #expect(lines["customizations.user[0]"] == 6)
        #expect(lines["customizations.user[1].name"] == 10)
        #expect(lines["customizations.user[1].groups"] == 11)
        #expect(lines["customizations.services.enabled"] == 14)
        let origin = BlueprintOrigin(file: "f", lines: lines)
        #expect(origin.line(of: "customizations.user[1].groups[1]") == 11)
    }
}

/// A malformed blueprint and what its error must say.
struct Malformed: CustomTestStringConvertible, Sendable {
    var label: String
    var text: String
    var json = false
    var keyPath: String
    var line: Int? = nil
    var says: String
    var testDescription: String { label }
}

@Suite struct MalformedBlueprintTests {
    static let user = "[[customizations.user]]\n"
    static let cases: [Malformed] = [
        Malformed(label: "bad TOML", text: "name = \"x\ndescription = 1\n", keyPath: "", line: 1, says: "not valid TOML"),
        Malformed(label: "bad JSON", text: "{\n  \"name\": \"x\"\n  \"version\": 1}", json: true, keyPath: "", line: 3, says: "not valid JSON"),
        Malformed(label: "missing name", text: "description = \"d\"\n", keyPath: "name", says: "missing"),
        Malformed(label: "name not a string", text: "name = 5\n", keyPath: "name", line: 1, says: "must be a string, found an integer"),
        Malformed(label: "unknown top-level key", text: "name = \"x\"\nnmae = \"y\"\n", keyPath: "nmae", line: 2, says: "unknown key \"nmae\""),
        Malformed(label: "unknown customization", text: "name = \"x\"\n[customizations]\nhostnam = \"h\"\n",
                  keyPath: "customizations.hostnam", line: 3, says: "unknown key"),
        Malformed(label: "unsupported kernel", text: "name = \"x\"\n[customizations.kernel]\nappend = \"quiet\"\n",
                  keyPath: "customizations.kernel", line: 2, says: "not supported in this version"),
        Malformed(label: "unsupported firewall (JSON)", text: #"{"name": "x", "customizations": {"firewall": {"ports": ["22:tcp"]}}}"#,
                  json: true, keyPath: "customizations.firewall", says: "not supported in this version"),
        Malformed(label: "unsupported filesystem", text: "name = \"x\"\n[[customizations.filesystem]]\nmountpoint = \"/var\"\nminsize = 1\n",
                  keyPath: "customizations.filesystem", line: 2, says: "not supported"),
        Malformed(label: "ntpservers", text: "name = \"x\"\n[customizations.timezone]\ntimezone = \"UTC\"\nntpservers = [\"pool.ntp.org\"]\n",
                  keyPath: "customizations.timezone.ntpservers", line: 4, says: "not supported"),
        Malformed(label: "bad timezone", text: "name = \"x\"\n[customizations.timezone]\ntimezone = \"Europe/../etc\"\n",
                  keyPath: "customizations.timezone.timezone", line: 3, says: "not a time zone name"),
        Malformed(label: "bad hostname", text: "name = \"x\"\n[customizations]\nhostname = \"-bad_host-\"\n",
                  keyPath: "customizations.hostname", line: 3, says: "not a valid host name"),
        Malformed(label: "bad user name", text: "name = \"x\"\n" + user + "name = \"Bad User\"\n",
                  keyPath: "customizations.user[0].name", line: 3, says: "not a valid Debian user name"),
        Malformed(label: "duplicate users", text: "name = \"x\"\n" + user + "name = \"a\"\n" + user + "name = \"a\"\n",
                  keyPath: "customizations.user[1].name", line: 5, says: "already defined at customizations.user[0]"),
        Malformed(label: "uid out of range", text: "name = \"x\"\n" + user + "name = \"a\"\nuid = 70000\n",
                  keyPath: "customizations.user[0].uid", line: 4, says: "outside the range"),
        Malformed(label: "uid is a string", text: "name = \"x\"\n" + user + "name = \"a\"\nuid = \"1000\"\n",
                  keyPath: "customizations.user[0].uid", line: 4, says: "must be an integer, found a string"),
        Malformed(label: "duplicate uid", text: "name = \"x\"\n" + user + "name = \"a\"\nuid = 1001\n" + user + "name = \"b\"\nuid = 1001\n",
                  keyPath: "customizations.user[1].uid", line: 7, says: "already used by \"a\""),
        Malformed(label: "plain password", text: "name = \"x\"\n" + user + "name = \"a\"\npassword = \"hunter2\"\n",
                  keyPath: "customizations.user[0].password", line: 4, says: "crypt(3) hash"),
        Malformed(label: "groups not an array", text: "name = \"x\"\n" + user + "name = \"a\"\ngroups = \"sudo\"\n",
                  keyPath: "customizations.user[0].groups", line: 4, says: "must be an array"),
        Malformed(label: "unknown user key", text: "name = \"x\"\n" + user + "name = \"a\"\nGroups = []\n",
                  keyPath: "customizations.user[0].Groups", line: 4, says: "did you mean \"groups\""),
        Malformed(label: "bad ssh key", text: "name = \"x\"\n[[customizations.sshkey]]\nuser = \"root\"\nkey = \"not a key\"\n",
                  keyPath: "customizations.sshkey[0].key", line: 4, says: "not an SSH public key"),
        Malformed(label: "pinned version", text: "name = \"x\"\n[[packages]]\nname = \"vim\"\nversion = \"2:9.0*\"\n",
                  keyPath: "packages[0].version", line: 4, says: "pinning package versions is not implemented"),
        Malformed(label: "package groups", text: "name = \"x\"\n[[groups]]\nname = \"core\"\n",
                  keyPath: "groups", line: 2, says: "list the Debian packages under [[packages]]"),
        Malformed(label: "bad package name", text: "name = \"x\"\n[[packages]]\nname = \"Vim?\"\n",
                  keyPath: "packages[0].name", line: 3, says: "not a Debian package name"),
        Malformed(label: "bad service name", text: "name = \"x\"\n[customizations.services]\nenabled = [\"ssh service\"]\n",
                  keyPath: "customizations.services.enabled[0]", line: 3, says: "not a systemd unit name"),
        Malformed(label: "service enabled and masked", text: "name = \"x\"\n[customizations.services]\nenabled = [\"ssh\"]\nmasked = [\"ssh.service\"]\n",
                  keyPath: "customizations.services.masked[0]", line: 4, says: "also listed at customizations.services.enabled[0]"),
        Malformed(label: "customizations not a table", text: "name = \"x\"\ncustomizations = 3\n",
                  keyPath: "customizations", line: 2, says: "must be a table"),
        Malformed(label: "date value", text: "name = \"x\"\nversion = 1979-05-27\n",
                  keyPath: "version", line: 2, says: "found a date or time"),
        Malformed(label: "unknown architecture", text: "name = \"x\"\narchitecture = \"sparc\"\n",
                  keyPath: "architecture", line: 2, says: "use x86_64 or aarch64"),
    ]

    @Test(arguments: cases)
    func rejected(_ c: Malformed) throws {
        let file = c.json ? "bad.json" : "bad.toml"
        let error = #expect(throws: BlueprintError.self) {
            _ = c.json ? try Blueprint.parse(json: c.text, file: file) : try Blueprint.parse(toml: c.text, file: file)
        }
        let e = try #require(error)
        #expect(e.keyPath == c.keyPath, "\(e)")
        #expect(e.file == file)
        if let line = c.line { #expect(e.line == line, "\(e)") }
        #expect(e.description.contains(c.says), "\(e)")
        // The whole message starts with the location a person needs.
        let location = file + (e.line.map { ":\($0)" } ?? "") + (c.keyPath.isEmpty ? "" : ": \(c.keyPath)")
        #expect(e.description.hasPrefix(location), "\(e)")
    }
}
