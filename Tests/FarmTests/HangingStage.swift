import Foundation
import Stages

/// A tree stage that hangs through the product's own path, for tests of
/// stage timeouts, cancels and stopped agents. `org.kiln.files` puts a
/// minimal userland into the empty tree (this host's dash as `/bin/sh`, its
/// `sleep`, libc and loader) and an `update-ca-certificates` that never
/// returns; `org.kiln.cacerts` then runs the tree's own
/// `update-ca-certificates` in its sandbox (bwrap: the tree as `/`, its own
/// `/proc`, `/dev` and `/run` in a mount namespace of its own), and it hangs there:
/// `sh -c 'sleep 3600.N & sleep 3600.N; wait' kiln-test-hang-N`, N this
/// fixture's token, so that its processes are found by their command lines
/// in whatever namespace or environment they run. What a stage timeout, a
/// cancel and a stopped agent must take down: that process tree, and with it the sandbox.
struct HangingStage {
    static let type = CACerts.type
    let token = String(UInt32.random(in: 10_000_000...99_999_999))

    /// The tree pipeline's first stages: the userland, then the stage that hangs.
    func stages() throws -> [[String: Any]] {
        let script = "#!/bin/sh\nexec sh -c 'sleep 3600.\(token) & sleep 3600.\(token); wait' kiln-test-hang-\(token)\n"
        var files: [[String: Any]] = [
            ["path": "/usr/sbin/update-ca-certificates", "mode": "0755", "data": Data(script.utf8).base64EncodedString()],
        ]
        for (host, tree) in [("/bin/dash", "/bin/sh"), ("/usr/bin/sleep", "/usr/bin/sleep"),
                             ("/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
                             ("/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2")] {
            let data = try Data(contentsOf: URL(fileURLWithPath: host))
            files.append(["path": tree, "mode": "0755", "data": data.base64EncodedString()])
        }
        let directories = ["/bin", "/usr/bin", "/usr/sbin", "/lib/x86_64-linux-gnu", "/lib64"].map {
            ["path": $0, "parents": true] as [String: Any]
        }
        return [
            ["type": "org.kiln.files", "options": ["directories": directories, "files": files]],
            ["type": Self.type, "options": ["certs": ["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"]]],
        ]
    }

    /// A build's manifest (`FarmHarness.manifest`) whose tree hangs in its second stage.
    func manifest(hostname: String) throws -> [UInt8] {
        FarmHarness.manifest(hostname: hostname, extraStages: try stages())
    }

    /// The hanging stage's processes now (its shell and its `sleep`s), on any agent.
    var processes: [Int32] {
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init)
        return pids.filter { pid in
            guard let line = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: line, as: UTF8.self).contains(token)
        }
    }

    /// Whether the stage hangs now on some agent: its `sleep`s run.
    var hangs: Bool {
        processes.count { pid in (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) == "sleep\n" } >= 2
    }
}
