import Foundation
import Logging
import Manifest
import Protocol
import Stages

/// The scheduler's glue (docs/architecture.md §7): it feeds what happens to
/// its `SchedulerCore` (the state machine that holds builds, jobs, attempts
/// and agents and decides) and performs the actions the core returns: sends,
/// store writes, downloads, assemblies, metrics. It owns no socket: inbound
/// messages come in through `handleAgent`/`handleClient` and replies leave
/// through the `Outbox` the server gives it. Every state change is committed
/// to SQLite before anything is acknowledged to a peer.
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
    /// This start of the scheduler's state (`SchedulerCore.epoch`).
    package var epoch: UInt64 { core.epoch }

    /// Builds, jobs, attempts, agents and queues, and the decisions about
    /// them (Core/SchedulerCore.swift); the actor performs what it decides.
    var core: SchedulerCore
    var dispatchPending = false
    /// The tree streams being received, per attempt.
    var downloads: [UInt64: TreeDownload] = [:]
    /// Keeps each live build's trees and checkpoints in the store until it ends.
    var treeLeases: [String: TreeLease] = [:]
    /// Downloads that finished, for the actor to take in batches.
    let finishedDownloads = Inbox<FinishedDownload>()
    /// What recently built trees cost, so a cache hit can say what it saved
    /// without waiting for the history to be written.
    var builtTrees: [String: TreeCost] = [:]
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
        self.core = SchedulerCore(settings: .init(config))
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
        if let lease = plan.lease { treeLeases[buildID] = lease }
        // The build's first assignments go into the same transaction as the
        // build itself: one fsync from submit to Assign on an idle farm, not two.
        var selection = SchedulerCore.Selection()
        act {
            $0.submitted(build, jobs: newJobs, notes: notes)
            selection = $0.selectAssignments()
        }
        let inserted = build.jobIDs.compactMap { core.jobs[$0] }  // as assigned just now
        do {
            try await records.insertSubmission(
                build, clientKey: clientKey, jobs: inserted, attempts: selection.assigned, startedMS: now)
        } catch {
            let reason = "\(error)"
            act {
                $0.assignmentsFailed(selection.assigned, reason: reason)
                $0.finish(buildID, .failed, failure: "scheduler database: \(reason)")
            }
            throw error
        }
        metrics?.buildSubmitted(arch: arch, imageType: imageType)
        act { $0.cachedAtSubmit(newJobs.filter { $0.state == .cached }, arch: arch, imageType: imageType) }
        sendAssignments(selection.assigned)
        act {
            $0.treesFound(selection.stored)
            $0.advance(buildID)
            $0.emit(.dispatchSoon)
        }
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
