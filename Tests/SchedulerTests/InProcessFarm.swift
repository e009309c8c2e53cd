import Crypto
import Foundation
import Logging
import Protocol
import Stages
import Synchronization

@testable import Scheduler

/// A `FarmScheduler` driven in-process: no sockets, no processes. Agents
/// are routing ids whose messages go straight to `handleAgent`; what the
/// scheduler sends lands in a mailbox the test reads. The clock is the
/// test's: leases expire when the test moves it and calls `tick`.
final class InProcessFarm: Sendable {
    let dir: String
    let scheduler: FarmScheduler
    let clock: ManualClock
    let mailbox = Mailbox()

    /// A fresh farm, or (with `reopening`) a new scheduler process on an earlier farm's state.
    init(maxAttempts: Int = 3, leaseMS: UInt32 = 30_000, reopening earlier: InProcessFarm? = nil) async throws {
        dir = earlier?.dir ?? FileManager.default.temporaryDirectory.appendingPathComponent("kiln-scheduler-\(UUID().uuidString.prefix(8))").path
        clock = earlier?.clock ?? ManualClock(1_800_000_000_000)
        var logger = Logger(label: "kiln-scheduler-tests")
        logger.logLevel = .error
        var config = SchedulerConfiguration(stateDirectory: "\(dir)/state")
        config.maxAttempts = maxAttempts
        config.leaseMS = leaseMS
        config.telemetry = false
        let clock = clock
        config.now = { clock.now }
        let store = try TreeStore(root: "\(dir)/store")
        let sources = try SourceCache(root: "\(dir)/sources", logger: logger)
        scheduler = try FarmScheduler(config: config, store: store, sources: sources, logger: logger)
        let mailbox = mailbox
        try await scheduler.start(outbox: .init(agent: { id, m in mailbox.post(id, m) }, client: { _, _ in }))
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    // MARK: - Agents

    /// An agent's Hello on connection `identity`; returns the Welcome.
    @discardableResult
    func hello(_ agentID: String, on identity: [UInt8], slots: Int = 1, running: [UInt64] = []) async throws -> Kiln_V1_Welcome {
        var h = Kiln_V1_Hello()
        h.agentID = agentID
        h.arches = ["x86_64"]
        h.slots = UInt32(slots)
        h.freeDisk = 100 << 30
        h.runningAttemptIds = running
        await scheduler.handleAgent(identity: identity, key: nil, message: WireMessage(.hello(h)))
        let m = try await mailbox.next(for: identity) { if case .welcome = $0 { true } else { false } }
        guard case .welcome(let w) = m.envelope.body else { throw InProcessFarmError.unexpected("\(m)") }
        return w
    }

    /// The next Assign to `identity`.
    func assignment(to identity: [UInt8]) async throws -> Kiln_V1_Assign {
        let m = try await mailbox.next(for: identity) { if case .assign = $0 { true } else { false } }
        guard case .assign(let a) = m.envelope.body else { throw InProcessFarmError.unexpected("\(m)") }
        return a
    }

    /// The next Cancel to `identity`.
    func cancel(to identity: [UInt8]) async throws -> Kiln_V1_Cancel {
        let m = try await mailbox.next(for: identity) { if case .cancel = $0 { true } else { false } }
        guard case .cancel(let c) = m.envelope.body else { throw InProcessFarmError.unexpected("\(m)") }
        return c
    }

    /// What an honest agent does once its attempt ran: streams the tree
    /// (an empty one, as Kiln's tar+zstd) once credit allows, then waits for `Ack`.
    func streamTree(from identity: [UInt8], attempt: UInt64) async throws {
        _ = try await mailbox.next(for: identity) { if case .credit(let c) = $0 { c.attemptID == attempt } else { false } }
        let tree = try await Self.emptyTree()
        let digest = Data(SHA256.hash(data: tree))
        var chunk = Kiln_V1_StreamChunk()
        chunk.attemptID = attempt
        chunk.length = UInt32(tree.count)
        chunk.sha256 = digest
        await scheduler.handleAgent(identity: identity, key: nil, message: WireMessage(.streamChunk(chunk), data: tree))
        await sendEnd(from: identity, attempt: attempt, length: UInt64(tree.count), sha256: digest)
        _ = try await mailbox.next(for: identity) { if case .ack(let a) = $0 { a.attemptID == attempt } else { false } }
    }

    /// A StreamEnd, as a late or stale agent would send it.
    func sendEnd(from identity: [UInt8], attempt: UInt64, length: UInt64, sha256: Data) async {
        var end = Kiln_V1_StreamEnd()
        end.attemptID = attempt
        end.totalLength = length
        end.sha256 = sha256
        end.format = "tar+zstd"
        await scheduler.handleAgent(identity: identity, key: nil, message: WireMessage(.streamEnd(end)))
    }

    static func emptyTree() async throws -> [UInt8] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-empty-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = Mutex<[UInt8]>([])
        _ = try await TreeArchive.write(tree: dir) { chunk in bytes.withLock { $0 += chunk } }
        return bytes.withLock { $0 }
    }

