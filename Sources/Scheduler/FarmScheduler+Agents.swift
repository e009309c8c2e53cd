import Foundation
import Manifest
import Protocol

extension FarmScheduler {
    /// One message from an agent's DEALER. Never throws: whatever a peer
    /// sends, the scheduler keeps serving.
    ///
    /// An agent is whatever its Hello's `agent_id` says (bound to the key
    /// that first said it); its connection is the routing id its Hello came
    /// on. Kiln's agents let the scheduler's ROUTER choose that id, so no
    /// peer can name another agent's connection: a peer that picks the
    /// routing id an agent used to have (its name, before) gets a connection
    /// of its own, and nothing addressed to the agent.
    package func handleAgent(identity: [UInt8], key: String?, message: WireMessage) {
        guard let body = message.envelope.body else { return drop(identity, "message without a body") }
        if let refusal = agentRefusal(key) {
            let claimed = if case .hello(let h) = body { h.agentID } else { core.agentSessions[identity] ?? "" }
            warnRefused(key, on: "agent", "refused \(body.name) from agent \(AgentText.field(claimed)): \(refusal)")
            var d = Kiln_V1_Disconnect()
            d.reason = refusal
            outbox?.agent(identity, WireMessage(.disconnect(d)))
            return
        }
        if case .hello(let hello) = body {
            guard Self.isAgentID(hello.agentID) else { return badHello(identity) }
            return welcome(identity: identity, agentID: hello.agentID, key: key ?? "", hello: hello)
        }
        // The session is the connection and the key that said Hello: anything
        // else (another connection, another key, a session that ended) is not heard.
        guard let agentID = core.agentSessions[identity], let agent = core.agents[agentID], agent.online,
            agent.identity == identity, agent.publicKey == key ?? ""
        else {
            var d = Kiln_V1_Disconnect()
            d.reason = "no session on this connection: send Hello first"
            outbox?.agent(identity, WireMessage(.disconnect(d)))
            return
        }
        seen(agentID)
        switch body {
        case .heartbeat(let h):
            core.agents[agentID]?.freeDisk = h.freeDisk
            notTakingJobs(agentID, h.notTakingJobs)
            outbox?.agent(identity, WireMessage(.heartbeat(Kiln_V1_Heartbeat())))
        case .progress(let p):
            guard let a = current(p.attemptID, agentID, identity), let job = core.jobs[a.jobID] else { return }
            renewLease(a.id)
            progress(job, a, p)
        case .streamChunk(let c):
            guard let a = current(c.attemptID, agentID, identity) else { return }
            renewLease(a.id)
            if core.jobs[a.jobID]?.state != .streaming { act { $0.updateJob(a.jobID) { $0.state = .streaming } } }
            downloads[a.id]?.deliver(message)
        case .streamEnd(let e):
            guard let a = current(e.attemptID, agentID, identity) else { return }
            renewLease(a.id)
            core.attempts[a.id]?.streamSHA256 = e.sha256
            if config.sharedStoreAgents.contains(agentID) {
                guard let job = core.jobs[a.jobID] else { return }
                if store.contains(job.pipelineID) {
                    act { $0.attemptSucceeded(e.attemptID, message: "\(job.pipelineName): tree built by \(agentID) in the shared store") }
                } else {
                    let failure = AttemptFailure(reason: "agent reported a stored tree that is not in the store", infrastructure: true)
                    act { $0.attemptFailed(e.attemptID, failure) }
                }
            } else {
                downloads[a.id]?.deliver(message)
            }
        case .jobFailed(let f):
            guard current(f.attemptID, agentID, identity) != nil else { return }
            var reason = AgentText.reason(f.reason)
            if !f.stageType.isEmpty { reason = "stage \(f.stageIndex + 1) \(AgentText.field(f.stageType)) failed: \(reason)" }
            let failure = AttemptFailure(
                reason: reason, infrastructure: f.infrastructure, logTail: AgentText.lines(f.logTail, config.logLimits))
            act { $0.attemptFailed(f.attemptID, failure) }
        case .disconnect(let d):
            // A stopping agent hands its attempts back: they are requeued now,
            // not when their leases run out. The answer ends its session.
            let handedBack = core.agents[agentID]?.attempts.count ?? 0
            act { $0.agentLost(agentID, reason: "agent disconnected: \(AgentText.field(d.reason))", saidGoodbye: true) }
            var bye = Kiln_V1_Disconnect()
            bye.reason = "session closed; \(handedBack) attempt(s) handed back to the queue"
            outbox?.agent(identity, WireMessage(.disconnect(bye)))
        default:
            drop(identity, "\(body.name) is not an agent message")
        }
    }

