import Foundation
import Logging
import Manifest
import Protocol

/// Agents: Hello and Welcome, sessions, heartbeats, what they say about
/// their attempts (progress, stream data, failures) and goodbyes
/// (docs/architecture.md §5, agents). Which key may act as an agent, and
/// which key an agent id is bound to, the actor checks before.
extension SchedulerCore {
    static let validArches = Set(Architecture.allCases.map(\.rawValue))

    /// A Hello from a key that may hold `hello.agentID`: the agent is
    /// (again) online on this connection, re-adopts the attempts it still
    /// runs and is welcomed; attempts it no longer runs are failed.
    mutating func agentHello(_ hello: Kiln_V1_Hello, on identity: [UInt8], key: String) {
        let agentID = hello.agentID
        guard SchedulerCore.isAgentID(agentID), !(hello.arches + hello.emulatedArches).isEmpty,
            (hello.arches + hello.emulatedArches).allSatisfy(Self.validArches.contains)
        else {
            return badHello(identity)
        }
        let t = now
        let previous = agents[agentID]
        let slots = min(max(1, Int(hello.slots)), settings.maxSlotsPerAgent)
        if Int(hello.slots) > settings.maxSlotsPerAgent, previous?.online != true {
            emit(
                .log(
                    .warning, "agent offers \(hello.slots) slots; it is given \(slots) (the scheduler's --max-slots)",
                    ["agent.id": "\(agentID)"]))
        }
        var agent = FarmAgent(
            id: agentID, identity: identity, publicKey: key, arches: hello.arches,
            emulated: hello.emulatedArches, slots: slots, freeDisk: hello.freeDisk,
            version: AgentText.field(hello.version, bytes: 64), lastSeenMS: t, online: true)
        agent.attempts = previous?.attempts ?? []
        agent.drained = previous?.drained ?? false
        // One connection per agent: its earlier one (if any) is heard no more.
        if let old = previous?.identity, old != identity { agentSessions[old] = nil }
        agentSessions[identity] = agentID
        agent.notTakingJobs = previous?.notTakingJobs ?? ""
        agents[agentID] = agent
        notTakingJobs(agentID, hello.notTakingJobs)
        // Re-adopt what the agent still runs; cancel what is no longer current.
        let running = Set(hello.runningAttemptIds)
        for id in running {
            if let a = attempts[id], a.agentID == agentID {
                agents[agentID]?.attempts.insert(id)
                attempts[id]?.leaseUntilMS = t + Int64(settings.leaseMS)
                // Whatever was in flight may be lost: the stream starts over.
                emit(.startDownload(attempt: id, restart: true))
            } else {
                emit(.send(to: identity, .cancel(attemptID: id, reason: "attempt \(id) is not current")))
            }
        }
        for id in agents[agentID]?.attempts ?? [] where !running.contains(id) {
            attemptFailed(id, AttemptFailure(reason: "agent \(agentID) reconnected without it", infrastructure: true))
        }
        emit(.persist(.agent(agent)))
        var w = Kiln_V1_Welcome()
        w.epoch = epoch
        w.heartbeatMs = settings.heartbeatMS
        w.leaseMs = settings.leaseMS
        w.version = FarmScheduler.version
        emit(.send(to: identity, WireMessage(.welcome(w))))
        if previous?.online != true {
            emit(
                .log(
                    .info, "agent online",
                    [
                        "agent.id": "\(agentID)", "agent.arches": "\(hello.arches.joined(separator: ","))",
                        "agent.emulated": "\(hello.emulatedArches.joined(separator: ","))", "agent.slots": "\(slots)",
                    ]))
        }
        emit(.dispatchSoon)
    }

    /// The agent id was released (`kiln agents release`) and another key
    /// claims it: the session of the old key ends, the id is the new key's.
    mutating func agentRebound(_ agentID: String, to key: String) {
        if agents[agentID]?.online == true, agents[agentID]?.publicKey != key {
            agentLost(agentID, reason: "agent id \(agentID) released and taken by another key")
        }
        agents[agentID]?.publicKey = key
    }

    /// A Hello whose agent id or architectures are not valid: refused, and counted.
    mutating func badHello(_ identity: [UInt8]) {
        var d = Kiln_V1_Disconnect()
        d.reason =
            "bad Hello: agent_id must be 1 to 64 letters, digits, '.', '_' or '-', "
            + "and arches must be among \(Self.validArches.sorted())"
        emit(.send(to: identity, WireMessage(.disconnect(d))))
        emit(.dropped(warning: nil))
    }

