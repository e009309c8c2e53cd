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

extension HangingStage {
    /// A smaller hang for tests that submit many of them (the soak): the
    /// tree's `update-ca-certificates` is a 129-byte static x86-64 ELF that
    /// calls pause(2) in a loop, instead of this host's shell, sleep and libc
    /// (2 MiB a manifest). Its processes carry no token; it is stopped by the
    /// stage timeout, a cancel or its agent's end, like any stage.
    static func pausingStages() -> [[String: Any]] {
        // ELF64 header: little-endian, ET_EXEC, x86-64, entry 0x400078, one program header at 64.
        var elf: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        elf += le(2, 2) + le(0x3e, 2) + le(1, 4) + le(0x40_0078, 8) + le(64, 8) + le(0, 8) + le(0, 4)
        elf += le(64, 2) + le(56, 2) + le(1, 2) + le(0, 2) + le(0, 2) + le(0, 2)
        // PT_LOAD, R+X, the whole file at 0x400000.
        let size = 64 + 56 + 9
        elf += le(1, 4) + le(5, 4) + le(0, 8) + le(0x40_0000, 8) + le(0x40_0000, 8) + le(size, 8) + le(size, 8) + le(0x1000, 8)
        // loop: mov eax, 34 (pause); syscall; jmp loop
        elf += [0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7]
        return [
            ["type": "org.kiln.files", "options": [
                "directories": [["path": "/usr/sbin", "parents": true] as [String: Any]],
                "files": [["path": "/usr/sbin/update-ca-certificates", "mode": "0755", "data": Data(elf).base64EncodedString()]],
            ] as [String: Any]],
            ["type": type, "options": ["certs": ["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"]]],
        ]
    }

    private static func le(_ value: Int, _ bytes: Int) -> [UInt8] {
        (0..<bytes).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}
