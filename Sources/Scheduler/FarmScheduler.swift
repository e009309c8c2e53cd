import Foundation
import Logging
import Manifest
import Protocol
import Stages

/// The scheduler's brain: builds, jobs, attempts and agents. It owns no
/// socket: inbound messages come in through `handleAgent`/`handleClient` and
/// replies leave through the `Outbox` the server gives it. Every state change
/// is committed to SQLite before anything is acknowledged to a peer.
package actor FarmScheduler {
    /// Sends a message to an agent (by routing identity) or a client.
    package struct Outbox: Sendable {
        package var agent: @Sendable ([UInt8], WireMessage) -> Void
        package var client: @Sendable ([UInt8], WireMessage) -> Void
        package init(
            agent: @escaping @Sendable ([UInt8], WireMessage) -> Void,
            client: @escaping @Sendable ([UInt8], WireMessage) -> Void
        ) {
            self.agent = agent
            self.client = client
        }
    }

    package static let version = "0.1.0"

    let config: SchedulerConfiguration
    let db: SchedulerDatabase
    /// Every SQL statement the scheduler runs (State/SchedulerStore*.swift).
    let records: SchedulerStore
    let store: TreeStore
    let sources: SourceCache
    let registry: StageRegistry
    let logger: Logger
    /// nil when `config.telemetry` is off (the overhead benchmark's baseline).
    package let metrics: FarmMetrics?
    /// Unix ms when this scheduler started.
    package let startedMS: Int64
    var outbox: Outbox?
    package internal(set) var epoch: UInt64 = 0

    /// Builds, jobs, attempts, agents and queues (Core/SchedulerCore.swift).
    var core = SchedulerCore()
    var dispatchPending = false
    /// Downloads that finished, for the actor to take in batches.
    let finishedDownloads = Inbox<FinishedDownload>()
    /// What recently built trees cost (stream bytes, build ms), so a cache
    /// hit can say what it saved without waiting for the history to be written.
    var builtTrees: [String: (bytes: UInt64, ms: Int64)] = [:]
    /// Counters for `kiln agents`/metrics and the fault tests.
    package internal(set) var droppedMessages = 0
    /// Refused Hellos per agent id: when one was last logged, and how many
    /// since then went unlogged (one warning a minute per id).
    var refusedHellos: [String: (loggedMS: Int64, unlogged: Int)] = [:]
    /// What each peer may do: the live roles of CURVE keys (the allow
    /// directory), or every role without CURVE (embedded, inproc). KeyAccess.swift.
    var access = KeyAccess.everyRole
    var roleWarningsStorage: RateLimitedWarnings?
    var diskWarningsStorage: RateLimitedWarnings?
    /// The state directory's or the store's file system is below
    /// `minFreeBytes`: no submit, no new job, no new assembly (FarmScheduler+Retention.swift).
    package internal(set) var lowDisk: LowDisk?
    /// When `tick` last looked at free space, and last ran the retention pass.
    var diskPolledMS: Int64 = 0
    var retention = RetentionClock()

    package init(
        config: SchedulerConfiguration, store: TreeStore, sources: SourceCache,
        registry: StageRegistry = .standard, logger: Logger
    ) throws {
        try PrivateDirectory.prepare(config.stateDirectory, what: "the scheduler's state directory")
        for dir in [config.artifactsDirectory, config.logsDirectory] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        self.config = config
        self.db = try SchedulerDatabase(path: config.databasePath)
        self.records = SchedulerStore(database: db)
        self.store = store
        self.sources = sources
        self.registry = registry
        self.logger = logger
        self.metrics = config.telemetry ? FarmMetrics(registry: registry, imageTypes: config.imageTypes) : nil
        self.startedMS = config.now()
    }

    /// Connects the outbox, recovers unfinished builds (docs/architecture.md §5
    /// restart) and starts the lease clock.
    package func start(outbox: Outbox) async throws {
        self.outbox = outbox
        db.whenReadOnly { [weak self] failure in
            guard let self else { return }
            Task { await self.wentReadOnly(failure) }
        }
        checkDisk()
        try await recover()
        scheduleDispatch()
    }

    var now: Int64 { config.now() }

    /// A write failed: no new work is taken (no dispatch, no submit, no
    /// cancel) until a restart; what runs on agents finishes but is not recorded.
    func wentReadOnly(_ failure: ReadOnlyDatabase) {
        logger.critical("scheduler database is read-only: \(failure)")
    }

    // MARK: - Submitting

    /// Validates and commits a build; returns once it is durable. Decoding,
    /// validation and content IDs run off the actor (they are most of a
    /// submit's CPU), only the bookkeeping on it.
    @concurrent
    package nonisolated func submit(
        manifestJSON: [UInt8], exports: [String], arch: String, label: String,
        distro: String = "", imageType: String = "", notes: [String] = [],
        stageTimeoutMS: UInt64 = 0, clientKey: String = ""
    ) async throws -> Kiln_V1_SubmitReply {
        guard notes.count <= 32, notes.allSatisfy({ $0.utf8.count <= 2048 }) else {
            throw SchedulerError.badRequest("notes: at most 32 notes of at most 2048 bytes each")
        }
        guard Architecture(rawValue: arch) != nil else {
            throw SchedulerError.badRequest("arch: \"\(arch)\" is not an architecture; use x86_64 or aarch64")
        }
        guard !exports.isEmpty else { throw SchedulerError.badRequest("exports: name at least one pipeline to export") }
        guard stageTimeoutMS <= UInt64(config.attemptDeadlineMS) else {
            throw SchedulerError.badRequest(
                "stage_timeout_ms: \(stageTimeoutMS) ms is more than this scheduler's --attempt-deadline "
                    + "(\(config.attemptDeadlineMS) ms), which bounds every stage; ask for at most that")
        }
        guard label.utf8.count <= AgentText.labelBytes else {
            throw SchedulerError.badRequest("label: \(label.utf8.count) bytes; a label has at most \(AgentText.labelBytes) bytes")
        }
        let manifest: BuildManifest
        let plan: BuildPlan
        do {
            manifest = try BuildManifest.decode(Data(manifestJSON), file: "manifest")
            plan = try BuildPlan.make(manifest, exports: exports, registry: registry, store: store)
        } catch {
            throw SchedulerError.badRequest("\(error)")
        }
        return try await commitSubmission(
            manifestJSON: manifestJSON, manifest: manifest, plan: plan, exports: exports,
            arch: arch, label: AgentText.printable(label), distro: AgentText.field(distro, bytes: 64),
            imageType: AgentText.field(imageType, bytes: 64),
            notes: notes.map(AgentText.printable), stageTimeoutMS: Int64(stageTimeoutMS),
            clientKey: clientKey)
    }

    private func commitSubmission(
        manifestJSON: [UInt8], manifest: BuildManifest, plan: BuildPlan, exports: [String],
        arch: String, label: String, distro: String, imageType: String, notes: [String],
        stageTimeoutMS: Int64, clientKey: String
    ) async throws -> Kiln_V1_SubmitReply {
        try db.checkWritable()
        if let lowDisk { throw SchedulerError.unavailable("refused: \(Self.lowDiskText(lowDisk))") }
        let buildID = Self.newID()
        let created = now
        var build = FarmBuild(
            id: buildID, label: label, arch: arch, manifestJSON: manifestJSON, manifest: manifest, ids: plan.ids,
            exports: exports, state: .queued, createdMS: created, jobIDs: [])
        // Stored as sent (reports show them); metrics file unknown values under "other".
        build.distro = distro
        build.imageType = imageType
        build.stageTimeoutMS = stageTimeoutMS
        build.lease = plan.lease
        var newJobs: [FarmJob] = []
        for (i, t) in plan.treeJobs.enumerated() {
            var j = FarmJob(
                id: "\(buildID)-\(i + 1)", buildID: buildID, ordinal: i, pipelineName: t.pipelineName,
                pipelineID: t.pipelineID, onAgent: true, state: t.cached ? .cached : .queued)
            j.queuedMS = created
            if t.cached { j.finishedMS = created }
            newJobs.append(j)
        }
        let assemblyID = plan.treeJobs.isEmpty && !plan.needsAssembly ? nil : "\(buildID)-assemble"
        if let assemblyID {
            newJobs.append(
                FarmJob(
                    id: assemblyID, buildID: buildID, ordinal: newJobs.count, pipelineName: exports.joined(separator: ","),
                    pipelineID: exports.compactMap { plan.ids.pipelines[$0] }.joined(separator: ","),
                    onAgent: false, state: .waiting))
        }
        build.jobIDs = newJobs.map(\.id)
        core.builds[buildID] = build
        for j in newJobs { core.jobs[j.id] = j }
        event(buildID, .queued, message: "queued \(label) (\(newJobs.filter(\.onAgent).count) tree jobs)")
        for note in notes { event(buildID, .note, message: note) }
        for j in newJobs where j.onAgent {
            if j.state == .cached {
                event(buildID, .cached, job: j.id, message: "\(j.pipelineName): tree \(j.pipelineID.prefix(12)) is stored")
            } else {
                enqueue(j.id)
            }
        }
        // The build's first assignments go into the same transaction as the
        // build itself: one fsync from submit to Assign on an idle farm, not two.
        let (assigned, stored) = selectAssignments()
        let inserted = build.jobIDs.compactMap { core.jobs[$0] }  // as assigned just now
        do {
            try await records.insertSubmission(build, clientKey: clientKey, jobs: inserted, attempts: assigned, startedMS: now)
        } catch {
            failAssignments(assigned, error)
            finish(buildID, .failed, failure: "scheduler database: \(error)")
            throw error
        }
        metrics?.buildSubmitted(arch: arch, imageType: imageType)
        for j in newJobs where j.state == .cached {
            metrics?.jobFinished(arch: arch, imageType: imageType, kind: "tree", outcome: "cached")
            cacheHit(j, saved: nil)
        }
        sendAssignments(assigned)
        for jobID in stored {
            treeStored(jobID, message: "\(core.jobs[jobID]?.pipelineName ?? jobID): tree is stored")
        }
        advance(buildID)
        scheduleDispatch()
        var reply = Kiln_V1_SubmitReply()
        reply.buildID = buildID
        reply.jobs = UInt32(newJobs.count)
        reply.cachedJobs = UInt32(newJobs.filter { $0.state == .cached }.count)
        return reply
    }

    static func newID() -> String {
        let t = UInt64(Date().timeIntervalSince1970)
        return String(t, radix: 36) + "-" + UUID().uuidString.prefix(6).lowercased()
    }

    func enqueue(_ jobID: String) {
        guard let j = core.jobs[jobID], let b = core.builds[j.buildID] else { return }
        if j.queuedMS == 0 || j.state != .queued { core.jobs[jobID]?.queuedMS = now }
        core.queues[b.arch, default: []].append(jobID)
    }

    // MARK: - Events

    /// Records a build event (durably, in order, without waiting). Events
    /// that carry an agent's words (`fromAgent`) count against the build's
    /// log budget; past it they are dropped after one "log truncated" event.
    func event(
        _ buildID: String, _ kind: EventKind, job: String = "", attempt: UInt64 = 0, agent: String = "",
        message: String = "", logLines: [String] = [], fromAgent: Bool = false
    ) {
        guard var b = core.builds[buildID] else { return }
        var message = message, logLines = logLines
        if fromAgent {
            let limits = config.logLimits
            if b.logBytes >= limits.buildBytes { return }
            logLines = AgentText.lines(logLines, limits)
            let size = message.utf8.count + logLines.reduce(0) { $0 + $1.utf8.count + 1 }
            b.logBytes += size
            if b.logBytes >= limits.buildBytes {
                (message, logLines) = (
                    "log truncated: this build's log reached \(limits.buildBytes >> 20) MiB; "
                        + "later log lines and stage events from agents are not kept", []
                )
            }
        }
        let seq = b.nextSequence
        b.nextSequence += 1
        core.builds[buildID] = b
        records.recordEvent(
            buildID: buildID, sequence: seq, unixMS: now, kind: kind, jobID: job, attemptID: attempt, agentID: agent,
            message: message, logLines: logLines.joined(separator: "\n"))
        // A build's course at info; each job's steps (thousands an hour on a busy farm) at debug.
        switch kind {
        case .log: break
        case .assigned, .stageStarted, .stageFinished, .streamed, .cached:
            logger.debug("\(message)", metadata: ["build.id": "\(buildID)", "job.id": "\(job)", "agent.id": "\(agent)"])
        default:
            logger.info("\(message)", metadata: ["build.id": "\(buildID)", "job.id": "\(job)", "agent.id": "\(agent)"])
        }
    }

    // MARK: - Build progress

    /// Moves a build forward after one of its jobs changed: starts assembly
    /// when every tree is stored, finishes the build when everything is done.
    func advance(_ buildID: String) {
        guard let b = core.builds[buildID], !b.isFinished else { return }
        // One pass over the jobs, no intermediate arrays (this runs on every job change).
        var treesStored = true, anyActive = false
        var assembly: FarmJob?
        for id in b.jobIDs {
            guard let j = core.jobs[id] else { continue }
            if j.state == .failed {
                finish(buildID, .failed, failure: j.failure)
                return
            }
            if !j.onAgent {
                assembly = j
            } else if j.state != .succeeded && j.state != .cached {
                treesStored = false
            }
            anyActive = anyActive || j.isActive
        }
        guard treesStored else {
            if b.state == .queued, anyActive { setBuildState(buildID, .running) }
            return
        }
        guard let assembly else {
            finish(buildID, .succeeded)
            return
        }
        switch assembly.state {
        case .waiting:
            updateJob(assembly.id) { $0.state = .queued }
            core.assemblyQueue.append(assembly.id)
            if b.state == .queued { setBuildState(buildID, .running) }
            startAssemblies()
        case .succeeded:
            finish(buildID, .succeeded)
        default:
            break
        }
    }

    func setBuildState(_ buildID: String, _ state: BuildState) {
        core.builds[buildID]?.state = state
        records.recordBuildState(buildID, state)
    }

    func finish(_ buildID: String, _ state: BuildState, failure: String = "") {
        guard var b = core.builds[buildID], !b.isFinished else { return }
        b.state = state
        b.failure = failure
        b.finishedMS = now
        core.builds[buildID] = b
        for id in b.jobIDs {
            guard let j = core.jobs[id], !j.isDone else { continue }
            if j.isActive { stopAttempt(j.attemptID, reason: "build \(state == .cancelled ? "cancelled" : "failed")") }
            updateJob(id) { $0.state = .cancelled }
        }
        let finished = b.finishedMS
        metrics?.buildFinished(arch: b.arch, imageType: b.imageType, outcome: Self.outcome(state), ms: finished - b.createdMS)
        // The last event before the state: a client that sees the build finished has seen every event.
        let kind: EventKind = state == .succeeded ? .succeeded : state == .cancelled ? .cancelled : .failed
        let secs = Double(finished - b.createdMS) / 1000
        event(
            buildID, kind,
            message: state == .succeeded
                ? "build succeeded in \(Self.decimal(secs)) s"
                : state == .cancelled ? "build cancelled" : "build failed: \(failure)")
        records.recordBuildFinished(buildID, state, finishedMS: finished, failure: failure)
        // Finished builds leave memory; SQLite answers status and logs.
        // Queue entries of the build are skipped (and dropped) by the next dispatch.
        for id in b.jobIDs { core.jobs[id] = nil }
        core.builds[buildID] = nil
        // Its trees may be pruned from now on (least recently used first).
        b.lease?.release()
    }

    /// Changes a job in memory and records the change.
    func updateJob(_ id: String, _ change: (inout FarmJob) -> Void) {
        guard var j = core.jobs[id] else { return }
        let before = j.state
        change(&j)
        if j.state != before { stateChanged(&j, from: before) }
        core.jobs[id] = j
        records.recordJob(j)
    }
}

/// Why the scheduler refused a request.
package enum SchedulerError: Error, CustomStringConvertible {
    /// The request is invalid; the message names the field and the fix.
    case badRequest(String)
    /// No such build or artifact.
    case notFound(String)
    /// Not now (the scheduler's disk is low); the message says why and when it passes.
    case unavailable(String)

    package var description: String {
        switch self {
        case .badRequest(let m), .notFound(let m), .unavailable(let m): m
        }
    }
}
