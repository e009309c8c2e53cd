import Foundation
import GRDB
import Manifest
import Protocol

extension FarmScheduler {
    /// One message from an agent's DEALER. Never throws: whatever a peer
    /// sends, the scheduler keeps serving.
    package func handleAgent(identity: [UInt8], key: String?, message: WireMessage) {
        guard let body = message.envelope.body else { return drop(identity, "message without a body") }
        let agentID = String(decoding: identity, as: UTF8.self)
        if case .hello(let hello) = body {
            return welcome(identity: identity, agentID: agentID, key: key ?? "", hello: hello)
        }
        guard agents[agentID]?.online == true else {
            var d = Kiln_V1_Disconnect()
            d.reason = "no session for agent \(agentID): send Hello first"
            outbox?.agent(identity, WireMessage(.disconnect(d)))
            return
        }
        seen(agentID)
        switch body {
        case .heartbeat(let h):
            agents[agentID]?.freeDisk = h.freeDisk
            outbox?.agent(identity, WireMessage(.heartbeat(Kiln_V1_Heartbeat())))
        case .progress(let p):
            guard let a = current(p.attemptID, agentID, identity), let job = jobs[a.jobID] else { return }
            progress(job, a, p)
        case .streamChunk(let c):
            guard let a = current(c.attemptID, agentID, identity) else { return }
            if jobs[a.jobID]?.state != .streaming { updateJob(a.jobID) { $0.state = .streaming } }
            a.download?.deliver(message)
        case .streamEnd(let e):
            guard let a = current(e.attemptID, agentID, identity) else { return }
            if config.sharedStoreAgents.contains(agentID) {
                guard let job = jobs[a.jobID] else { return }
                if store.contains(job.pipelineID) {
                    attemptSucceeded(e.attemptID, message: "\(job.pipelineName): tree built by \(agentID) in the shared store")
                } else {
                    attemptFailed(e.attemptID, AttemptFailure(reason: "agent reported a stored tree that is not in the store",
                                                              infrastructure: true))
                }
            } else {
                a.download?.deliver(message)
            }
        case .jobFailed(let f):
            guard current(f.attemptID, agentID, identity) != nil else { return }
            var reason = f.reason
            if !f.stageType.isEmpty { reason = "stage \(f.stageIndex + 1) \(f.stageType) failed: \(f.reason)" }
            attemptFailed(f.attemptID, AttemptFailure(reason: reason, infrastructure: f.infrastructure, logTail: f.logTail))
        case .disconnect(let d):
            agentLost(agentID, reason: "agent disconnected: \(d.reason)")
        default:
            drop(identity, "\(body.name) is not an agent message")
        }
    }

    func drop(_ identity: [UInt8], _ reason: String) {
        droppedMessages += 1
        metrics?.dropped()
        logger.warning("dropped a message: \(reason)", metadata: ["agent.id": "\(String(decoding: identity, as: UTF8.self))"])
    }

    /// Counts a message the server could not decode.
    package func countDropped() {
        droppedMessages += 1
        metrics?.dropped()
    }

    func seen(_ agentID: String) {
        let t = now
        agents[agentID]?.lastSeenMS = t
        for id in agents[agentID]?.attempts ?? [] { attempts[id]?.leaseUntilMS = t + Int64(config.leaseMS) }
    }

    /// The live attempt `attemptID` if `agentID` holds it; otherwise the
    /// agent is told to cancel it (fencing) and nil is returned.
    func current(_ attemptID: UInt64, _ agentID: String, _ identity: [UInt8]) -> FarmAttempt? {
        if let a = attempts[attemptID], a.agentID == agentID { return a }
        outbox?.agent(identity, .cancel(attemptID: attemptID, reason: "attempt \(attemptID) is not current"))
        return nil
    }

