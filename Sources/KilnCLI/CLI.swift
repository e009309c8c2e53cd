import ArgumentParser
import Foundation
import Images
import Logging
import Manifest
import Scheduler
import Stages

#if canImport(Glibc)
import Glibc
#endif

/// Bad input that is not a manifest or blueprint error (exit code 2).
package enum CLIError: Error, CustomStringConvertible {
    case badInput(String)
    package var description: String {
        switch self {
        case .badInput(let s): s
        }
    }
}

/// Exit codes, signal handling and output shared by the commands.
package enum CLI {
    static let isTerminal = isatty(STDERR_FILENO) == 1

    static func say(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Runs `body` with Ctrl-C/SIGTERM cancelling it (releasing mounts and
    /// child processes), and maps errors to exit codes: 2 bad input, 1 failure.
    package static func main(_ body: @escaping @Sendable () async throws -> Void) async throws {
        let task = Task { try await body() }
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let sources = [SIGINT, SIGTERM].map { sig -> DispatchSourceSignal in
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler {
                say("\ninterrupted: stopping and cleaning up…")
                task.cancel()
            }
            s.resume()
            return s
        }
        defer { sources.forEach { $0.cancel() } }
        do {
            try await task.value
        } catch {
            MountTable.shared.releaseAll()
            if error is CancellationError || Task.isCancelled || task.isCancelled {
                say("kiln: interrupted")
                throw ExitCode(130)
            }
            say("kiln: error: \(describe(error))")
            throw ExitCode(exitCode(for: error))
        }
    }

    /// Returns when the surrounding task is cancelled (Ctrl-C, SIGTERM).
    static func untilCancelled() async {
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
    }

    /// A duration option's milliseconds (90s, 30m, 2h, 1d); bad input naming
    /// the option when it is not one, is under a second, or is over `max`.
    static func durationMS(_ text: String, option: String, max: (ms: Int64, what: String)? = nil) throws -> Int64 {
        guard let ms = Since.parse(text), ms >= 1000 else {
            throw CLIError.badInput("\(option) \(text): give a duration of at least 1s, such as 90s, 30m or 2h")
        }
        if let max, ms > max.ms {
            throw CLIError.badInput("\(option) \(text): more than \(max.what); give at most that")
        }
        return ms
    }

    static func describe(_ error: Error) -> String {
        String(describing: error)
    }

    static func exitCode(for error: Error) -> Int32 {
        switch error {
        case is ManifestError, is CLIError, is BlueprintError, is DefinitionError: return 2
        case let e as DepsolveError: return e.isBadInput ? 2 : 1
        default:
            if let bad = error as? any BadInput, bad.isBadInput { return 2 }
            return 1
        }
    }
}

/// The retention and disk options' values, checked (bad input names the option).
enum Retention {
    /// A retention period in ms (nil: "forever").
    static func keep(_ text: String, option: String) throws -> Int64? {
        if text == "forever" { return nil }
        guard let ms = Since.parse(text), ms >= 1000 else {
            throw CLIError.badInput("\(option) \(text): give a duration of at least 1s, such as 90m, 36h or 7d, or forever")
        }
        return ms
    }

    /// A size in GiB as bytes: 0 or more, below a billion GiB.
    static func gib(_ value: Double, option: String) throws -> UInt64 {
        guard value >= 0, value < 1e9 else { throw CLIError.badInput("\(option) \(value): give a size in GiB, 0 or more") }
        return UInt64(value * Double(1 << 30))
    }

    /// A positive interval in seconds, as ms (at most a day).
    static func seconds(_ value: Double, option: String) throws -> Int64 {
        guard value >= 0.1, value <= 86_400 else { throw CLIError.badInput("\(option) \(value): give 0.1 to 86400 seconds") }
        return Int64(value * 1000)
    }
}

/// Errors that are the user's input (exit code 2) rather than a failed build.
protocol BadInput { var isBadInput: Bool { get } }

/// Where Kiln keeps its caches and stores.
struct StoreOptions: ParsableArguments {
    @Option(help: "Tree store (finished trees and checkpoints).")
    var store: String = TreeStore.defaultRoot

    @Option(help: "Content-addressed source cache.")
    var sourceCache: String = SourceCache.defaultRoot

    @Option(help: "Directory for stage logs (default: a new directory under /var/lib/kiln/logs).")
    var logs: String?

    @Option(
        help:
            "Size cap of the tree store in GiB (0: none); least recently used trees are removed: by kiln build and kiln run after the build, by the scheduler and agents whenever a tree is stored and every minute."
    )
    var storeCap: Double = 40

    @Flag(name: .shortAndLong, help: "Show more detail (phases and their timings).")
    var verbose = false

    /// The executor on these stores, after removing what crashed processes
    /// left in the tree store's `tmp/` (TreeStore+Sweep).
    func executor() async throws -> Executor {
        let logger = Logging.logger(verbose: verbose)
        let logDir = logs ?? "/var/lib/kiln/logs/\(Self.timestamp())"
        let capBytes = try Retention.gib(storeCap, option: "--store-cap")
        let cap = capBytes > 0 ? capBytes : nil
        let executor = Executor(
            store: try TreeStore(root: store, capBytes: cap),
            sources: try SourceCache(root: sourceCache, logger: logger),
            logger: logger, observer: ProgressPrinter(), logDirectory: logDir)
        await executor.store.sweep(commands: CommandRunner(logPath: "/dev/null", logger: logger))
        return executor
    }

    /// Keeps the store within its cap (after results have been copied out).
    func prune(_ executor: Executor) async {
        let commands = CommandRunner(logPath: executor.logDirectory + "/prune.log", logger: executor.logger)
        do { try await executor.store.prune(commands: commands) } catch {
            executor.logger.warning("could not prune the tree store: \(error)")
        }
    }

    static func timestamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date()) + "-\(getpid())"
    }
}

/// Copies finished results out of the store.
enum Export {
    static func copyTree(_ tree: String, to dest: String) async throws {
        try FileManager.default.createDirectory(atPath: dest, withIntermediateDirectories: true)
        let commands = CommandRunner(logPath: "/dev/null", logger: Logger(label: "kiln"))
        try await commands.run(["cp", "-a", "--reflink=auto", "--sparse=always", tree + "/.", dest])
    }

    static func copyFile(_ file: String, to dest: String) async throws {
        let dir = (dest as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let commands = CommandRunner(logPath: "/dev/null", logger: Logger(label: "kiln"))
        try await commands.run(["cp", "--reflink=auto", "--sparse=always", file, dest])
    }
}

extension DepsolveError {
    /// Unknown or impossible package requests are the user's input.
    var isBadInput: Bool {
        switch self {
        case .unknownPackage, .invalidPackageName, .unsatisfiable, .noMatchingVersion: true
        default: false
        }
    }
}
