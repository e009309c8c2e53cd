import Foundation
import KilnTestSupport
import Testing

/// The committed Swift code must be what ops/gen-proto makes from the
/// committed schema: edit the .proto, run ops/gen-proto, commit both.
struct GeneratedCodeTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// protoc-gen-swift from this build (next to the test bundle), which
    /// `swift build --product protoc-gen-swift` makes.
    static func plugin() -> String? { BuiltProducts.product("protoc-gen-swift") }

    @Test func committedCodeMatchesTheSchema() async throws {
        let plugin = try #require(Self.plugin(), "protoc-gen-swift is not built: run `swift build --product protoc-gen-swift` (ops/test does)")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-gen-proto-\(getpid())")
        try? FileManager.default.removeItem(at: out)
        defer { try? FileManager.default.removeItem(at: out) }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [Self.packageRoot.appendingPathComponent("ops/gen-proto").path, "--plugin", plugin, "--out", out.path]
        let stderr = Pipe()
        process.standardError = stderr
        let status: Int32 = await withCheckedContinuation { done in
            process.terminationHandler = { done.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { done.resume(returning: -1) }
        }
        let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        try #require(status == 0, "ops/gen-proto failed: \(errors)")

        let generated = Self.packageRoot.appendingPathComponent("Sources/Protocol/Generated")
        let fresh = try Self.files(under: out), committed = try Self.files(under: generated)
        #expect(fresh.keys.sorted() == committed.keys.sorted(), "generated files differ; run ops/gen-proto and commit")
        for (path, data) in fresh {
            #expect(committed[path] == data, "\(path) is stale; run ops/gen-proto and commit the result")
        }
    }

    static func files(under root: URL) throws -> [String: Data] {
        var result: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])
        while let url = enumerator?.nextObject() as? URL {
            guard try url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true else { continue }
            let relative = String(url.standardizedFileURL.path.dropFirst(root.standardizedFileURL.path.count))
            result[relative] = try Data(contentsOf: url)
        }
        return result
    }
}
