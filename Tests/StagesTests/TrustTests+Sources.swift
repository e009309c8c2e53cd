import Foundation
import KilnTestSupport
import Logging
import Manifest
@testable import Stages
import Testing

/// Issue 15, finding 2: source URLs reach curl as http(s) URLs only, and a
/// stage takes only the inputs it declares.
extension TrustTests {
    @Test(arguments: [
        "-K/etc/passwd", "--config=/etc/passwd", "file:///etc/shadow", "ftp://deb.debian.org/x.deb", "gopher://example.org/x",
        "http://deb.debian.org/x.deb\n-K/etc/passwd", "http://deb.debian.org/x deb", "http:///x.deb", "dict://localhost:11211/",
        "HTTP:/deb.debian.org/x", "scp://root@host/x", "",
    ])
    func sourceURLsOtherThanHTTPAreRefused(_ url: String) async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let escaped = url.replacingOccurrences(of: "\n", with: "\\n")
        let json = Self.manifest(#"{"type": "org.osbuild.truncate", "options": {"filename": "b", "size": 1}}"#,
                                 sources: #"{"org.osbuild.curl": {"items": {"\#(Self.sha)": {"url": "\#(escaped)"}}}}"#)
        let error = try #require(validationError(json))
        #expect(error.description.hasPrefix("sources.org.osbuild.curl.items.\(Self.sha).url: "), "\(error)")
        #expect(!error.description.contains("\n"), "one line, with the control character spelt out")
        if url.hasPrefix("-K") || url.hasPrefix("file") {
            let cli = try await kilnRun(json)
            #expect(cli.status == 2, "\(cli.output)")
            #expect(cli.output.contains("sources.org.osbuild.curl.items.\(Self.sha).url"))
        }
    }

    @Test func httpAndHTTPSSourcesAreAccepted() {
        for url in ["http://deb.debian.org/debian/pool/main/x/x.deb", "https://127.0.0.1:8443/a%20b.deb?x=1"] {
            let json = Self.manifest(#"{"type": "org.osbuild.truncate", "options": {"filename": "b", "size": 1}}"#,
                                     sources: #"{"org.osbuild.curl": {"items": {"\#(Self.sha)": {"url": "\#(url)"}}}}"#)
            #expect(validationError(json) == nil, "\(url)")
        }
    }

    @Test func unknownSourceTypesAreRefused() throws {
        let json = Self.manifest(#"{"type": "org.osbuild.truncate", "options": {"filename": "b", "size": 1}}"#,
                                 sources: #"{"org.osbuild.inline": {"items": {"\#(Self.sha)": {"url": "http://x/y"}}}}"#)
        #expect(try #require(validationError(json)).description.hasPrefix("sources.org.osbuild.inline: unknown source type"))
    }

    /// Past validation (a manifest checked by an older Kiln, say), curl itself
    /// still takes the URL as a URL over http(s) only: `-K FILE` would have
    /// read FILE as curl configuration and written where it said.
    @Test func curlNeverReadsAURLAsAnOptionOrFetchesAFile() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let marker = root + "/written-by-curl"
        let config = root + "/curlrc"
        try "url = \"file:///etc/hostname\"\noutput = \"\(marker)\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        let cache = try SourceCache(root: root + "/sources", logger: Logger(label: "test"))
        let runner = CommandRunner(logPath: root + "/fetch.log", logger: Logger(label: "test"))
        await #expect(throws: SourceError.self) { _ = try await cache.provide([Self.sha: "-K" + config], commands: runner) }
        #expect(!FileManager.default.fileExists(atPath: marker), "curl read the URL as -K and wrote a file")

        let hostname = "sha256:" + (try SourceCache.sha256(file: "/etc/hostname"))
        let error = await #expect(throws: SourceError.self) {
            _ = try await cache.provide([hostname: "file:///etc/hostname"], commands: runner)
        }
        #expect(String(describing: error!).contains("download failed"), "refused by protocol, not a checksum oracle")
        #expect(!FileManager.default.fileExists(atPath: cache.path(hostname)))
    }

    @Test func aStageWithAnInputItDoesNotDeclareIsRefused() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let sources = #"{"org.osbuild.curl": {"items": {"\#(Self.sha)": {"url": "http://127.0.0.1:9/x.deb"}}}}"#
        // An assembly stage carrying source files, and an assembly stage taking sources where it takes a tree.
        let truncate = Self.manifest(#"{"type": "org.osbuild.truncate", "options": {"filename": "b", "size": 1}, "inputs": {"files": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": ["\#(Self.sha)"]}}}"#, sources: sources)
        let e1 = try #require(validationError(truncate))
        #expect(e1.description == "pipelines[0].stages[1].inputs.files: org.osbuild.truncate takes no inputs; remove this one")
        let fat = Self.manifest(#"{"type": "org.kiln.mkfs.fat", "options": {"volid": "12345678"}, "inputs": {"tree": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": ["\#(Self.sha)"]}}}"#, sources: sources)
        let e2 = try #require(validationError(fat))
        #expect(e2.description.hasPrefix("pipelines[0].stages[1].inputs.tree: org.kiln.mkfs.fat takes one pipeline's tree"))
        let cli = try await kilnRun(truncate)
        #expect(cli.status == 2 && cli.output.contains("takes no inputs"), "\(cli.output)")
    }

    @Test func everyStagesDeclaredInputsMatchWhatTheGeneratorGives() {
        let r = StageRegistry.standard
        #expect(r.declaredInputs(type: "org.kiln.debian.install") == ["packages": .sourceFiles])
        for t in ["org.kiln.mkfs.fat", "org.kiln.mkfs.ext4", "org.kiln.mkfs.xfs", "org.osbuild.grub2.inst", "org.osbuild.tar"] {
            #expect(r.declaredInputs(type: t) == ["tree": .pipelineTree], "\(t)")
        }
        #expect(r.declaredInputs(type: "org.osbuild.qemu") == ["image": .pipelineFiles])
        #expect(r.declaredInputs(type: "org.osbuild.oci-archive") == ["base": .pipelineTree])
        for t in r.knownStageTypes where r.placement(of: t) == .assembly {
            #expect(!r.declaredInputs(type: t).values.contains(.sourceFiles), "\(t): an assembly stage takes no sources")
        }
    }
}
