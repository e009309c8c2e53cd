import Foundation
import KilnTestSupport
import Protocol
#if canImport(Glibc)
import Glibc
#endif

/// What `ops/soak` asks of the soak, from the environment. The soak runs only
/// when `KILN_SOAK_MINUTES` is set; no tier sets it.
struct SoakSettings: Sendable {
    static let environment = ProcessInfo.processInfo.environment
    static var requested: Bool { environment["KILN_SOAK_MINUTES"] != nil }

    let minutes: Double
    let seed: UInt64
    /// Where the JSON report goes (the table goes beside it, `.txt`).
    let reportPath: String?
    /// `--store-cap` of the scheduler and both agents.
    let storeCapBytes: UInt64
    /// The soak's budget for the scheduler's state directory without its
    /// tree store (SQLite, artifacts, logs), and for an agent's.
    let stateCapBytes: UInt64
    let agentStateCapBytes: UInt64
    /// Issue 15: the scheduler's resident memory stays under 300 MB.
    let rssCapBytes: UInt64 = 300_000_000
    /// Mean seconds between two SIGKILLs (each 0.5 to 1.5 times this).
    let killEverySeconds: Double
    /// Builds of the honest client not yet finished, at most.
    let maxInFlight: Int
    /// Keep the farm's directory (logs, state) even when every check holds.
    let keep: Bool

    init() {
        let env = Self.environment
        func number(_ key: String, _ fallback: Double) -> Double {
            env[key].flatMap { Double($0.trimmingCharacters(in: .whitespaces)) } ?? fallback
        }
        minutes = max(0.5, number("KILN_SOAK_MINUTES", 20))
        seed = env["KILN_SOAK_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(UInt32.max))
        reportPath = env["KILN_SOAK_REPORT"].flatMap { $0.isEmpty ? nil : $0 }
        storeCapBytes = UInt64(number("KILN_SOAK_STORE_CAP_MIB", 16) * 1_048_576)
        stateCapBytes = UInt64(number("KILN_SOAK_STATE_CAP_MIB", 64) * 1_048_576)
        agentStateCapBytes = UInt64(number("KILN_SOAK_AGENT_STATE_CAP_MIB", 16) * 1_048_576)
        killEverySeconds = max(2, number("KILN_SOAK_KILL_EVERY", 40))
        maxInFlight = max(1, Int(number("KILN_SOAK_IN_FLIGHT", 8)))
        keep = env["KILN_SOAK_KEEP"] == "1"
    }

    /// The store cap as `--store-cap` takes it (GiB; a MiB count is exact in binary).
    var storeCapGiB: String { "\(Double(storeCapBytes) / 1_073_741_824)" }
}

/// A `kiln` daemon that the soak starts, SIGKILLs and starts again. Every
/// start appends to one log file, after a line that numbers the start.
final class SoakDaemon: @unchecked Sendable {
    let name: String
    let arguments: [String]
    let environment: [String: String]
    let logPath: String
    private let lock = NSLock()
    private var process: Process?
    private var startCount = 0

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    init(name: String, arguments: [String], environment: [String: String] = [:], logPath: String) {
        self.name = name
        self.arguments = arguments
        self.environment = environment
        self.logPath = logPath
    }

    var starts: Int { locked { startCount } }
    var pid: Int32? { locked { process.flatMap { $0.isRunning ? $0.processIdentifier : nil } } }

    /// Starts it, unless it is running already; returns the length of the
    /// log before this start (what it writes comes after).
    @discardableResult
    func start() throws -> UInt64 {
        try locked {
            if let p = process, p.isRunning { return UInt64((try? FileManager.default.attributesOfItem(atPath: logPath)[.size] as? UInt64) ?? 0) }
            let fd = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw CocoaError(.fileWriteUnknown) }
            let out = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
            var st = stat()
            fstat(fd, &st)
            startCount += 1
            out.write(Data("== soak: start #\(startCount) of \(name) at \(Date())\n".utf8))
            let p = Process()
            p.executableURL = URL(fileURLWithPath: FarmHarness.kiln)
            p.arguments = arguments
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            p.standardOutput = out
            p.standardError = out
            p.standardInput = FileHandle.nullDevice
            try p.run()
            process = p
            return UInt64(st.st_size)
        }
    }

    enum KillOutcome { case killed, notRunning, hadExited(Int32) }

    /// SIGKILL, then waits until it has exited. A process that had already
    /// exited by itself is reported as such (and is no longer tracked).
    @discardableResult
    func kill() async -> KillOutcome {
        guard let p = locked({ () -> Process? in
            defer { process = nil }
            return process
        }) else { return .notRunning }
        if !p.isRunning { return .hadExited(p.terminationStatus) }
        Glibc.kill(p.processIdentifier, SIGKILL)
        await p.exited()
        return .killed
    }

    /// Its exit status when it has exited although the soak did not kill it
    /// (it is then no longer tracked, and may be started again).
    func reapIfExited() -> Int32? {
        locked {
            guard let p = process, !p.isRunning else { return nil }
            process = nil
            return p.terminationStatus
        }
    }