    func drop(_ identity: [UInt8], _ reason: String) {
        droppedMessages += 1
        metrics?.dropped()
        logger.warning("dropped a message: \(reason)", metadata: ["agent.id": "\(AgentText.field(core.agentSessions[identity] ?? "(no session)"))"])
    }

    /// Counts a message the server could not decode.
    package func countDropped() {
        droppedMessages += 1
        metrics?.dropped()
    }

    /// The agent is alive. Its attempts' leases are not renewed by this:
    /// only word about an attempt itself renews that attempt's lease.
    func seen(_ agentID: String) {
        core.agents[agentID]?.lastSeenMS = now
    }

    /// The attempt made progress (a stage, a log line, a keep-alive, stream data).
    func renewLease(_ attemptID: UInt64) {
        core.attempts[attemptID]?.leaseUntilMS = now + Int64(config.leaseMS)
    }

    /// The live attempt `attemptID` if `agentID` holds it; otherwise the
    /// agent is told to cancel it (fencing) and nil is returned.
    func current(_ attemptID: UInt64, _ agentID: String, _ identity: [UInt8]) -> FarmAttempt? {
        if let a = core.attempts[attemptID], a.agentID == agentID { return a }
        outbox?.agent(identity, .cancel(attemptID: attemptID, reason: "attempt \(attemptID) is not current"))
        return nil
    }

    /// A Hello: checks that the agent id is this key's (an id is bound to
    /// the first key that said Hello with it, until an operator releases it
    /// with `kiln agents release`), then `admit`s the agent.
    func welcome(identity: [UInt8], agentID: String, key: String, hello: Kiln_V1_Hello) {
        guard let bound = core.agents[agentID]?.publicKey, bound != key else {
            return admit(identity: identity, agentID: agentID, key: key, hello: hello)
        }
        // Bound to another key in memory; the operator may have released it
        // since (`kiln agents release` clears the row), so the row decides.
        let records = self.records
        Task {
            let row = try? await records.agentKey(agentID)
            self.welcomeChecked(identity: identity, agentID: agentID, key: key, hello: hello, stored: row ?? bound)
        }
    }

    func welcomeChecked(identity: [UInt8], agentID: String, key: String, hello: Kiln_V1_Hello, stored: String?) {
        if stored == nil || stored == "" || stored == key {
            if core.agents[agentID]?.online == true, core.agents[agentID]?.publicKey != key {
                act { $0.agentLost(agentID, reason: "agent id \(agentID) released and taken by another key") }
            }
            core.agents[agentID]?.publicKey = key
            return admit(identity: identity, agentID: agentID, key: key, hello: hello)
        }
        droppedMessages += 1
        metrics?.dropped()
        var d = Kiln_V1_Disconnect()
        d.reason =
            "agent id \(agentID) belongs to another key; use another --name, or ask the operator to run "
            + "`kiln agents release \(agentID)` on the scheduler"
        outbox?.agent(identity, WireMessage(.disconnect(d)))
        let t = now
        let last = refusedHellos[agentID]
        if let last, t - last.loggedMS < 60_000 {
            refusedHellos[agentID]?.unlogged += 1
            return
        }
        if refusedHellos.count >= 1000 { refusedHellos.removeAll() }
        refusedHellos[agentID] = (t, 0)
        let more = last.map { $0.unlogged > 0 ? " (\($0.unlogged) more refused since the last warning)" : "" } ?? ""
        let text =
            "refused Hello: agent id \(agentID) is bound to key \(stored ?? "") and was claimed by another key\(more); "
            + "`kiln agents release \(agentID)` frees the id"
        logger.warning("\(text)", metadata: ["agent.id": "\(agentID)", "peer.key": "\(key)"])
    }

