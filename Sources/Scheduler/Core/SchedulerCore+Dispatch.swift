import Foundation
import Logging
import Protocol

/// Dispatch: queued tree jobs to agents with a free slot for their
/// architecture, one attempt per pipeline in flight, leases, the attempt
/// limit (docs/architecture.md §5, jobs).
extension SchedulerCore {
    /// One job given to one agent by a dispatch pass, not yet committed.
    struct Assignment {
        var attempt: UInt64
        var job: FarmJob
        var agent: FarmAgent
        var emulated: Bool
    }

    /// What a dispatch pass chose: the assignments (to commit before their
    /// `Assign`s leave) and the queued jobs whose tree is already stored.
    struct Selection {
        var assigned: [Assignment] = []
        var stored: [String] = []
    }

    /// Picks agents for queued jobs and records the attempts in memory; the
    /// actor commits them (`insertAttempts`) before `assignmentCommitted`.
    mutating func selectAssignments() -> Selection {
        var selection = Selection()
        // Built once per pass (not once per job): what is in flight, and who has room.
        var building = Set(attempts.values.map(\.pipelineID))
        var free = agents.values.filter { $0.freeSlots > 0 }.map { Candidate(agent: $0) }
        for arch in queues.keys.sorted() {
            let queue = queues[arch] ?? []
            var taken = 0
            while taken < queue.count {
                let jobID = queue[taken]
                guard let job = jobs[jobID], job.state == .queued else {
                    taken += 1
                    continue
                }
                if outside.hasTree(job.pipelineID) {
                    taken += 1
                    selection.stored.append(jobID)
                    continue
                }
                if building.contains(job.pipelineID) {
                    taken += 1
                    parked[job.pipelineID, default: []].append(jobID)
                    continue
                }
                guard let agentID = Self.pick(&free, arch: arch, avoiding: job.triedAgents) else {
                    tellIfNoAgent(arch: arch, queue[taken...])
                    break
                }
                taken += 1
                building.insert(job.pipelineID)
                let attemptID = nextAttemptID
                nextAttemptID += 1
                agents[agentID]?.attempts.insert(attemptID)
                let t = now
                attempts[attemptID] = FarmAttempt(
                    id: attemptID, jobID: jobID, pipelineID: job.pipelineID, agentID: agentID,
                    leaseUntilMS: t + Int64(settings.leaseMS), startedMS: t,
                    emulated: agents[agentID]?.arches.contains(arch) == false)
                updateJob(jobID) {
                    $0.state = .assigned
                    $0.attempts += 1
                    $0.attemptID = attemptID
                    $0.agentID = agentID
                    $0.triedAgents.insert(agentID)
                }
                selection.assigned.append(
                    Assignment(
                        attempt: attemptID, job: jobs[jobID]!, agent: agents[agentID]!,
                        emulated: attempts[attemptID]!.emulated))
            }
            // Nothing above touches the queues, so the taken prefix is exactly what was handled.
            queues[arch]?.removeFirst(taken)
        }
        return selection
    }

    /// The assignments could not be committed: each attempt failed (an
    /// infrastructure failure: the job is tried again, up to the limit).
    mutating func assignmentsFailed(_ assigned: [Assignment], reason: String) {
        emit(.log(.error, "could not record assignments: \(reason)", [:]))
        for a in assigned { attemptFailed(a.attempt, AttemptFailure(reason: "scheduler database: \(reason)", infrastructure: true)) }
    }