    /// An agent id a Hello may claim: 1 to 64 ASCII letters, digits, `.`, `_`
    /// and `-` (what `kiln agent --name` takes).
    package static func isAgentID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64
            && id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
    }

    /// Any other message from an agent's connection. The session is the
    /// connection and the key that said Hello: anything else (another
    /// connection, another key, a session that ended) is not heard.
    mutating func agentMessage(_ message: WireMessage, on identity: [UInt8], key: String) {
        guard let body = message.envelope.body else { return drop(identity, "message without a body") }
        guard let agentID = agentSessions[identity], let agent = agents[agentID], agent.online,
            agent.identity == identity, agent.publicKey == key
        else {
            var d = Kiln_V1_Disconnect()
            d.reason = "no session on this connection: send Hello first"
            return emit(.send(to: identity, WireMessage(.disconnect(d))))
        }
        // The agent is alive. Its attempts' leases are not renewed by this:
        // only word about an attempt itself renews that attempt's lease.
        agents[agentID]?.lastSeenMS = now
        switch body {
        case .heartbeat(let h):
            agents[agentID]?.freeDisk = h.freeDisk
            notTakingJobs(agentID, h.notTakingJobs)
            emit(.send(to: identity, WireMessage(.heartbeat(Kiln_V1_Heartbeat()))))
        case .progress(let p):
            guard let a = current(p.attemptID, agentID, identity), let job = jobs[a.jobID] else { return }
            renewLease(a.id)
            progress(job, a, p)
        case .streamChunk(let c):
            guard let a = current(c.attemptID, agentID, identity) else { return }
            renewLease(a.id)
            if jobs[a.jobID]?.state != .streaming { updateJob(a.jobID) { $0.state = .streaming } }
            emit(.deliver(attempt: a.id, message))
        case .streamEnd(let e):
            guard let a = current(e.attemptID, agentID, identity) else { return }
            renewLease(a.id)
            attempts[a.id]?.streamSHA256 = e.sha256
            guard settings.sharedStoreAgents.contains(agentID) else { return emit(.deliver(attempt: a.id, message)) }
            // An agent on the scheduler's own store streams nothing: the tree is there, or it is not.
            guard let job = jobs[a.jobID] else { return }
            if outside.hasTree(job.pipelineID) {
                attemptSucceeded(e.attemptID, message: "\(job.pipelineName): tree built by \(agentID) in the shared store")
            } else {
                attemptFailed(
                    e.attemptID,
                    AttemptFailure(reason: "agent reported a stored tree that is not in the store", infrastructure: true))
            }
        case .jobFailed(let f):
            guard current(f.attemptID, agentID, identity) != nil else { return }
            var reason = AgentText.reason(f.reason)
            if !f.stageType.isEmpty { reason = "stage \(f.stageIndex + 1) \(AgentText.field(f.stageType)) failed: \(reason)" }
            attemptFailed(
                f.attemptID,
                AttemptFailure(
                    reason: reason, infrastructure: f.infrastructure,
                    logTail: AgentText.lines(f.logTail, settings.logLimits)))
        case .disconnect(let d):
            // A stopping agent hands its attempts back: they are requeued now,
            // not when their leases run out. The answer ends its session.
            let handedBack = agents[agentID]?.attempts.count ?? 0
            agentLost(agentID, reason: "agent disconnected: \(AgentText.field(d.reason))", saidGoodbye: true)
            var bye = Kiln_V1_Disconnect()
            bye.reason = "session closed; \(handedBack) attempt(s) handed back to the queue"
            emit(.send(to: identity, WireMessage(.disconnect(bye))))
        default:
            drop(identity, "\(body.name) is not an agent message")
        }
    }

    /// A message the scheduler does not take: counted, and logged.
    mutating func drop(_ identity: [UInt8], _ reason: String) {
        emit(
            .dropped(
                warning: .init(
                    message: "dropped a message: \(reason)",
                    agentID: AgentText.field(agentSessions[identity] ?? "(no session)"))))
    }

    /// The attempt made progress (a stage, a log line, a keep-alive, stream data).
    mutating func renewLease(_ attemptID: UInt64) {
        attempts[attemptID]?.leaseUntilMS = now + Int64(settings.leaseMS)
    }

    /// The live attempt `attemptID` if `agentID` holds it; otherwise the
    /// agent is told to cancel it (fencing) and nil is returned.
    mutating func current(_ attemptID: UInt64, _ agentID: String, _ identity: [UInt8]) -> FarmAttempt? {
        if let a = attempts[attemptID], a.agentID == agentID { return a }
        emit(.send(to: identity, .cancel(attemptID: attemptID, reason: "attempt \(attemptID) is not current")))
        return nil
    }

    /// What an agent says about taking jobs (its disk below its
    /// --min-free-gib, or back above it): no job is assigned to it while it
    /// says why not; the queue is offered to it again when it stops.
    mutating func notTakingJobs(_ agentID: String, _ said: String) {
        let reason = AgentText.field(said, bytes: 512)
        guard let before = agents[agentID]?.notTakingJobs, before != reason else { return }
        agents[agentID]?.notTakingJobs = reason
        if reason.isEmpty {
            emit(.log(.debug, "agent takes jobs again", ["agent.id": "\(agentID)"]))
            emit(.dispatchSoon)
        } else if before.isEmpty {
            emit(.diskWarning(agentID: agentID, "agent \(agentID) takes no new job: \(reason)"))
        }
    }

    /// A stage started or finished on an agent, or it sent log lines.
    mutating func progress(_ job: FarmJob, _ a: FarmAttempt, _ p: Kiln_V1_Progress) {
        // A keep-alive (nothing but the attempt id) only renewed the lease.
        if p.state == .unspecified && p.logLines.isEmpty && p.stageCount == 0 { return }
        var p = p
        p.stageType = AgentText.field(p.stageType)
        p.pipelineName = AgentText.field(p.pipelineName)
        if job.state == .assigned { updateJob(job.id) { $0.state = .running } }
        if p.stageCount > 0, p.pipelineName == job.pipelineName || p.pipelineName.isEmpty {
            updateJob(job.id) {
                $0.stageIndex = p.stageIndex
                $0.stageCount = p.stageCount
                $0.stageType = p.stageType
            }
        }
        let where_ = "\(p.pipelineName.isEmpty ? job.pipelineName : p.pipelineName) stage \(p.stageIndex + 1)/\(p.stageCount) \(p.stageType)"
        switch p.state {
        case .started:
            attempts[a.id]?.stageStartedMS = now
            event(
                job.buildID, .stageStarted, job: job.id, attempt: a.id, agent: a.agentID, message: "\(where_) started",
                logLines: p.logLines, fromAgent: true)
        case .finished:
            if a.stageStartedMS > 0 {
                attempts[a.id]?.stageStartedMS = 0
                stageRan(
                    buildID: job.buildID, jobID: job.id, attemptID: a.id, index: p.stageIndex, type: p.stageType,
                    mode: a.emulated ? "emulated" : "native", ms: now - a.stageStartedMS)
            }
            event(
                job.buildID, .stageFinished, job: job.id, attempt: a.id, agent: a.agentID, message: "\(where_) finished",
                logLines: p.logLines, fromAgent: true)
        case .cached:
            event(
                job.buildID, .stageFinished, job: job.id, attempt: a.id, agent: a.agentID, message: "\(where_) cached",
                logLines: p.logLines, fromAgent: true)
        default:
            if !p.logLines.isEmpty {
                event(job.buildID, .log, job: job.id, attempt: a.id, agent: a.agentID, logLines: p.logLines, fromAgent: true)
            }
        }
    }

    /// A stage finished: its duration goes to the histogram and, with
    /// telemetry on, to `stage_runs` for `kiln report`.
    mutating func stageRan(buildID: String, jobID: String, attemptID: UInt64, index: UInt32, type: String, mode: String, ms: Int64) {
        guard let b = builds[buildID] else { return }
        count(
            .stageRun(
                StageRun(
                    buildID: buildID, jobID: jobID, attemptID: attemptID, index: index, type: type, arch: b.arch, mode: mode,
                    finishedMS: now, ms: ms)))
    }

    /// `kiln agents drain` / `undrain`: a drained agent is assigned no new
    /// job; undrained, it is offered the queue at once. Returns whether it was drained.
    mutating func setDrained(_ agentID: String, _ drained: Bool) -> Bool? {
        guard let was = agents[agentID]?.drained else { return nil }
        agents[agentID]?.drained = drained
        if was != drained {
            emit(
                .log(
                    .notice, drained ? "agent drained: it is assigned no new job" : "agent undrained: it is assigned jobs again",
                    ["agent.id": "\(agentID)"]))
            if !drained { emit(.dispatchSoon) }
        }
        return was
    }
}