    // MARK: - Clients

    /// Submits a one-stage tree build (hostname `hostname`), exporting the tree.
    func submit(hostname: String) async throws -> Kiln_V1_SubmitReply {
        let manifest: [String: Any] = [
            "version": "2",
            "pipelines": [["name": "tree", "stages": [["type": "org.osbuild.hostname", "options": ["hostname": hostname]]]]],
            "sources": [String: Any](),
        ]
        return try await scheduler.submit(
            manifestJSON: [UInt8](try JSONSerialization.data(withJSONObject: manifest)),
            exports: ["tree"], arch: "x86_64", label: "in-process \(hostname)")
    }

    func status(_ buildID: String) async throws -> Kiln_V1_BuildStatus {
        guard let s = try await scheduler.status(buildID: buildID, limit: 1).builds.first else {
            throw InProcessFarmError.unexpected("no build \(buildID)")
        }
        return s
    }

    func events(_ buildID: String) async throws -> [Kiln_V1_BuildEvent] {
        try await scheduler.logs(buildID: buildID, after: 0, limit: 5000).events
    }

    /// Waits (at most 20 s) until the build is in `state`; returns its status.
    func until(_ buildID: String, is state: Kiln_V1_BuildState) async throws -> Kiln_V1_BuildStatus {
        try await Deadline.until("build \(buildID) \(state)") {
            let s = try await self.status(buildID)
            return s.state == state ? s : nil
        }
    }

    /// Moves the clock on by `ms`; the agents on `alive` say they are there
    /// (a heartbeat: alive, but no progress on any job); then the scheduler
    /// looks at its agents and leases.
    func advance(ms: Int64, alive: [[UInt8]]) async {
        clock.advance(ms)
        for identity in alive {
            await scheduler.handleAgent(identity: identity, key: nil, message: WireMessage(.heartbeat(Kiln_V1_Heartbeat())))
        }
        await scheduler.tick()
    }
}

/// The scheduler's clock in a test: it moves only when the test says so.
final class ManualClock: Sendable {
    private let ms: Mutex<Int64>
    init(_ start: Int64) { ms = Mutex(start) }
    var now: Int64 { ms.withLock { $0 } }
    func advance(_ by: Int64) { ms.withLock { $0 += by } }
}

/// What the scheduler sent to each agent connection, taken in order by what the test waits for.
final class Mailbox: Sendable {
    private let messages = Mutex<[(identity: [UInt8], message: WireMessage)]>([])

    func post(_ identity: [UInt8], _ message: WireMessage) {
        messages.withLock { $0.append((identity, message)) }
    }

    /// Removes and returns the first message to `identity` that `matches`,
    /// waiting for it at most 20 s.
    func next(for identity: [UInt8], _ matches: @escaping @Sendable (Kiln_V1_Envelope.OneOf_Body) -> Bool) async throws -> WireMessage {
        try await Deadline.until("a message to \(identity)") {
            self.messages.withLock { all -> WireMessage? in
                guard let i = all.firstIndex(where: { $0.identity == identity && $0.message.envelope.body.map(matches) == true })
                else { return nil }
                return all.remove(at: i).message
            }
        }
    }

    /// Every message to `identity` so far that `matches` (not removed).
    func all(for identity: [UInt8], _ matches: (Kiln_V1_Envelope.OneOf_Body) -> Bool) -> [WireMessage] {
        messages.withLock { $0.filter { $0.identity == identity && $0.message.envelope.body.map(matches) == true }.map(\.message) }
    }
}

/// A condition with a deadline: polled until it gives a value, or the deadline passes.
enum Deadline {
    static func until<T>(_ what: String, within: Duration = .seconds(20), _ condition: () async throws -> T?) async throws -> T {
        let end = ContinuousClock.now + within
        while true {
            if let value = try await condition() { return value }
            guard ContinuousClock.now < end else { throw InProcessFarmError.timedOut(what) }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

enum InProcessFarmError: Error {
    case timedOut(String)
    case unexpected(String)
}