    /// One committed assignment: its `Assign` leaves and its tree download starts.
    mutating func assignmentCommitted(_ a: Assignment) {
        guard attempts[a.attempt] != nil, let b = builds[a.job.buildID] else { return }
        var m = Kiln_V1_Assign()
        m.attemptID = a.attempt
        m.jobID = a.job.id
        m.buildID = b.id
        m.pipelineName = a.job.pipelineName
        m.manifestJson = Data(b.manifestJSON)
        m.export = a.job.pipelineName
        m.arch = b.arch
        m.pipelineID = a.job.pipelineID
        m.maxChunkBytes = settings.maxChunkBytes
        m.stageTimeoutMs = UInt64(b.stageTimeoutMS > 0 ? b.stageTimeoutMS : settings.stageTimeoutMS)
        emit(.send(to: a.agent.identity, WireMessage(.assign(m))))
        let emulated = !a.agent.arches.contains(b.arch) ? " (emulated)" : ""
        event(
            b.id, .assigned, job: a.job.id, attempt: a.attempt, agent: a.agent.id,
            message: "\(a.job.pipelineName): attempt \(a.attempt) on agent \(a.agent.id)\(emulated)")
        emit(.startDownload(attempt: a.attempt, restart: false))
    }

    /// Says once per job when no online agent can run its architecture at
    /// all (rather than all being busy), so `kiln logs` explains the wait.
    mutating func tellIfNoAgent(arch: String, _ waiting: ArraySlice<String>) {
        guard !agents.values.contains(where: { $0.online && $0.runs(arch) }) else { return }
        for jobID in waiting {
            guard let job = jobs[jobID], job.state == .queued, !job.toldNoAgent else { continue }
            jobs[jobID]?.toldNoAgent = true
            event(
                job.buildID, .queued, job: jobID,
                message: "\(job.pipelineName): waiting: no online agent runs \(arch) "
                    + "(start one with `kiln agent --arch \(arch)`; `kiln agents` lists them)")
        }
    }

    /// An agent with room, as one dispatch pass sees it.
    struct Candidate {
        var id: String
        var native: [String]
        var emulated: [String]
        var freeSlots: Int
        init(agent: FarmAgent) {
            (id, native, emulated, freeSlots) = (agent.id, agent.arches, agent.emulated, agent.freeSlots)
        }
    }

    /// The candidate with the most free slots that runs `arch`, natively if
    /// possible, preferring agents this job has not failed on; takes one of
    /// its slots and drops it from `free` when it has none left.
    static func pick(_ free: inout [Candidate], arch: String, avoiding tried: Set<String>) -> String? {
        var best: (index: Int, score: Int)?
        for (i, c) in free.enumerated() where c.native.contains(arch) || c.emulated.contains(arch) {
            let score = c.freeSlots + (c.native.contains(arch) ? 1000 : 0) + (tried.contains(c.id) ? 0 : 100_000)
            if best == nil || score > best!.score || (score == best!.score && c.id < free[best!.index].id) { best = (i, score) }
        }
        guard let index = best?.index else { return nil }
        let id = free[index].id
        free[index].freeSlots -= 1
        if free[index].freeSlots == 0 {
            free.swapAt(index, free.count - 1)
            free.removeLast()
        }
        return id
    }

    // MARK: - Outcomes

    /// The attempt's tree arrived whole (`compressedBytes` in `seconds`,
    /// `resends` chunks sent twice) and is in the store.
    mutating func treeReceived(_ attemptID: UInt64, compressedBytes: UInt64, seconds: Double, resends: Int) {
        guard let a = attempts[attemptID], let job = jobs[a.jobID] else { return }
        attempts[attemptID]?.streamBytes = compressedBytes
        if let b = builds[job.buildID] { count(.streamed(arch: b.arch, bytes: compressedBytes)) }
        let mb = Double(compressedBytes) / 1e6
        let secs = max(seconds, 0.001)
        let resent = resends > 0 ? ", \(resends) chunk(s) re-sent" : ""
        attemptSucceeded(
            attemptID,
            message: "\(job.pipelineName): streamed \(Self.decimal(mb)) MB from \(a.agentID) in "
                + "\(Self.decimal(secs)) s (\(Int(mb / secs)) MB/s)\(resent)")
    }

