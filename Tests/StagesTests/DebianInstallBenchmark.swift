import Foundation
import Testing
@testable import Stages

/// Installs a real package set and prints the phase timings. Runs only when
/// `KILN_DEB_SET` names a directory of `.deb` files (e.g.
/// `/var/cache/kiln/test-debs/bookworm-arm64`); `KILN_DEB_ARCH` is its
/// architecture (default amd64), `KILN_DEB_KEEP=1` keeps the tree.
@Suite(.serialized)
struct DebianInstallBenchmark {
    static let env = ProcessInfo.processInfo.environment

    @Test(.enabled(if: env["KILN_DEB_SET"] != nil))
    func installRealSet() async throws {
        let dir = try #require(Self.env["KILN_DEB_SET"])
        let arch = Self.env["KILN_DEB_ARCH"] ?? "amd64"
        var files: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".deb") {
            files["sha256:\(name)"] = "\(dir)/\(name)"
        }
        let f = try TreeStageFixture(inputs: ["packages": .files(files)], stageType: DebianInstall.type)
        defer { if Self.env["KILN_DEB_KEEP"] == nil { f.remove() } }
        let start = ContinuousClock.now
        do {
            try await DebianInstall().run(.init(architecture: arch, release: "bookworm"), in: f.context)
        } catch {
            print(f.log.split(separator: "\n").suffix(60).joined(separator: "\n"))
            throw error
        }
        let elapsed = ContinuousClock.now - start
        print("tree: \(f.tree)\nlog: \(f.root)/stage.log")
        print(f.log.split(separator: "\n").filter { $0.hasPrefix("# phase") }.joined(separator: "\n"))
        print("total: \(elapsed)")
    }
}