    /// The log from `offset` on.
    func log(from offset: UInt64 = 0) -> String {
        guard let h = FileHandle(forReadingAtPath: logPath) else { return "" }
        defer { try? h.close() }
        try? h.seek(toOffset: offset)
        return String(decoding: (try? h.readToEnd()) ?? Data(), as: UTF8.self)
    }

    /// The last `lines` lines of the log.
    func tail(_ lines: Int = 20) -> String {
        log().split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

/// Sizes of directory trees, sampled while the soak runs.
enum SoakDisk {
    struct Usage: Sendable {
        /// `du -sb`: the bytes of every entry, directories included (what `--store-cap` counts).
        var apparent: UInt64 = 0
        /// `du -s`: blocks allocated.
        var allocated: UInt64 = 0
    }

    /// Everything under `path` on its own file system (a mount below it is
    /// left out, as `du -x` does), without the subtrees in `excluding`.
    static func usage(_ path: String, excluding: Set<String> = []) -> Usage {
        var root = stat()
        guard lstat(path, &root) == 0 else { return Usage() }
        var total = Usage()
        walk(path, device: root.st_dev, excluding: excluding, into: &total)
        return total
    }

    private static func walk(_ path: String, device: dev_t, excluding: Set<String>, into total: inout Usage) {
        var st = stat()
        guard !excluding.contains(path), lstat(path, &st) == 0, st.st_dev == device else { return }
        total.apparent += UInt64(max(0, st.st_size))
        total.allocated += UInt64(max(0, st.st_blocks)) * 512
        guard st.st_mode & 0o170000 == 0o040000, let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
        for name in names { walk(path + "/" + name, device: device, excluding: excluding, into: &total) }
    }

    /// A tree store's `objects/`: the sum over objects of `du -sb objects/ID`
    /// (what the store's prune compares with its cap), the largest object, and how many.
    static func objects(_ store: String) -> (total: UInt64, largest: UInt64, count: Int) {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: store + "/objects")) ?? []
        var total: UInt64 = 0, largest: UInt64 = 0
        for id in ids {
            let size = usage(store + "/objects/" + id).apparent
            total += size
            largest = max(largest, size)
        }
        return (total, largest, ids.count)
    }
}

/// A peak and how many samples it was taken from.
struct SoakPeak: Sendable {
    var peak: UInt64 = 0
    var samples = 0
    var overCap = 0

    mutating func add(_ value: UInt64, cap: UInt64? = nil) {
        peak = max(peak, value)
        samples += 1
        if let cap, value > cap { overCap += 1 }
    }
}

extension SchedulerClient {
    // The soak's requests wait 10 s, not the CLI's 60: a request sent to a
    // scheduler that is then killed is never answered, and the soak moves on.

    func soakSubmit(manifest: [UInt8], label: String, stageTimeoutMS: UInt64 = 0) async throws -> Kiln_V1_SubmitReply {
        var s = Kiln_V1_SubmitRequest()
        s.manifestJson = Data(manifest)
        s.exports = ["archive"]
        s.arch = "x86_64"
        s.label = label
        s.stageTimeoutMs = stageTimeoutMS
        guard case .submitReply(let r) = try await request(.submit(s), timeout: .seconds(10)).envelope.body else {
            throw ClientError.unexpected("to SubmitRequest")
        }
        return r
    }

    func soakStatus(_ buildID: String = "", limit: UInt32 = 0) async throws -> [Kiln_V1_BuildStatus] {
        var s = Kiln_V1_StatusRequest()
        s.buildID = buildID
        s.limit = limit
        guard case .statusReply(let r) = try await request(.status(s), timeout: .seconds(10)).envelope.body else {
            throw ClientError.unexpected("to StatusRequest")
        }
        return r.builds
    }

    func soakCancel(_ buildID: String) async throws -> Kiln_V1_BuildState {
        var c = Kiln_V1_CancelRequest()
        c.buildID = buildID
        guard case .cancelBuildReply(let r) = try await request(.cancelBuild(c), timeout: .seconds(10)).envelope.body else {
            throw ClientError.unexpected("to CancelRequest")
        }
        return r.state
    }
}

extension Kiln_V1_BuildState {
    var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }

    /// The state as the report names it.
    var soakName: String {
        switch self {
        case .queued: "queued"
        case .running: "running"
        case .succeeded: "succeeded"
        case .failed: "failed"
        case .cancelled: "cancelled"
        default: "unspecified"
        }
    }
}

/// Sleeps in short steps until `seconds` have passed or `stop` holds: pacing
/// between the soak's actions, not a wait for anything to happen.
func soakPause(_ seconds: Double, unless stop: () -> Bool) async {
    let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < end, !stop() {
        try? await Task.sleep(for: min(.milliseconds(200), end - ContinuousClock.now))
    }
}

extension SplitMix64 {
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func between(_ low: Double, _ high: Double) -> Double { low + (high - low) * unit() }
}
