import Foundation
import Logging
import Protocol

/// What the scheduler knows and decides, as a plain value: builds, jobs,
/// attempts with their leases, agents with their slots and sessions, and
/// the queues (docs/architecture.md §7). It does no I/O and reads no clock.
///
/// Each step is a mutating method: a submit's bookkeeping (`submitted`), a
/// dispatch pass (`selectAssignments`) and each committed assignment
/// (`assignmentCommitted`), an agent's Hello and later messages
/// (`agentHello`, `agentMessage`), a tree received (`treeReceived`), an
/// attempt failed, time passing (`tick`), a cancel, a restart (`restore`,
/// `resume`). The actor calls steps inside `run`, with `Outside`: what it
/// knows at that moment (the time, which trees the store holds, whether new
/// work may start). `run` returns what they decided, in order
/// (`SchedulerAction`), and `FarmScheduler` performs it
/// (FarmScheduler+Actions.swift).
package struct SchedulerCore {
    /// The tunables the core's decisions use (from `SchedulerConfiguration`).
    struct Settings {
        var leaseMS: UInt32 = 30_000
        var heartbeatMS: UInt32 = 2_000
        var agentTimeoutMS: UInt32 = 8_000
        var maxSlotsPerAgent = 16
        var maxAttempts = 3
        var attemptDeadlineMS: Int64 = 3 * 3600 * 1000
        var stageTimeoutMS: Int64 = 3600 * 1000
        var maxChunkBytes: UInt32 = 1 << 20
        var assemblyConcurrency = 2
        var logLimits = AgentText.Limits()
        /// Agents on the scheduler's own tree store: their trees are not streamed.
        var sharedStoreAgents: Set<String> = []
        /// Metrics are counted (`SchedulerAction.metric`).
        var telemetry = true

        init() {}

        init(_ c: SchedulerConfiguration) {
            (leaseMS, agentTimeoutMS, maxAttempts) = (c.leaseMS, c.agentTimeoutMS, c.maxAttempts)
            (attemptDeadlineMS, stageTimeoutMS, maxChunkBytes) = (c.attemptDeadlineMS, c.stageTimeoutMS, c.maxChunkBytes)
            (assemblyConcurrency, logLimits, telemetry) = (c.assemblyConcurrency, c.logLimits, c.telemetry)
            (heartbeatMS, maxSlotsPerAgent, sharedStoreAgents) = (c.heartbeatMS, c.maxSlotsPerAgent, c.sharedStoreAgents)
        }
    }

    /// What the actor tells the core with each event.
    struct Outside {
        /// Unix ms.
        var now: Int64
        /// Whether the tree store holds a tree (by pipeline ID).
        var hasTree: (String) -> Bool = { _ in false }
        /// New work may start: the database takes writes and the disk is not low.
        var startsWork = true
    }

    let settings: Settings
    /// This start of the scheduler's state (bumped by each restart); agents hear it in `Welcome`.
    var epoch: UInt64 = 0
    var builds: [String: FarmBuild] = [:]
    var jobs: [String: FarmJob] = [:]
    var attempts: [UInt64: FarmAttempt] = [:]
    var agents: [String: FarmAgent] = [:]
    /// Connections (routing ids) of welcomed agents → their agent ids.
    var agentSessions: [[UInt8]: String] = [:]
    /// Tree jobs waiting for an agent, per architecture, oldest first.
    var queues: [String: [String]] = [:]
    /// Jobs parked behind an identical job (same pipeline ID) in flight.
    var parked: [String: [String]] = [:]
    var nextAttemptID: UInt64 = 1
    /// Assembly jobs waiting for one of the scheduler's assembly places, oldest first.
    var assemblyQueue: [String] = []
    var assembliesRunning = 0

    /// The event being handled: what the actor said, and what to do so far.
    private(set) var outside = Outside(now: 0)
    /// `outside.now`, kept apart so that a step may read it while it changes a job or an attempt.
    private(set) var now: Int64 = 0
    private var actions: [SchedulerAction] = []

    init(settings: Settings) {
        self.settings = settings
    }

    /// Applies `change` (any of the core's steps) with what `outside` says;
    /// returns what to do, in order.
    mutating func run(_ outside: Outside, _ change: (inout SchedulerCore) -> Void) -> [SchedulerAction] {
        self.outside = outside
        now = outside.now
        change(&self)
        let done = actions
        actions = []
        return done
    }

    mutating func emit(_ action: SchedulerAction) {
        actions.append(action)
    }

    /// Counts `change` in the metrics (with telemetry on).
    mutating func count(_ change: MetricChange) {
        if settings.telemetry { actions.append(.metric(change)) }
    }

    // MARK: - Queues

    /// Puts a tree job at the end of its architecture's queue.
    mutating func enqueue(_ jobID: String) {
        guard let j = jobs[jobID], let b = builds[j.buildID] else { return }
        if j.queuedMS == 0 || j.state != .queued { jobs[jobID]?.queuedMS = now }
        queues[b.arch, default: []].append(jobID)
    }

    // MARK: - Events

    /// A build event (recorded in order, without waiting). Events that carry
    /// an agent's words (`fromAgent`) count against the build's log budget;
    /// past it they are dropped after one "log truncated" event.
    mutating func event(
        _ buildID: String, _ kind: EventKind, job: String = "", attempt: UInt64 = 0, agent: String = "",
        message: String = "", logLines: [String] = [], fromAgent: Bool = false
    ) {
        guard var b = builds[buildID] else { return }
        var message = message, logLines = logLines
        if fromAgent {
            let limits = settings.logLimits
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
        builds[buildID] = b
        emit(
            .event(
                BuildEvent(
                    buildID: buildID, sequence: seq, unixMS: now, kind: kind, job: job, attempt: attempt, agent: agent,
                    message: message, logLines: logLines)))
    }

    // MARK: - Build progress

    /// Moves a build forward after one of its jobs changed: starts assembly
    /// when every tree is stored, finishes the build when everything is done.
    mutating func advance(_ buildID: String) {
        guard let b = builds[buildID], !b.isFinished else { return }
        // One pass over the jobs, no intermediate arrays (this runs on every job change).
        var treesStored = true, anyActive = false
        var assembly: FarmJob?
        for id in b.jobIDs {
            guard let j = jobs[id] else { continue }
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
            assemblyQueue.append(assembly.id)
            if b.state == .queued { setBuildState(buildID, .running) }
            startAssemblies()
        case .succeeded:
            finish(buildID, .succeeded)
        default:
            break
        }
    }

    mutating func setBuildState(_ buildID: String, _ state: BuildState) {
        builds[buildID]?.state = state
        emit(.persist(.buildState(buildID: buildID, state)))
    }

    /// Ends a build: its live attempts are stopped, its unfinished jobs
    /// cancelled, and it leaves memory (the store answers for it from now on).
    mutating func finish(_ buildID: String, _ state: BuildState, failure: String = "") {
        guard var b = builds[buildID], !b.isFinished else { return }
        b.state = state
        b.failure = failure
        b.finishedMS = now
        builds[buildID] = b
        for id in b.jobIDs {
            guard let j = jobs[id], !j.isDone else { continue }
            if j.isActive { stopAttempt(j.attemptID, reason: "build \(state == .cancelled ? "cancelled" : "failed")") }
            updateJob(id) { $0.state = .cancelled }
        }
        let finished = b.finishedMS
        count(.buildFinished(arch: b.arch, imageType: b.imageType, outcome: Self.outcome(state), ms: finished - b.createdMS))
        // The last event before the state: a client that sees the build finished has seen every event.
        let kind: EventKind = state == .succeeded ? .succeeded : state == .cancelled ? .cancelled : .failed
        let secs = Double(finished - b.createdMS) / 1000
        event(
            buildID, kind,
            message: state == .succeeded
                ? "build succeeded in \(Self.decimal(secs)) s"
                : state == .cancelled ? "build cancelled" : "build failed: \(failure)")
        emit(.persist(.buildFinished(buildID: buildID, state, finishedMS: finished, failure: failure)))
        // Finished builds leave memory; SQLite answers status and logs.
        // Queue entries of the build are skipped (and dropped) by the next dispatch.
        for id in b.jobIDs { jobs[id] = nil }
        builds[buildID] = nil
        // Its trees may be pruned from now on (least recently used first).
        emit(.releaseTrees(buildID: buildID))
    }

    /// Changes a job in memory and records the change.
    mutating func updateJob(_ id: String, _ change: (inout FarmJob) -> Void) {
        guard var j = jobs[id] else { return }
        let before = j.state
        change(&j)
        if j.state != before { stateChanged(&j, from: before) }
        jobs[id] = j
        emit(.persist(.job(j)))
    }

    /// Keeps a job's times and counts its end (called by `updateJob`).
    mutating func stateChanged(_ j: inout FarmJob, from before: JobState) {
        let t = now
        switch j.state {
        case .queued:
            j.queuedMS = t
        case .assigned:
            if j.startedMS == 0 { j.startedMS = t }
            // Its first job on an agent makes a build running (top, dashboard, gauges).
            if builds[j.buildID]?.state == .queued { setBuildState(j.buildID, .running) }
            if let b = builds[j.buildID], j.queuedMS > 0 { count(.queueWait(arch: b.arch, ms: t - j.queuedMS)) }
        case .running where !j.onAgent:
            j.startedMS = t
        case .succeeded, .cached, .failed, .cancelled:
            j.finishedMS = t
            guard settings.telemetry, let b = builds[j.buildID] else { return }
            count(.jobFinished(arch: b.arch, imageType: b.imageType, kind: j.onAgent ? "tree" : "assembly", outcome: Self.outcome(j.state)))
            if j.onAgent && j.state == .succeeded { count(.treeCacheMiss(arch: b.arch)) }
            if !j.onAgent && before == .running {
                count(.assemblyFinished(imageType: b.imageType, outcome: Self.outcome(j.state), ms: t - j.startedMS))
            }
        default:
            break
        }
    }

    // MARK: - Words

    static func outcome(_ s: BuildState) -> String {
        switch s {
        case .succeeded: "succeeded"
        case .cancelled: "cancelled"
        default: "failed"
        }
    }

    static func outcome(_ s: JobState) -> String {
        switch s {
        case .succeeded: "succeeded"
        case .cached: "cached"
        case .cancelled: "cancelled"
        default: "failed"
        }
    }

    /// One decimal, without `String(format:)` (it showed in the dispatch profile).
    static func decimal(_ x: Double) -> String {
        let tenths = Int((x * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }
}
