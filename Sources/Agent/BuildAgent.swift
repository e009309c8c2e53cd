import Foundation
import Logging
import Manifest
import Protocol
import Stages
import Synchronization

/// An agent: connects to the scheduler, says Hello with what it can run,
/// heartbeats, runs assigned tree pipelines with the engine (its own tree
/// store is its cache), streams each tree back and keeps the stream until the
/// scheduler acknowledges it. Reconnects with exponential back-off; jobs and
/// streams outlive a lost connection.
package actor BuildAgent {
    package static let version = "0.1.0"

    let config: AgentConfiguration
    let context: ZMQContext
    let store: TreeStore
    let sources: SourceCache
    let registry: StageRegistry
    let logger: Logger
    package let metrics: AgentMetrics
    /// `agent.lock` in the state directory, held while this agent lives.
    let lockDescriptor: Int32

    deinit { close(lockDescriptor) }

    /// The live session's socket; nil while reconnecting.
    var socket: ZMQSocketThread?
    var heartbeatMS: UInt32 = 2_000
    var lastReceived = ContinuousClock.now
    var jobs: [UInt64: RunningJob] = [:]
    /// The scheduler welcomed the current session.
    var welcomed = false
    /// Messages for an attempt whose upload has not started yet.
    var early: [UInt64: [WireMessage]] = [:]
    package private(set) var sessions = 0
    /// `stop` was called: no reconnecting, no new job.
    var stopping = false
    /// The task that serves sessions (cancelled by `stop` while no session is up).
    var serving: Task<Void, Never>?
    /// Jobs `stop` cancelled, awaited before `run` returns.
    var stoppedJobs: [Task<Void, Never>] = []
    /// Its tree store or state directory is below `minFreeBytes`: it takes
    /// no new job (`checkDisk`, with every heartbeat).
    var lowDisk: LowDisk?

    struct RunningJob {
        var task: Task<Void, Never>
        var upload: TreeUpload?
    }

    package init(config: AgentConfiguration, context: ZMQContext, store: TreeStore, sources: SourceCache,
                 registry: StageRegistry = .standard, logger: Logger) throws {
        try PrivateDirectory.prepare(config.stateDirectory, what: "the agent's state directory")
        // One agent per state directory, for the life of the process (the lock
        // goes with it, however it ends): what is in spool/ is then its own.
        let lock = open(config.stateDirectory + "/agent.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            if lock >= 0 { close(lock) }
            throw AgentError.stateDirectoryInUse(config.stateDirectory)
        }
        self.lockDescriptor = lock
        for dir in [config.spoolDirectory, config.logsDirectory] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        // Streams of a previous run are never resumed (a restarted agent
        // holds no attempt): a crash leaves them behind.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: config.spoolDirectory)) ?? []
        where name.hasPrefix("attempt-") {
            unlink(config.spoolDirectory + "/" + name)
        }
        self.config = config
        self.context = context
        self.store = store
        self.sources = sources
        self.registry = registry
        self.metrics = AgentMetrics(registry: registry)
        var l = logger
        l[metadataKey: "agent.id"] = "\(config.agentID)"
        self.logger = l
    }

    /// Serves until the task is cancelled (SIGTERM, SIGINT), then stops
    /// gracefully (`stop`): the scheduler hears Disconnect and requeues the
    /// agent's jobs at once, the running stages are killed and their mounts
    /// released, and this returns.
    package func run() async {
        let pruner = config.storePruneInterval.map { StorePruner(store: store, interval: $0, logger: logger) }
        pruner?.start()
        defer { pruner?.stop() }
        checkDisk()
        let serving = Task { await self.serve() }
        self.serving = serving
        await withTaskCancellationHandler {
            await serving.value
        } onCancel: {
            Task { await self.stop(reason: "agent stopping (signal)") }
        }
    }

    /// Looks at free space under the tree store and the state directory;
    /// logs when the agent stops or starts taking jobs because of it.
    /// Returns why it takes no new job ("" when it takes them).
    @discardableResult
    func checkDisk() -> String {
        let low = LowDisk.check([("tree store", store.root), ("state directory", config.stateDirectory)],
                                threshold: config.minFreeBytes)
        switch (lowDisk, low) {
        case (nil, let low?): logger.error("low on disk: \(notTakingJobs(low))")
        case (_?, nil): logger.notice("disk space is back above --min-free-gib: taking jobs again")
        default: break
        }
        lowDisk = low
        return low.map(notTakingJobs) ?? ""
    }

    /// What the scheduler and the log are told while the disk is low.
    func notTakingJobs(_ low: LowDisk) -> String {
        "agent \(config.agentID) takes no new job: its \(low); free space there (a smaller --store-cap empties its store) "
            + "and it takes jobs again by itself"
    }

    /// Says Disconnect on the live session (the scheduler hands the jobs back
    /// and answers; the session ends on that answer or after 2 s), and
    /// cancels every running job (its process group killed, its mounts released).
    package func stop(reason: String) {
        guard !stopping else { return }
        stopping = true
        logger.info("stopping: handing \(jobs.count) job(s) back to the scheduler")
        if let socket, welcomed {
            var d = Kiln_V1_Disconnect()
            d.reason = reason
            postIsolated(WireMessage(.disconnect(d)))
            Task {
                try? await Task.sleep(for: .seconds(2))
                await socket.close()
            }
        } else {
            serving?.cancel()
        }
        stoppedJobs = jobs.values.map(\.task)
        for job in jobs.values { job.task.cancel() }
    }

    private func serve() async {
        var delay = config.backoffInitial
        while !Task.isCancelled && !stopping {
            let end = await session()
            if Task.isCancelled || stopping { break }
            if end == .welcomed { delay = config.backoffInitial }
            // A scheduler that answers and refuses is asked again soon, however long
            // it has refused: the fix is an operator's there (this key's .pub moved to
            // allow/agents/, `kiln agents release`), and it should apply within seconds.
            let wait = end == .refused ? min(delay, config.refusedRetry) : delay
            let jitter = Double.random(in: 0.8...1.2)
            logger.info("reconnecting to \(config.schedulerEndpoint) in \(String(format: "%.1f", wait.seconds * jitter)) s")
            try? await Task.sleep(for: wait * jitter)
            delay = min(delay * 2, config.backoffMax)
        }
        // Stop running jobs and wait for them to release their mounts and work directories.
        let running = jobs.values.map(\.task) + stoppedJobs
        for t in running { t.cancel() }
        for t in running { await t.value }
        if let socket { await socket.close() }
    }

    /// How a session ended.
    enum SessionEnd {
        /// The scheduler welcomed the agent (the session ran).
        case welcomed
        /// The scheduler answered Hello with Disconnect: it refused this agent.
        case refused
        /// No answer: the scheduler is down or unreachable, or refused the handshake.
        case lost
    }

    /// One connection: Hello, Welcome, then messages until the scheduler is
    /// silent for three heartbeats, says Disconnect, or a send times out.
    func session() async -> SessionEnd {
        var configuration = ZMQSocketConfiguration(.dealer, .connect(config.schedulerEndpoint))
        if let keys = config.keys, let server = config.schedulerPublicKey {
            configuration.curve = .client(keys: keys, serverPublicKey: server)
        }
        // No routing id of its own: the scheduler's socket picks one that no
        // other peer can name (docs/architecture.md §5); the agent id is in the Hello.
        configuration.sendTimeout = .seconds(5)
        configuration.highWaterMark = 10_000
        let socket: ZMQSocketThread
        do {
            socket = try await ZMQSocketThread.start(context: context, configuration: configuration, name: "kiln-agent")
        } catch {
            logger.error("cannot connect to \(config.schedulerEndpoint): \(error)")
            return .lost
        }
        self.socket = socket
        defer { self.socket = nil }
        var hello = Kiln_V1_Hello()
        hello.agentID = config.agentID
        hello.arches = config.arches
        hello.emulatedArches = config.emulatedArches
        hello.slots = UInt32(config.slots)
        hello.freeDisk = HostArchitectures.freeDisk(store.root)
        hello.notTakingJobs = checkDisk()
        hello.version = Self.version
        hello.runningAttemptIds = jobs.keys.sorted()
        do {
            try await socket.send(try Framing.encode(WireMessage(.hello(hello))))
        } catch {
            if let keys = config.keys {
                // A CURVE handshake the scheduler refused (its ZAP handler did
                // not find this key) looks the same here as a scheduler that is down.
                logger.warning("""
                    scheduler \(config.schedulerEndpoint) did not take Hello: \(error); if the scheduler is up, it refused \
                    this agent's public key \(keys.publicKey): on the scheduler host, its .pub belongs in allow/agents/ \
                    (and --scheduler-key must be the scheduler's public key)
                    """)
            } else {
                logger.warning("scheduler \(config.schedulerEndpoint) did not take Hello: \(error)")
            }
            await socket.close()
            return .lost
        }
        lastReceived = .now
        welcomed = false
        defer { welcomed = false }
        var refused = false
        let watchdog = Task { [heartbeatMS] in
            var interval = heartbeatMS
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int(interval)))
                interval = await self.heartbeat(socket, welcomed: true)
                if interval == 0 { await socket.close(); return }
            }
        }
        defer { watchdog.cancel() }
        for await m in socket.inbound {
            lastReceived = .now
            guard let (_, message) = try? Framing.decode(m.frames, routed: false) else {
                logger.warning("dropped an unreadable message from the scheduler")
                continue
            }
            switch message.envelope.body {
            case .welcome(let w):
                if !welcomed { logger.info("connected to scheduler \(config.schedulerEndpoint) (epoch \(w.epoch))") }
                welcomed = true
                sessions += 1
                heartbeatMS = max(100, w.heartbeatMs)
            case .assign(let a):
                if welcomed { assign(a) }
            case .credit(let c):
                route(c.attemptID, message)
            case .resend(let r):
                route(r.attemptID, message)
            case .ack(let a):
                route(a.attemptID, message)
            case .cancel(let c):
                cancel(c.attemptID, reason: c.reason)
            case .disconnect(let d):
                if stopping { logger.info("scheduler closed the session: \(d.reason)") }
                else { logger.warning("scheduler ended the session: \(d.reason)") }
                refused = !welcomed
                await socket.close()
            default:
                break
            }
        }
        await socket.close()
        return welcomed ? .welcomed : refused ? .refused : .lost
    }

    /// Sends a heartbeat; returns the next interval in ms, or 0 when the
    /// session is dead (the scheduler silent for three intervals, or a send
    /// that nobody took).
    func heartbeat(_ socket: ZMQSocketThread, welcomed: Bool) async -> UInt32 {
        guard self.socket === socket else { return 0 }
        let silent = ContinuousClock.now - lastReceived
        if silent > .milliseconds(Int(heartbeatMS) * 3) {
            logger.warning("scheduler silent for \(String(format: "%.1f", silent.seconds)) s")
            return 0
        }
        var h = Kiln_V1_Heartbeat()
        h.slotsInUse = UInt32(jobs.count)
        h.freeDisk = HostArchitectures.freeDisk(store.root)
        h.notTakingJobs = checkDisk()
        do {
            try await socket.send(try Framing.encode(WireMessage(.heartbeat(h))))
            // The scheduler renews an attempt's lease only on word about that
            // attempt: a bare Progress says "still working on it".
            for id in jobs.keys.sorted() {
                var p = Kiln_V1_Progress()
                p.attemptID = id
                try await socket.send(try Framing.encode(WireMessage(.progress(p))))
            }
        } catch {
            logger.warning("heartbeat not taken: \(error)")
            return 0
        }
        return heartbeatMS
    }

    /// Sends on the current session, if any; a message lost with a session
    /// is repaired by the protocol (absolute credit, Resend after re-Hello).
    nonisolated func post(_ message: WireMessage) async {
        await postIsolated(message)
    }

    private func postIsolated(_ message: WireMessage) {
        guard let socket, let frames = try? Framing.encode(message) else { return }
        socket.post(frames)
    }

    func route(_ attemptID: UInt64, _ message: WireMessage) {
        if let upload = jobs[attemptID]?.upload {
            upload.deliver(message)
            // An acknowledged tree ends the job: the scheduler has freed the
            // slot and may assign the next job before the upload task returns.
            if case .ack = message.envelope.body { finished(attemptID) }
        } else if jobs[attemptID] != nil {
            early[attemptID, default: []].append(message)
        } else if case .ack = message.envelope.body {
            // Already done.
        } else {
            fail(attemptID, reason: "agent \(config.agentID) does not run attempt \(attemptID)", infrastructure: true)
        }
    }

    func cancel(_ attemptID: UInt64, reason: String) {
        guard let job = jobs.removeValue(forKey: attemptID) else { return }
        logger.info("attempt cancelled: \(reason)", metadata: ["attempt.id": "\(attemptID)"])
        job.task.cancel()
        early[attemptID] = nil
    }

    func assign(_ a: Kiln_V1_Assign) {
        guard jobs[a.attemptID] == nil, !stopping else { return }
        guard jobs.count < config.slots else {
            return fail(a.attemptID, reason: "agent \(config.agentID) has no free slot (\(jobs.count) of \(config.slots) in use)",
                        infrastructure: true)
        }
        // Assigned before the scheduler heard the last heartbeat: handed back.
        if let lowDisk {
            return fail(a.attemptID, reason: notTakingJobs(lowDisk), infrastructure: true)
        }
        logger.info("running \(a.pipelineName) of build \(a.buildID)", metadata: ["attempt.id": "\(a.attemptID)"])
        let runner = JobRunner(agent: self, assign: a)
        jobs[a.attemptID] = RunningJob(task: Task { await runner.run() })
    }

    func fail(_ attemptID: UInt64, reason: String, infrastructure: Bool, stageType: String = "", stageIndex: Int = 0,
              logTail: [String] = []) {
        // The slot is free before the scheduler hears of it: it may assign the next job at once.
        finished(attemptID)
        var f = Kiln_V1_JobFailed()
        f.attemptID = attemptID
        f.reason = reason
        f.infrastructure = infrastructure
        f.stageType = stageType
        f.stageIndex = UInt32(stageIndex)
        f.logTail = logTail
        postIsolated(WireMessage(.jobFailed(f)))
    }

    /// Attaches the upload to its job and hands it what arrived early.
    func attach(_ attemptID: UInt64, _ upload: TreeUpload) -> Bool {
        guard jobs[attemptID] != nil else { return false }
        jobs[attemptID]?.upload = upload
        for m in early.removeValue(forKey: attemptID) ?? [] { upload.deliver(m) }
        return true
    }

    /// Frees the attempt's slot, then sends its last message (so the next
    /// Assign the message prompts finds the slot free).
    func complete(_ attemptID: UInt64, with message: WireMessage) {
        finished(attemptID)
        postIsolated(message)
    }

    func finished(_ attemptID: UInt64) {
        jobs[attemptID] = nil
        early[attemptID] = nil
    }
}
