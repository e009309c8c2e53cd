import Foundation
import Images
import KilnTestSupport
import Testing

/// What a build records about its packages: read from the manifest's pinned
/// `.deb`s, and written as SPDX 2.3 that SPDX's own tools accept.
struct RecordsTests {
    static let manifest = Data(
        #"""
        {"version": "2", "pipelines": [],
         "sources": {"org.osbuild.curl": {"items": {
           "sha256:1111111111111111111111111111111111111111111111111111111111111111": {"url": "http://deb.debian.org/debian/pool/main/o/openssh/openssh-server_1%3a9.2p1-2%2bdeb12u3_amd64.deb"},
           "sha256:2222222222222222222222222222222222222222222222222222222222222222": {"url": "http://deb.debian.org/debian/pool/main/g/gcc-12/libstdc%2b%2b6_12.2.0-14_amd64.deb"},
           "sha256:3333333333333333333333333333333333333333333333333333333333333333": {"url": "http://deb.debian.org/debian/pool/main/g/glibc/locales_2.36-9%2bdeb12u7_all.deb"},
           "sha256:4444444444444444444444444444444444444444444444444444444444444444": {"url": "http://example.org/not-a-deb.tar"}
         }}}}
        """#.utf8)

    @Test("a manifest's pinned .debs are its package records: name, full version, epoch, arch, source package, sha256, URL")
    func packagesFromManifest() throws {
        let records = try #require(PackageRecord.all(inManifest: Self.manifest))
        #expect(records.map(\.name) == ["libstdc++6", "locales", "openssh-server"])
        let ssh = try #require(records.last)
        #expect(ssh.version == "1:9.2p1-2+deb12u3" && ssh.epoch == "1" && ssh.versionWithoutEpoch == "9.2p1-2+deb12u3")
        #expect(ssh.architecture == "amd64" && ssh.source == "openssh" && ssh.sha256.hasPrefix("1111"))
        #expect(records[0].source == "gcc-12" && records[1].architecture == "all" && records[1].epoch == nil)
        #expect(PackageRecord.all(inManifest: Data("not json".utf8)) == nil)
    }

    @Test("the SBOM is SPDX 2.3 that pyspdxtools validates, with a purl, checksum and CONTAINS relationship per package")
    func sbomValidates() async throws {
        let validator = "/var/cache/kiln/venv-spdx/bin/pyspdxtools"
        try #require(FileManager.default.isExecutableFile(atPath: validator), "ops/install-deps installs spdx-tools")
        let records = try #require(PackageRecord.all(inManifest: Self.manifest))
        let json = SPDXDocument.json(
            imageName: "debian-12 x86_64 qcow2", distro: "debian-12", packages: records,
            namespace: "https://kiln.invalid/spdx/0f0e0d0c-0000-4000-8000-000000000000/0", created: Date(timeIntervalSince1970: 1.8e9),
            tool: "kiln-0.1.0")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-spdx-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try json.write(to: URL(fileURLWithPath: "\(dir)/image.spdx.json"))
        let r = try await runChild(validator, ["-i", "\(dir)/image.spdx.json"], mergeErrors: true)
        #expect(r.status == 0 && !r.output.contains("error"), "\(r.output)")

        let document = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let packages = document["packages"] as? [[String: Any]] ?? []
        #expect(packages.count == 4)
        let ssh = try #require(packages.first { $0["name"] as? String == "openssh-server" })
        let refs = ssh["externalRefs"] as? [[String: Any]] ?? []
        #expect(refs.first?["referenceLocator"] as? String == "pkg:deb/debian/openssh-server@1%3A9.2p1-2%2Bdeb12u3?arch=amd64&distro=debian-12")
        #expect((ssh["checksums"] as? [[String: Any]])?.first?["checksumValue"] as? String == String(repeating: "1", count: 64))
        let contains = (document["relationships"] as? [[String: Any]] ?? []).filter { $0["relationshipType"] as? String == "CONTAINS" }
        #expect(contains.count == 3)
        // Identifiers stay within SPDX's characters even for libstdc++6.
        #expect(packages.allSatisfy { ($0["SPDXID"] as? String)?.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." } == true })
    }
}