    func admit(identity: [UInt8], agentID: String, key: String, hello: Kiln_V1_Hello) {
        // The agent id was checked when the Hello arrived (handleAgent).
        guard !(hello.arches + hello.emulatedArches).isEmpty,
            (hello.arches + hello.emulatedArches).allSatisfy(Self.validArches.contains)
        else {
            return badHello(identity)
        }
        let t = now
        let previous = core.agents[agentID]
        let slots = min(max(1, Int(hello.slots)), config.maxSlotsPerAgent)
        if Int(hello.slots) > config.maxSlotsPerAgent, previous?.online != true {
            logger.warning(
                "agent offers \(hello.slots) slots; it is given \(slots) (the scheduler's --max-slots)",
                metadata: ["agent.id": "\(agentID)"])
        }
        var agent = FarmAgent(
            id: agentID, identity: identity, publicKey: key, arches: hello.arches,
            emulated: hello.emulatedArches, slots: slots, freeDisk: hello.freeDisk,
            version: AgentText.field(hello.version, bytes: 64), lastSeenMS: t, online: true)
        agent.attempts = previous?.attempts ?? []
        agent.drained = previous?.drained ?? false
        // One connection per agent: its earlier one (if any) is heard no more.
        if let old = previous?.identity, old != identity { core.agentSessions[old] = nil }
        core.agentSessions[identity] = agentID
        agent.notTakingJobs = previous?.notTakingJobs ?? ""
        core.agents[agentID] = agent
        notTakingJobs(agentID, hello.notTakingJobs)
        // Re-adopt what the agent still runs; cancel what is no longer current.
        let running = Set(hello.runningAttemptIds)
        for id in running {
            if let a = core.attempts[id], a.agentID == agentID {
                core.agents[agentID]?.attempts.insert(id)
                core.attempts[id]?.leaseUntilMS = t + Int64(config.leaseMS)
                // Whatever was in flight may be lost: the stream starts over.
                startDownload(id, restart: true)
            } else {
                outbox?.agent(identity, .cancel(attemptID: id, reason: "attempt \(id) is not current"))
            }
        }
        for id in core.agents[agentID]?.attempts ?? [] where !running.contains(id) {
            act { $0.attemptFailed(id, AttemptFailure(reason: "agent \(agentID) reconnected without it", infrastructure: true)) }
        }
        records.recordAgent(
            id: agentID, publicKey: key, arches: hello.arches, emulated: hello.emulatedArches, slots: slots,
            freeDisk: hello.freeDisk, version: agent.version, lastSeenMS: t)
        var w = Kiln_V1_Welcome()
        w.epoch = epoch
        w.heartbeatMs = config.heartbeatMS
        w.leaseMs = config.leaseMS
        w.version = Self.version
        outbox?.agent(identity, WireMessage(.welcome(w)))
        if previous?.online != true {
            logger.info(
                "agent online",
                metadata: [
                    "agent.id": "\(agentID)", "agent.arches": "\(hello.arches.joined(separator: ","))",
                    "agent.emulated": "\(hello.emulatedArches.joined(separator: ","))", "agent.slots": "\(slots)",
                ])
        }
        scheduleDispatch()
    }

    func progress(_ job: FarmJob, _ a: FarmAttempt, _ p: Kiln_V1_Progress) {
        // A keep-alive (nothing but the attempt id) only renewed the lease.
        if p.state == .unspecified && p.logLines.isEmpty && p.stageCount == 0 { return }
        var p = p
        p.stageType = AgentText.field(p.stageType)
        p.pipelineName = AgentText.field(p.pipelineName)
        act { machine in
            if job.state == .assigned { machine.updateJob(job.id) { $0.state = .running } }
            if p.stageCount > 0, p.pipelineName == job.pipelineName || p.pipelineName.isEmpty {
                machine.updateJob(job.id) {
                    $0.stageIndex = p.stageIndex
                    $0.stageCount = p.stageCount
                    $0.stageType = p.stageType
                }
            }
        }
        let where_ = "\(p.pipelineName.isEmpty ? job.pipelineName : p.pipelineName) stage \(p.stageIndex + 1)/\(p.stageCount) \(p.stageType)"
        switch p.state {
        case .started:
            core.attempts[a.id]?.stageStartedMS = now
            act {
                $0.event(
                    job.buildID, .stageStarted, job: job.id, attempt: a.id, agent: a.agentID, message: "\(where_) started",
                    logLines: p.logLines, fromAgent: true)
            }
        case .finished:
            if a.stageStartedMS > 0 {
                core.attempts[a.id]?.stageStartedMS = 0
                stageRun(
                    buildID: job.buildID, jobID: job.id, attemptID: a.id, index: p.stageIndex, type: p.stageType,
                    mode: a.emulated ? "emulated" : "native", ms: now - a.stageStartedMS)
            }
            act {
                $0.event(
                    job.buildID, .stageFinished, job: job.id, attempt: a.id, agent: a.agentID, message: "\(where_) finished",
                    logLines: p.logLines, fromAgent: true)
            }
        case .cached:
            act {
                $0.event(
                    job.buildID, .stageFinished, job: job.id, attempt: a.id, agent: a.agentID, message: "\(where_) cached",
                    logLines: p.logLines, fromAgent: true)
            }
        default:
            if !p.logLines.isEmpty {
                act { $0.event(job.buildID, .log, job: job.id, attempt: a.id, agent: a.agentID, logLines: p.logLines, fromAgent: true) }
            }
        }
    }