    /// The attempt's tree is in the store.
    mutating func attemptSucceeded(_ attemptID: UInt64, message: String) {
        guard let a = endAttempt(attemptID, state: .succeeded, reason: "") else { return }
        guard let job = jobs[a.jobID] else { return }
        emit(
            .persist(
                .treeStored(
                    TreeProvenance(
                        pipelineID: job.pipelineID, agentID: a.agentID, agentKey: agents[a.agentID]?.publicKey ?? "",
                        storedMS: now, streamSHA256: a.streamSHA256, streamBytes: a.streamBytes, buildID: job.buildID,
                        jobID: job.id, attemptID: a.id))))
        updateJob(job.id) {
            $0.state = .succeeded
            $0.streamBytes = a.streamBytes
        }
        event(job.buildID, .streamed, job: job.id, attempt: attemptID, agent: a.agentID, message: message)
        let pid = job.pipelineID
        let saved = TreeCost(bytes: a.streamBytes, ms: now - a.startedMS)
        count(.treeBuilt(pipelineID: pid, saved))
        for other in parked.removeValue(forKey: pid) ?? [] {
            treeStored(
                other, message: "\(jobs[other]?.pipelineName ?? ""): tree \(pid.prefix(12)) built by job \(job.id)",
                saved: saved)
        }
        advance(job.buildID)
        emit(.dispatchSoon)
    }

    /// Queued jobs a dispatch pass found stored already (`Selection.stored`).
    mutating func treesFound(_ jobIDs: [String]) {
        for jobID in jobIDs {
            treeStored(jobID, message: "\(jobs[jobID]?.pipelineName ?? jobID): tree is stored")
        }
    }

    /// A job whose tree another job (or an earlier build) stored.
    mutating func treeStored(_ jobID: String, message: String, saved: TreeCost? = nil) {
        guard let job = jobs[jobID], !job.isDone else { return }
        updateJob(jobID) { $0.state = .cached }
        cacheHit(job, saved: saved)
        event(job.buildID, .cached, job: jobID, message: message)
        advance(job.buildID)
    }

    /// Counts a tree job that needed no agent, and records what it saved.
    mutating func cacheHit(_ j: FarmJob, saved: TreeCost?) {
        guard let b = builds[j.buildID] else { return }
        emit(.cacheHit(jobID: j.id, pipelineID: j.pipelineID, arch: b.arch, saved: saved))
    }

    /// Removes a live attempt: frees its agent's slot, stops its stream.
    @discardableResult
    mutating func endAttempt(_ attemptID: UInt64, state: JobState, reason: String, infrastructure: Bool = false) -> FarmAttempt? {
        guard let a = attempts.removeValue(forKey: attemptID) else { return nil }
        emit(.stopDownload(attempt: attemptID))
        agents[a.agentID]?.attempts.remove(attemptID)
        let t = now
        if settings.telemetry, let arch = jobs[a.jobID].flatMap({ builds[$0.buildID] })?.arch {
            let outcome = state == .failed && infrastructure ? "infrastructure" : Self.outcome(state)
            // Attempts recovered after a restart have no start time here: counted, not timed.
            count(.attemptFinished(arch: arch, emulated: a.emulated, outcome: outcome, ms: a.startedMS > 0 ? t - a.startedMS : nil))
        }
        emit(
            .persist(
                .attemptEnd(
                    attempt: attemptID, state: state, finishedMS: t, reason: reason, infrastructure: infrastructure,
                    streamBytes: a.streamBytes)))
        emit(.dispatchSoon)
        return a
    }

    /// Stops an attempt the scheduler no longer wants (build cancelled or failed).
    mutating func stopAttempt(_ attemptID: UInt64, reason: String) {
        guard let a = endAttempt(attemptID, state: .cancelled, reason: reason) else { return }
        if let agent = agents[a.agentID] {
            emit(.send(to: agent.identity, .cancel(attemptID: attemptID, reason: reason)))
        }
    }

