import Foundation

/// Where this build's executables are, for tests that run `kiln` (or
/// `protoc-gen-swift`) as a child process.
package enum BuiltProducts {
    /// The repository (the package root).
    package static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// The directory `swift build --show-bin-path` names for this build. The
    /// test bundle runs from it, whatever the configuration, triple or
    /// `--scratch-path`; `KILN_BIN_PATH` overrides it.
    package static let binPath: String = {
        if let dir = ProcessInfo.processInfo.environment["KILN_BIN_PATH"], !dir.isEmpty { return dir }
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        if FileManager.default.isExecutableFile(atPath: here.appendingPathComponent("kiln").path) { return here.path }
        // Run some other way (a bundle copied elsewhere): ask SwiftPM.
        return (try? showBinPath()) ?? here.path
    }()

    /// The `kiln` executable: `KILN_BIN` if set, else the one in `binPath`.
    package static var kiln: String {
        if let bin = ProcessInfo.processInfo.environment["KILN_BIN"], !bin.isEmpty { return bin }
        return binPath + "/kiln"
    }

    /// Another product of this build (`protoc-gen-swift`), nil if not built.
    package static func product(_ name: String) -> String? {
        let path = binPath + "/" + name
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    private static func showBinPath() throws -> String? {
        let (status, output) = try runBlocking(["swift", "build", "--show-bin-path"], directory: repository)
        guard status == 0 else { return nil }
        return String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