    /// What an agent says about taking jobs (its disk below its
    /// --min-free-gib, or back above it): no job is assigned to it while it
    /// says why not; the queue is offered to it again when it stops.
    func notTakingJobs(_ agentID: String, _ said: String) {
        let reason = AgentText.field(said, bytes: 512)
        guard let before = core.agents[agentID]?.notTakingJobs, before != reason else { return }
        core.agents[agentID]?.notTakingJobs = reason
        if reason.isEmpty {
            logger.debug("agent takes jobs again", metadata: ["agent.id": "\(agentID)"])
            scheduleDispatch()
        } else if before.isEmpty {
            // At most one line per agent every 10 s, however often it flips.
            if diskWarningsStorage == nil { diskWarningsStorage = RateLimitedWarnings(logger: logger) }
            diskWarningsStorage?.warn(peer: agentID, on: "agent", "agent \(agentID) takes no new job: \(reason)")
        }
    }

    /// Runs every few hundred ms: silent agents go offline, expired leases
    /// requeue their jobs.
    package func tick() {
        let t = now
        if t - diskPolledMS >= config.diskPollMS {
            diskPolledMS = t
            checkDisk()
        }
        startRetentionIfDue()
        act { $0.tick() }
    }

    /// Drains agent `id` (it is assigned no new job; what it runs finishes)
    /// or undrains it (it is offered the queue at once): `DrainRequest`, an
    /// admin's. Applied now and committed before it returns, so the mark the
    /// client is told about outlives a restart.
    func setDrained(_ id: String, _ drained: Bool) async throws -> Kiln_V1_DrainReply {
        guard let agent = core.agents[id] else {
            throw SchedulerError.notFound("no agent \(AgentText.field(id)) on this scheduler; `kiln agents` lists the agents it knows")
        }
        try db.checkWritable()
        var reply = Kiln_V1_DrainReply()
        reply.wasDrained = agent.drained
        core.agents[id]?.drained = drained
        if agent.drained != drained {
            logger.notice(
                "\(drained ? "agent drained: it is assigned no new job" : "agent undrained: it is assigned jobs again")",
                metadata: ["agent.id": "\(id)"])
            if !drained { scheduleDispatch() }
        }
        try await records.setDrained(id, drained)
        if let now = core.agents[id] { reply.agent = agentInfo(now) }
        return reply
    }
}

extension FarmScheduler {
    static let validArches = Set(Architecture.allCases.map(\.rawValue))

    /// A Hello whose agent id or architectures are not valid: refused, and counted.
    func badHello(_ identity: [UInt8]) {
        var d = Kiln_V1_Disconnect()
        d.reason =
            "bad Hello: agent_id must be 1 to 64 letters, digits, '.', '_' or '-', "
            + "and arches must be among \(Self.validArches.sorted())"
        outbox?.agent(identity, WireMessage(.disconnect(d)))
        droppedMessages += 1
        metrics?.dropped()
    }

    /// An agent id a Hello may claim: 1 to 64 ASCII letters, digits, `.`, `_`
    /// and `-` (what `kiln agent --name` takes).
    package static func isAgentID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64
            && id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
    }
}
