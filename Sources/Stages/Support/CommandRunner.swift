import Foundation
import Logging
import Subprocess
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Runs host programs for stages: each in its own session, output appended to
/// a log file, the whole process group torn down on cancellation, and a
/// non-zero exit turned into `StageError.commandFailed` with the log's tail.
package struct CommandRunner: Sendable {
    /// File that receives the programs' output (stdout and stderr).
    package let logPath: String
    package let logger: Logger
    /// Extra environment for every command.
    package let environment: [String: String]
    /// The programs this runner may start (argv[0]).
    package let programs: HostPrograms
    /// Paths the programs must not see (the scheduler's keys and state): each
    /// command runs in a mount namespace of its own in which a directory here
    /// is covered by an empty tmpfs and a file by /dev/null. `mount`,
    /// `umount` and `losetup`, whose work later commands use, run as they are.
    package let hiding: [String]

    package init(logPath: String, logger: Logger, environment: [String: String] = [:], programs: HostPrograms = .stages,
                 hiding: [String] = []) {
        self.logPath = logPath
        self.logger = logger
        self.environment = environment
        self.programs = programs
        self.hiding = hiding
    }

    private static let namespaceTools: Set<String> = ["mount", "umount", "losetup"]

    /// Covers `hiding` in a private mount namespace, then runs the command there.
    private static let hideScript = """
        n=$1; shift
        while [ "$n" -gt 0 ]; do
          if [ -d "$1" ]; then mount -t tmpfs -o ro,mode=000,size=4k,nr_inodes=1 kiln-hidden "$1" || exit 125
          elif [ -e "$1" ]; then mount --bind /dev/null "$1" || exit 125
          fi
          shift; n=$((n - 1))
        done
        exec "$@"
        """

    /// `argv`, or `argv` run through `unshare` with `hiding` covered.
    private func confined(_ argv: [String]) -> [String] {
        guard !hiding.isEmpty, !Self.namespaceTools.contains(argv[0]) else { return argv }
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", Self.hideScript, "kiln-hide",
                String(hiding.count)] + hiding + argv
    }

    /// The search path of every command; nothing a caller passes replaces it.
    static let basePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    private func configuration(_ argv: [String], _ env: [String: String], _ directory: String?) -> Configuration {
        var merged = ["PATH": Self.basePath, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"]
        merged.merge(environment) { _, b in b }
        merged.merge(env) { _, b in b }
        merged["PATH"] = Self.basePath
        var updates: [Environment.Key: String?] = [:]
        for (k, v) in merged { updates[Environment.Key(stringLiteral: k)] = v }
        let exe: Executable = .name(argv[0])
        var platform = PlatformOptions()
        platform.createSession = true
        platform.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .seconds(3))]
        return Configuration(
            executable: exe, arguments: Arguments(Array(argv.dropFirst())),
            environment: .inherit.updating(updates),
            workingDirectory: directory.map { FilePath($0) },
            platformOptions: platform)
    }

    /// Opens the log for appending and records the command line in it.
    private func openLog(for argv: [String]) throws -> FileDescriptor {
        let fd = try FileDescriptor.open(FilePath(logPath), .writeOnly, options: [.append, .create],
                                         permissions: [.ownerReadWrite, .groupRead])
        _ = try? fd.writeAll(Array("$ \(argv.joined(separator: " "))\n".utf8))
        return fd
    }

    /// Runs `argv`; throws on a non-zero exit or a signal.
    package func run(_ argv: [String], environment env: [String: String] = [:], directory: String? = nil) async throws {
        try programs.check(argv)
        let fd = try openLog(for: argv)
        defer { try? fd.close() }
        let status: TerminationStatus
        do {
            status = try await Subprocess.run(configuration(confined(argv), env, directory), input: .none,
                                              output: .fileDescriptor(fd, closeAfterSpawningProcess: false),
                                              error: .fileDescriptor(fd, closeAfterSpawningProcess: false)).terminationStatus
        } catch {
            throw StageError.commandNotFound(command: argv[0], reason: "\(error)")
        }
        try Task.checkCancellation()
        try check(status, argv)
    }

    /// Runs `argv` and returns its standard output (stderr goes to the log).
    package func output(_ argv: [String], environment env: [String: String] = [:], limit: Int = 64 << 20) async throws -> String {
        try programs.check(argv)
        let fd = try openLog(for: argv)
        defer { try? fd.close() }
        let status: TerminationStatus, output: String
        do {
            let r = try await Subprocess.run(configuration(confined(argv), env, nil), input: .none, output: .string(limit: limit),
                                             error: .fileDescriptor(fd, closeAfterSpawningProcess: false))
            (status, output) = (r.terminationStatus, r.standardOutput)
        } catch {
            throw StageError.commandNotFound(command: argv[0], reason: "\(error)")
        }
        try Task.checkCancellation()
        try check(status, argv)
        return output
    }

    private func check(_ status: TerminationStatus, _ argv: [String]) throws {
        switch status {
        case .exited(0): return
        case .exited(let code):
            throw StageError.commandFailed(command: argv, status: "exited with status \(code)", tail: tail())
        case .signaled(let sig):
            throw StageError.commandFailed(command: argv, status: "was killed by signal \(sig)", tail: tail())
        }
    }

    /// The last `lines` lines of the log.
    package func tail(lines: Int = 25) -> String {
        guard let data = FileManager.default.contents(atPath: logPath) else { return "" }
        let text = String(decoding: data.suffix(64 << 10), as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