    /// An attempt failed: infrastructure failures are retried on another
    /// agent up to `maxAttempts`; build failures are not retried.
    mutating func attemptFailed(_ attemptID: UInt64, _ failure: AttemptFailure) {
        guard
            let a = endAttempt(
                attemptID, state: .failed, reason: failure.reason,
                infrastructure: failure.infrastructure),
            let job = jobs[a.jobID]
        else { return }
        let line = "attempt \(attemptID) on agent \(a.agentID): \(failure.reason)"
        updateJob(job.id) { $0.history.append(line) }
        if failure.infrastructure && job.attempts < settings.maxAttempts {
            updateJob(job.id) {
                $0.state = .queued
                $0.agentID = ""
            }
            event(
                job.buildID, .requeued, job: job.id, attempt: attemptID, agent: a.agentID,
                message: "\(job.pipelineName): \(line); requeued (attempt \(job.attempts + 1) of at most \(settings.maxAttempts))")
            queues[builds[job.buildID]?.arch ?? "", default: []].insert(job.id, at: 0)
            emit(.dispatchSoon)
            return
        }
        let history = jobs[job.id]?.history ?? [line]
        let text =
            failure.infrastructure
            ? "\(job.pipelineName) failed on all \(history.count) attempts:\n  " + history.joined(separator: "\n  ")
            : "\(job.pipelineName): \(failure.reason)"
                + (failure.logTail.isEmpty ? "" : "\n" + failure.logTail.joined(separator: "\n"))
        updateJob(job.id) {
            $0.state = .failed
            $0.failure = text
        }
        event(
            job.buildID, .failed, job: job.id, attempt: attemptID, agent: a.agentID, message: text,
            logLines: failure.logTail)
        // Jobs waiting behind the failed identical job go back to the queue.
        for other in parked.removeValue(forKey: job.pipelineID) ?? [] { enqueue(other) }
        advance(job.buildID)
    }

    // MARK: - Time

    /// Time passed (every few hundred ms): silent agents go offline,
    /// attempts whose lease ran out or that passed the attempt deadline are
    /// failed and requeued.
    mutating func tick() {
        let t = now
        for (id, a) in agents where a.online && t - a.lastSeenMS > Int64(settings.agentTimeoutMS) {
            agentLost(id, reason: "agent \(id) silent for \((t - a.lastSeenMS) / 1000) s")
        }
        for a in attempts.values where a.leaseUntilMS < t {
            expire(
                a,
                reason: "lease expired: no progress from agent \(a.agentID) on it for "
                    + "\(Self.decimal(Double(settings.leaseMS) / 1000)) s")
        }
        for (id, a) in attempts where a.startedMS > 0 && t - a.startedMS > settings.attemptDeadlineMS && attempts[id] != nil {
            expire(
                a,
                reason: "attempt deadline: still not done \(Self.decimal(Double(settings.attemptDeadlineMS) / 1000)) s "
                    + "after it was assigned to agent \(a.agentID)")
        }
    }

    /// An attempt ran out of time: its agent is told to stop, and the job is
    /// requeued (on another agent first) or fails after `maxAttempts`.
    mutating func expire(_ a: FarmAttempt, reason: String) {
        if let agent = agents[a.agentID], agent.online {
            emit(.send(to: agent.identity, .cancel(attemptID: a.id, reason: reason)))
        }
        attemptFailed(a.id, AttemptFailure(reason: reason, infrastructure: true))
    }

    /// An agent went away: its attempts are infrastructure failures. An agent
    /// that said Disconnect while idle (stopped by its operator, or `kiln
    /// build` finishing) is routine, not a warning.
    mutating func agentLost(_ agentID: String, reason: String, saidGoodbye: Bool = false) {
        guard agents[agentID]?.online == true else { return }
        agents[agentID]?.online = false
        if let identity = agents[agentID]?.identity { agentSessions[identity] = nil }
        let idle = agents[agentID]?.attempts.isEmpty ?? true
        emit(.log(saidGoodbye && idle ? .info : .warning, "agent offline: \(reason)", ["agent.id": "\(agentID)"]))
        for id in agents[agentID]?.attempts ?? [] {
            attemptFailed(id, AttemptFailure(reason: reason, infrastructure: true))
        }
    }

    // MARK: - Clients

    /// A client cancelled a live build: its attempts are called off.
    mutating func cancel(_ buildID: String) {
        finish(buildID, .cancelled, failure: "cancelled by a client")
    }
}
