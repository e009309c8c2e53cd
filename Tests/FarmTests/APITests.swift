import Foundation
import KilnTestSupport
import Protocol
import Testing

/// The scheduler's HTTP API (`--api`, issue 17) against a real `kiln
/// scheduler` process, spoken to with curl as a composer client would.
@Suite("HTTP API", .serialized)
struct APITests {
    /// An answer: status, headers (lowercased names) and the body.
    struct Answer {
        var status: Int
        var headers: [String: String]
        var body: String
        var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] }
    }

    /// curl, the way a script calls the API.
    static func call(
        _ farm: FarmHarness, port: Int, _ path: String, token: String? = nil, method: String = "GET", extra: [String] = []
    ) async throws -> Answer {
        let tag = UUID().uuidString.prefix(6)
        let body = "\(farm.dir)/api-body-\(tag)", head = "\(farm.dir)/api-head-\(tag)"
        var args = ["-s", "-X", method, "-o", body, "-D", head, "-w", "%{http_code}"]
        if let token { args += ["-H", "Authorization: Bearer \(token)"] }
        args += extra + ["http://127.0.0.1:\(port)/api/image-builder-composer/v2\(path)"]
        let r = try await runChild("/usr/bin/curl", args)
        var headers: [String: String] = [:]
        for line in ((try? String(contentsOfFile: head, encoding: .utf8)) ?? "").split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Answer(status: Int(r.output) ?? 0, headers: headers, body: (try? String(contentsOfFile: body, encoding: .utf8)) ?? "")
    }

    /// Composer's error shape, with the kind of error this test expects.
    static func expectError(_ a: Answer, status: Int, code: String, mentioning words: String, _ what: Comment) {
        #expect(a.status == status, what)
        #expect(a.headers["content-type"]?.hasPrefix("application/json") == true, what)
        let e = a.json ?? [:]
        #expect(e["kind"] as? String == "Error", "\(what): \(a.body)")
        #expect(e["code"] as? String == code, "\(what): \(a.body)")
        #expect((e["reason"] as? String)?.contains(words) == true, "\(what): \(a.body)")
        #expect((e["operation_id"] as? String)?.isEmpty == false, "\(what): \(a.body)")
        #expect(a.headers["x-operation-id"] == e["operation_id"] as? String, "\(what): \(a.headers)")
        #expect(e["href"] as? String == "/api/image-builder-composer/v2/errors/\(e["id"] as? String ?? "")", "\(what): \(a.body)")
    }

    static func newToken(_ farm: FarmHarness, _ name: String, role: String) async throws -> String {
        let r = try await runChild(FarmHarness.kiln, ["tokens", "new", name, "--role", role, "--allow", "\(farm.dir)/allow"])
        #expect(r.status == 0, "\(r.output)\(r.errors)")
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("only tokens the allow directory holds get in; one made while it runs is honoured, a deleted one refused, within 10 s")
    func tokensComeAndGo() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let alice = try await Self.newToken(farm, "alice", role: "client")
        #expect(alice.hasPrefix("kiln_") && alice.count == 48, "\(alice)")
        // Only the token's hash is on disk.
        let file = "\(farm.dir)/allow/clients/alice.token"
        let stored = try String(contentsOfFile: file, encoding: .utf8)
        #expect(stored == TokenGrant.digestLine(alice))
        #expect(!stored.contains(alice))

        let apiPort = try FarmHarness.freePortPair()
        try await farm.startScheduler(extra: ["--api", "127.0.0.1:\(apiPort)"])
        #expect(
            try await farm.eventually(.seconds(10)) {
                farm.log("scheduler").contains("API on http://127.0.0.1:\(apiPort)/api/image-builder-composer/v2/, 1 token(s) allowed")
            })

        Self.expectError(
            try await Self.call(farm, port: apiPort, "/distributions"), status: 401, code: "KILN-1", mentioning: "no token",
            "no token")
        let noToken = try await Self.call(farm, port: apiPort, "/distributions")
        #expect(noToken.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
        Self.expectError(
            try await Self.call(farm, port: apiPort, "/distributions", token: "kiln_guessed"), status: 401, code: "KILN-1",
            mentioning: "not (or no longer) allowed", "a token nobody made")
        Self.expectError(
            try await Self.call(farm, port: apiPort, "/distributions", extra: ["-H", "Authorization: Basic YTpi"]),
            status: 401, code: "KILN-1", mentioning: "Bearer", "basic auth")

        let list = try await Self.call(farm, port: apiPort, "/distributions", token: alice)
        #expect(list.status == 200, "\(list.body)")
        let distros = list.json ?? [:]
        #expect(Set(distros.keys) == ["debian-12", "debian-13"], "\(list.body)")
        let bookworm = distros["debian-12"] as? [String: Any] ?? [:]
        #expect(Set(bookworm.keys) == ["x86_64", "aarch64"])
        let repos = bookworm["x86_64"] as? [[String: Any]] ?? []
        #expect(
            repos.contains {
                ($0["baseurls"] as? [String]) == ["http://deb.debian.org/debian"] && ($0["suites"] as? [String])?.contains("bookworm") == true
            })

        let document = try await Self.call(farm, port: apiPort, "/openapi", token: alice)
        #expect(document.status == 200)
        #expect((document.json?["paths"] as? [String: Any])?.keys.contains("/distributions") == true)

        Self.expectError(
            try await Self.call(farm, port: apiPort, "/no-such-thing", token: alice), status: 404, code: "KILN-2",
            mentioning: "no such operation", "an unknown path")
        // A body over the limit is refused before it is read.
        Self.expectError(
            try await Self.call(
                farm, port: apiPort, "/distributions", token: alice, method: "POST",
                extra: ["-H", "Content-Type: application/json", "-H", "Content-Length: \(5 << 20)", "--data-binary", "{}"]),
            status: 413, code: "KILN-4", mentioning: "at most", "an oversized body")
        // A chunked one, which says no length, is cut off at the limit.
        let big = "\(farm.dir)/big.json"
        try Data(count: 5 << 20).write(to: URL(fileURLWithPath: big))
        Self.expectError(
            try await Self.call(
                farm, port: apiPort, "/distributions", token: alice, method: "POST",
                extra: ["-H", "Content-Type: application/json", "-H", "Transfer-Encoding: chunked", "--data-binary", "@\(big)"]),
            status: 413, code: "KILN-4", mentioning: "bytes taken", "an oversized chunked body")
        // Without a token nothing is read at all: the answer is 401, not 413.
        Self.expectError(
            try await Self.call(
                farm, port: apiPort, "/compose", method: "POST",
                extra: ["-H", "Content-Type: application/json", "-H", "Transfer-Encoding: chunked", "--data-binary", "@\(big)"]),
            status: 401, code: "KILN-1", mentioning: "no token", "a chunked body without a token")

        // A token made while the scheduler runs is honoured, a deleted one refused, each within 10 s.
        let bob = try await Self.newToken(farm, "bob", role: "admin")
        #expect(
            try await farm.eventually(.seconds(10)) {
                try await Self.call(farm, port: apiPort, "/distributions", token: bob).status == 200
            })
        try FileManager.default.removeItem(atPath: file)
        #expect(
            try await farm.eventually(.seconds(10)) {
                try await Self.call(farm, port: apiPort, "/distributions", token: alice).status == 401
            })
        #expect(try await Self.call(farm, port: apiPort, "/distributions", token: bob).status == 200)
    }

    @Test("kiln tokens new and --api refuse what would not work, naming the option and the fix (exit 2)")
    func badTokenRequestsAreRefused() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let allow = "\(farm.dir)/allow"
        let cases: [([String], String)] = [
            (["tokens", "new", "../evil", "--role", "client", "--allow", allow], "a token name is"),
            (["tokens", "new", "x", "--role", "agent", "--allow", allow], "--role agent"),
            (["tokens", "new", "x", "--role", "client", "--allow", "\(farm.dir)/missing"], "is not a directory"),
        ]
        for (args, words) in cases {
            let r = try await farm.kiln(args)
            #expect(r.status == 2 && r.output.contains(words), "\(args): \(r.output)")
        }
        _ = try await Self.newToken(farm, "carol", role: "client")
        let again = try await farm.kiln(["tokens", "new", "carol", "--role", "admin", "--allow", allow])
        #expect(again.status == 2 && again.output.contains("exists already"), "\(again.output)")
        #expect(!FileManager.default.fileExists(atPath: "\(allow)/admins/carol.token"))

        let open = try await farm.kiln([
            "scheduler", "--bind", farm.endpoint, "--state", "\(farm.dir)/s", "--key", "\(farm.dir)/scheduler.key",
            "--allow", allow, "--api", "0.0.0.0:8080",
        ])
        #expect(open.status == 2 && open.output.contains("--api 0.0.0.0:8080") && open.output.contains("loopback"), "\(open.output)")
    }

    /// A request as composer's clients write one: Cloud API customizations.
    static let composeRequest = """
        {"distribution": "debian-12",
         "image_requests": [{"architecture": "x86_64", "image_type": "guest-image", "repositories": []},
                            {"architecture": "aarch64", "image_type": "aws", "repositories": []}],
         "customizations": {"packages": ["nginx"], "hostname": "demo", "services": {"enabled": ["nginx"]},
                            "firewall": {"ports": ["80:tcp"]}, "files": [{"path": "/etc/motd", "data": "hello\\n"}]}}
        """

    static func post(_ farm: FarmHarness, port: Int, token: String, _ body: String) async throws -> Answer {
        try await call(
            farm, port: port, "/compose", token: token, method: "POST",
            extra: ["-H", "Content-Type: application/json", "--data-binary", body])
    }

    @Test("a compose of two images becomes two builds; its owner and admins see it, another client gets 404; bad requests get 400 naming the field")
    func composesAreOwnedAndChecked() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let alice = try await Self.newToken(farm, "alice", role: "client")
        let bob = try await Self.newToken(farm, "bob", role: "client")
        let ops = try await Self.newToken(farm, "ops", role: "admin")
        let apiPort = try FarmHarness.freePortPair()
        try await farm.startScheduler(extra: ["--api", "127.0.0.1:\(apiPort)"])
        #expect(try await farm.eventually(.seconds(10)) { farm.log("scheduler").contains("API on") })

        let created = try await Self.post(farm, port: apiPort, token: alice, Self.composeRequest)
        #expect(created.status == 201, "\(created.body)")
        let id = try #require(created.json?["id"] as? String)
        #expect(UUID(uuidString: id) != nil && id == id.lowercased(), "\(id)")
        #expect(created.json?["href"] as? String == "/api/image-builder-composer/v2/composes/\(id)")

        // Two builds of alice's token, each named after the compose.
        let builds = try await farm.kiln(as: "admin", ["status", "--json"])
        let listed = (try? JSONSerialization.jsonObject(with: Data(builds.output.utf8))) as? [[String: Any]] ?? []
        let composeBuilds = listed.filter { ($0["label"] as? String)?.hasPrefix("compose \(id.prefix(8)) debian-12") == true }
            .compactMap { $0["buildId"] as? String }
        #expect(composeBuilds.count == 2, "\(builds.output)")

        let status = try await Self.call(farm, port: apiPort, "/composes/\(id)", token: alice)
        #expect(status.status == 200, "\(status.body)")
        #expect(status.json?["status"] as? String == "pending")
        #expect((status.json?["image_statuses"] as? [[String: Any]])?.count == 2)
        #expect(try await Self.call(farm, port: apiPort, "/composes/\(id)", token: ops).status == 200)
        Self.expectError(
            try await Self.call(farm, port: apiPort, "/composes/\(id)", token: bob), status: 404, code: "KILN-2",
            mentioning: "no compose", "another client's compose")
        let bobs = try await Self.call(farm, port: apiPort, "/composes/", token: bob)
        #expect(bobs.json?["total"] as? Int == 0, "\(bobs.body)")
        let alices = try await Self.call(farm, port: apiPort, "/composes/", token: alice)
        #expect((alices.json?["items"] as? [[String: Any]])?.first?["id"] as? String == id, "\(alices.body)")

        let bad: [(String, Int, String, String)] = [
            (
                #"{"distribution": "debian-12", "image_request": {"architecture": "x86_64", "image_type": "edge-commit"}}"#,
                400, "KILN-5", "image_request.image_type: \"edge-commit\""
            ),
            (#"{"distribution": "debian-12", "image_request": {"architecture": "x86_64"}}"#, 400, "KILN-3", "image_request.image_type"),
            (
                #"{"distribution": "fedora-40", "image_request": {"architecture": "x86_64", "image_type": "aws"}}"#, 400, "KILN-3",
                "distribution: \"fedora-40\" is not a value this API takes; use debian-12"
            ),
            (
                #"{"distribution": "debian-12", "image_request": {"architecture": "s390x", "image_type": "aws"}}"#, 400, "KILN-3",
                "image_request.architecture: \"s390x\" is not a value"
            ),
            (
                #"{"distribution": "debian-12", "image_request": {"architecture": "x86_64", "image_type": "aws"}, "customizations": {"subscription": {}}}"#,
                400, "KILN-5", "customizations.subscription"
            ),
            (
                #"{"distribution": "debian-12", "image_request": {"architecture": "x86_64", "image_type": "aws"}, "customizations": {"packages": ["no-such-package-kiln"]}}"#,
                400, "KILN-3", "no-such-package-kiln"
            ),
            (
                #"{"distribution": "debian-12", "image_request": {"architecture": "x86_64", "image_type": "aws"}, "customizations": {}, "blueprint": {"name": "x"}}"#,
                400, "KILN-3", "not both"
            ),
            (
                #"{"distribution": "debian-12", "image_request": {"architecture": "x86_64", "image_type": "aws", "repositories": [{"baseurl": "http://x"}]}}"#,
                400, "KILN-5", "image_request.repositories"
            ),
            ("not json", 400, "KILN-3", "the body"),
        ]
        for (body, status, code, words) in bad {
            Self.expectError(try await Self.post(farm, port: apiPort, token: alice, body), status: status, code: code, mentioning: words, "\(body)")
        }
        Self.expectError(
            try await Self.call(farm, port: apiPort, "/composes/not-a-uuid", token: alice), status: 400, code: "KILN-3",
            mentioning: "not a compose ID", "a malformed id")
        Self.expectError(
            try await Self.call(farm, port: apiPort, "/composes/?size=0", token: alice), status: 400, code: "KILN-3",
            mentioning: "size", "a page of none")
        // Nothing of the refused requests was submitted.
        #expect(try await Self.call(farm, port: apiPort, "/composes/", token: alice).json?["total"] as? Int == 1)

        // A compose goes with the last of its builds: cancelled and deleted one by one.
        for (n, build) in composeBuilds.enumerated() {
            #expect(try await farm.kiln(as: "admin", ["cancel", build]).status == 0)
            #expect(try await farm.eventually(.seconds(20)) { try await farm.kiln(as: "admin", ["delete", build]).status == 0 })
            let after = try await Self.call(farm, port: apiPort, "/composes/\(id)", token: alice)
            if n == 0 {
                #expect(after.status == 200 && after.json?["status"] as? String == "failure", "\(after.body)")
                #expect(after.body.contains("no longer recorded"), "\(after.body)")
            } else {
                #expect(after.status == 404, "\(after.body)")
            }
        }
    }

    /// schemathesis generates requests from the document the scheduler
    /// serves and checks every answer against it. Every check runs except
    /// positive_data_acceptance: a request can follow the schema and still be
    /// refused for what it means (a package Debian does not have).
    @Test("schemathesis: at least 500 requests generated from the served document, no 5xx, every answer as the document says")
    func schemathesisFindsNothing() async throws {
        let schemathesis = "/var/cache/kiln/venv-schemathesis/bin/schemathesis"
        try #require(FileManager.default.isExecutableFile(atPath: schemathesis), "ops/install-deps installs schemathesis")
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let token = try await Self.newToken(farm, "fuzzer", role: "client")
        let apiPort = try FarmHarness.freePortPair()
        try await farm.startScheduler(extra: ["--api", "127.0.0.1:\(apiPort)"])
        #expect(try await farm.eventually(.seconds(10)) { farm.log("scheduler").contains("API on") })
        let served = try await Self.call(farm, port: apiPort, "/openapi", token: token)
        try served.body.write(toFile: "\(farm.dir)/openapi.json", atomically: true, encoding: .utf8)
        let r = try await runChild(
            schemathesis,
            [
                "run", "\(farm.dir)/openapi.json", "--url", "http://127.0.0.1:\(apiPort)/api/image-builder-composer/v2",
                "-H", "Authorization: Bearer \(token)", "--checks", "all", "--exclude-checks", "positive_data_acceptance",
                "--max-examples", "150", "--seed", "20261207", "--request-timeout", "30", "--no-color",
            ], environment: ["SCHEMATHESIS_HOOKS": "", "HOME": farm.dir], directory: farm.dir, mergeErrors: true)
        let generated =
            r.output.split(separator: "\n").compactMap { line -> Int? in
                let words = line.split(separator: " ")
                return words.count >= 2 && words[1] == "generated," ? Int(words[0]) : nil
            }.first ?? 0
        #expect(r.status == 0, "\(r.output.suffix(6000))")
        #expect(generated >= 500, "\(r.output.suffix(2000))")
        #expect(farm.scheduler?.isRunning == true, "the scheduler survived")
        print("schemathesis: \(generated) requests generated")
    }

    @Test(
        "a compose built by the farm: success, its metadata and SPDX SBOM list the image's packages, the download is the image, DELETE removes it",
        .tags(.system, .farm), .tier(.ci, .system))
    func composeIsBuiltAndDownloaded() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        let alice = try await Self.newToken(farm, "alice", role: "client")
        let apiPort = try FarmHarness.freePortPair()
        try await farm.startScheduler(extra: ["--api", "127.0.0.1:\(apiPort)"])
        let admin = try await farm.client()
        try await farm.startAgents(["agent-a"], seenBy: admin)
        let created = try await Self.post(
            farm, port: apiPort, token: alice,
            #"{"distribution": "debian-12", "image_request": {"architecture": "x86_64", "image_type": "tar"}, "customizations": {"hostname": "from-the-api", "packages": ["jq"]}}"#
        )
        let id = try #require(created.json?["id"] as? String, "\(created.body)")
        Self.expectError(
            try await Self.call(farm, port: apiPort, "/composes/\(id)/download", token: alice), status: 400, code: "KILN-3",
            mentioning: "not finished", "a download before the image is built")
        var last = Answer(status: 0, headers: [:], body: "")
        let done = try await farm.eventually(.seconds(900)) {
            last = try await Self.call(farm, port: apiPort, "/composes/\(id)", token: alice)
            return last.json?["status"] as? String != "pending"
        }
        #expect(done && last.json?["status"] as? String == "success", "\(last.body)\n\(farm.log("agent-a").suffix(3000))")

        let metadata = try await Self.call(farm, port: apiPort, "/composes/\(id)/metadata", token: alice)
        let packages = metadata.json?["packages"] as? [[String: Any]] ?? []
        let jq = packages.first { $0["name"] as? String == "jq" }
        #expect(jq?["type"] as? String == "deb" && jq?["arch"] as? String == "amd64" && jq?["source"] as? String == "jq", "\(String(describing: jq))")
        #expect((jq?["checksum"] as? String)?.hasPrefix("sha256:") == true && (jq?["url"] as? String)?.hasSuffix(".deb") == true)
        #expect((metadata.json?["request"] as? [String: Any])?["distribution"] as? String == "debian-12")
        let manifests = try await Self.call(farm, port: apiPort, "/composes/\(id)/manifests", token: alice)
        let manifest = (manifests.json?["manifests"] as? [[String: Any]])?.first
        let sources = ((manifest?["sources"] as? [String: Any])?["org.osbuild.curl"] as? [String: Any])?["items"] as? [String: Any] ?? [:]
        // Every package the metadata lists is a .deb the manifest pins, and the other way round.
        #expect(Set(sources.keys) == Set(packages.compactMap { $0["checksum"] as? String }), "\(sources.count) vs \(packages.count)")
        // The SBOM: SPDX 2.3 that SPDX's own validator accepts, one package per pinned .deb plus the image.
        let sboms = try await Self.call(farm, port: apiPort, "/composes/\(id)/sboms", token: alice)
        let first = ((sboms.json?["items"] as? [[[String: Any]]])?.first?.first)
        #expect(first?["sbom_type"] as? String == "spdx" && first?["pipeline_purpose"] as? String == "image", "\(sboms.body.prefix(500))")
        let spdx = try JSONSerialization.data(withJSONObject: first?["sbom"] ?? [:])
        try spdx.write(to: URL(fileURLWithPath: "\(farm.dir)/image.spdx.json"))
        let validated = try await runChild("/var/cache/kiln/venv-spdx/bin/pyspdxtools", ["-i", "\(farm.dir)/image.spdx.json"], mergeErrors: true)
        #expect(validated.status == 0, "\(validated.output)")
        #expect(((first?["sbom"] as? [String: Any])?["packages"] as? [Any])?.count == packages.count + 1)
        let logs = try await Self.call(farm, port: apiPort, "/composes/\(id)/logs", token: alice)
        #expect(
            ((logs.json?["image_builds"] as? [[String: Any]])?.first?["log"] as? String)?.contains("streamed") == true, "\(logs.body.prefix(2000))")

        let tar = "\(farm.dir)/image.tar"
        let fetched = try await runChild(
            "/usr/bin/curl",
            [
                "-s", "-o", tar, "-w", "%{http_code} %{content_type}", "-H", "Authorization: Bearer \(alice)",
                "http://127.0.0.1:\(apiPort)/api/image-builder-composer/v2/composes/\(id)/download",
            ])
        #expect(fetched.output == "200 application/octet-stream", "\(fetched.output)")
        let hostname = try await runChild("/usr/bin/tar", ["-xOf", tar, "./etc/hostname"])
        #expect(hostname.output == "from-the-api\n", "\(hostname.output)\(hostname.errors)")

        let deleted = try await Self.call(farm, port: apiPort, "/composes/\(id)", token: alice, method: "DELETE")
        #expect(deleted.status == 200, "\(deleted.body)")
        #expect(try await Self.call(farm, port: apiPort, "/composes/\(id)", token: alice).status == 404)
        #expect(try await Self.call(farm, port: apiPort, "/composes/\(id)/download", token: alice).status == 404)
    }
}