    func welcome(identity: [UInt8], agentID: String, key: String, hello: Kiln_V1_Hello) {
        let valid = Set(Architecture.allCases.map(\.rawValue))
        guard hello.agentID == agentID, !agentID.isEmpty,
              !(hello.arches + hello.emulatedArches).isEmpty,
              (hello.arches + hello.emulatedArches).allSatisfy(valid.contains) else {
            var d = Kiln_V1_Disconnect()
            d.reason = "bad Hello: agent_id must equal the routing id and arches must be among \(valid.sorted())"
            outbox?.agent(identity, WireMessage(.disconnect(d)))
            droppedMessages += 1
            return
        }
        let t = now
        let previous = agents[agentID]
        var agent = FarmAgent(id: agentID, identity: identity, publicKey: key, arches: hello.arches,
                              emulated: hello.emulatedArches, slots: max(1, Int(hello.slots)), freeDisk: hello.freeDisk,
                              version: hello.version, lastSeenMS: t, online: true)
        agent.attempts = previous?.attempts ?? []
        agents[agentID] = agent
        // Re-adopt what the agent still runs; cancel what is no longer current.
        let running = Set(hello.runningAttemptIds)
        for id in running {
            if let a = attempts[id], a.agentID == agentID {
                agents[agentID]?.attempts.insert(id)
                attempts[id]?.leaseUntilMS = t + Int64(config.leaseMS)
                // Whatever was in flight may be lost: the stream starts over.
                startDownload(id, restart: true)
            } else {
                outbox?.agent(identity, .cancel(attemptID: id, reason: "attempt \(id) is not current"))
            }
        }
        for id in agents[agentID]?.attempts ?? [] where !running.contains(id) {
            attemptFailed(id, AttemptFailure(reason: "agent \(agentID) reconnected without it", infrastructure: true))
        }
        let (arches, emulated) = (hello.arches.joined(separator: ","), hello.emulatedArches.joined(separator: ","))
        let (slots, disk, version) = (Int(hello.slots), Int64(clamping: hello.freeDisk), hello.version)
        db.record { db in
            try db.cachedStatement(sql: """
                INSERT INTO agents (id, public_key, arches, emulated, slots, free_disk, version, last_seen_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET public_key = excluded.public_key, arches = excluded.arches,
                emulated = excluded.emulated, slots = excluded.slots, free_disk = excluded.free_disk,
                version = excluded.version, last_seen_ms = excluded.last_seen_ms
                """).execute( arguments: [agentID, key, arches, emulated, slots, disk, version, t])
        }
        var w = Kiln_V1_Welcome()
        w.epoch = epoch
        w.heartbeatMs = config.heartbeatMS
        w.leaseMs = config.leaseMS
        w.version = Self.version
        outbox?.agent(identity, WireMessage(.welcome(w)))
        if previous?.online != true {
            logger.info("agent online", metadata: ["agent.id": "\(agentID)", "agent.arches": "\(arches)",
                                                    "agent.emulated": "\(emulated)", "agent.slots": "\(slots)"])
        }
        scheduleDispatch()
    }

    func progress(_ job: FarmJob, _ a: FarmAttempt, _ p: Kiln_V1_Progress) {
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
            event(job.buildID, .stageStarted, job: job.id, attempt: a.id, agent: a.agentID, message: "\(where_) started",
                  logLines: p.logLines)
        case .finished:
            if a.stageStartedMS > 0 {
                attempts[a.id]?.stageStartedMS = 0
                stageRun(buildID: job.buildID, jobID: job.id, attemptID: a.id, index: p.stageIndex, type: p.stageType,
                         mode: a.emulated ? "emulated" : "native", ms: now - a.stageStartedMS)
            }
            event(job.buildID, .stageFinished, job: job.id, attempt: a.id, agent: a.agentID, message: "\(where_) finished",
                  logLines: p.logLines)
        case .cached:
            event(job.buildID, .stageFinished, job: job.id, attempt: a.id, agent: a.agentID, message: "\(where_) cached",
                  logLines: p.logLines)
        default:
            if !p.logLines.isEmpty {
                event(job.buildID, .log, job: job.id, attempt: a.id, agent: a.agentID, logLines: p.logLines)
            }
        }
    }

    /// An agent went away: its attempts are infrastructure failures.
    func agentLost(_ agentID: String, reason: String) {
        guard agents[agentID]?.online == true else { return }
        agents[agentID]?.online = false
        logger.warning("agent offline: \(reason)", metadata: ["agent.id": "\(agentID)"])
        for id in agents[agentID]?.attempts ?? [] {
            attemptFailed(id, AttemptFailure(reason: reason, infrastructure: true))
        }
    }

    /// Runs every few hundred ms: silent agents go offline, expired leases
    /// requeue their jobs.
    package func tick() {
        let t = now
        for (id, a) in agents where a.online && t - a.lastSeenMS > Int64(config.agentTimeoutMS) {
            agentLost(id, reason: "agent \(id) silent for \((t - a.lastSeenMS) / 1000) s")
        }
        for (id, a) in attempts where a.leaseUntilMS < t {
            attemptFailed(id, AttemptFailure(reason: "lease expired: no word from agent \(a.agentID) for \(config.leaseMS / 1000) s",
                                             infrastructure: true))
        }
    }
}
