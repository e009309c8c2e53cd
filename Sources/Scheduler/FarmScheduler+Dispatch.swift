import Foundation
import Protocol
import Stages

extension FarmScheduler {
    /// Coalesces dispatch requests: one pass runs for any number of triggers.
    func scheduleDispatch() {
        guard !dispatchPending else { return }
        dispatchPending = true
        Task { await self.dispatch() }
    }

    /// One job given to one agent by a dispatch pass, not yet committed.
    struct Assignment {
        var attempt: UInt64
        var job: FarmJob
        var agent: FarmAgent
        var emulated: Bool
    }

    /// Assigns queued tree jobs to agents with a free slot for their
    /// architecture: all assignments of one pass are committed in one
    /// transaction, and only then are the `Assign`s sent.
    func dispatch() async {
        dispatchPending = false
        // Nothing new starts while the disk is low; queued jobs wait (`checkDisk`).
        guard db.readOnly == nil, lowDisk == nil else { return }
        let (assigned, stored) = selectAssignments()
        for jobID in stored {
            treeStored(jobID, message: "\(core.jobs[jobID]?.pipelineName ?? jobID): tree is stored")
        }
        guard !assigned.isEmpty else { return }
        let started = now
        do {
            try await records.insertAttempts(assigned, startedMS: started)
        } catch {
            failAssignments(assigned, error)
            return
        }
        sendAssignments(assigned)
    }

    /// Picks agents for queued jobs and records the attempts in memory; the
    /// caller commits them (`insertAttempts`) before `sendAssignments`.
    /// Returns the assignments and the queued jobs whose tree is already stored.
    func selectAssignments() -> (assigned: [Assignment], stored: [String]) {
        var assigned: [Assignment] = []
        var stored: [String] = []
        // Built once per pass (not once per job): what is in flight, and who has room.
        var building = Set(core.attempts.values.map(\.pipelineID))
        var free = core.agents.values.filter { $0.freeSlots > 0 }.map { Candidate(agent: $0) }
        for arch in core.queues.keys.sorted() {
            let queue = core.queues[arch] ?? []
            var taken = 0
            while taken < queue.count {
                let jobID = queue[taken]
                guard let job = core.jobs[jobID], job.state == .queued else {
                    taken += 1
                    continue
                }
                if store.contains(job.pipelineID) {
                    taken += 1
                    stored.append(jobID)
                    continue
                }
                if building.contains(job.pipelineID) {
                    taken += 1
                    core.parked[job.pipelineID, default: []].append(jobID)
                    continue
                }
                guard let agentID = Self.pick(&free, arch: arch, avoiding: job.triedAgents) else {
                    tellIfNoAgent(arch: arch, queue[taken...])
                    break
                }
                taken += 1
                building.insert(job.pipelineID)
                let attemptID = core.nextAttemptID
                core.nextAttemptID += 1
                core.agents[agentID]?.attempts.insert(attemptID)
                let t = now
                core.attempts[attemptID] = FarmAttempt(
                    id: attemptID, jobID: jobID, pipelineID: job.pipelineID, agentID: agentID,
                    leaseUntilMS: t + Int64(config.leaseMS), startedMS: t,
                    emulated: core.agents[agentID]?.arches.contains(arch) == false)
                updateJob(jobID) {
                    $0.state = .assigned
                    $0.attempts += 1
                    $0.attemptID = attemptID
                    $0.agentID = agentID
                    $0.triedAgents.insert(agentID)
                }
                assigned.append(
                    Assignment(
                        attempt: attemptID, job: core.jobs[jobID]!, agent: core.agents[agentID]!,
                        emulated: core.attempts[attemptID]!.emulated))
            }
            // Nothing above touches the queues, so the taken prefix is exactly what was handled.
            core.queues[arch]?.removeFirst(taken)
        }
        return (assigned, stored)
    }

    func failAssignments(_ assigned: [Assignment], _ error: Error) {
        logger.error("could not record assignments: \(error)")
        for a in assigned { attemptFailed(a.attempt, AttemptFailure(reason: "scheduler database: \(error)", infrastructure: true)) }
    }

    /// Sends the `Assign`s of committed assignments and starts their downloads.
    func sendAssignments(_ assigned: [Assignment]) {
        for a in assigned where core.attempts[a.attempt] != nil {
            guard let b = core.builds[a.job.buildID] else { continue }
            var m = Kiln_V1_Assign()
            m.attemptID = a.attempt
            m.jobID = a.job.id
            m.buildID = b.id
            m.pipelineName = a.job.pipelineName
            m.manifestJson = Data(b.manifestJSON)
            m.export = a.job.pipelineName
            m.arch = b.arch
            m.pipelineID = a.job.pipelineID
            m.maxChunkBytes = config.maxChunkBytes
            m.stageTimeoutMs = UInt64(b.stageTimeoutMS > 0 ? b.stageTimeoutMS : config.stageTimeoutMS)
            outbox?.agent(a.agent.identity, WireMessage(.assign(m)))
            let emulated = !a.agent.arches.contains(b.arch) ? " (emulated)" : ""
            event(
                b.id, .assigned, job: a.job.id, attempt: a.attempt, agent: a.agent.id,
                message: "\(a.job.pipelineName): attempt \(a.attempt) on agent \(a.agent.id)\(emulated)")
            startDownload(a.attempt, restart: false)
        }
    }

    /// Says once per job when no online agent can run its architecture at
    /// all (rather than all being busy), so `kiln logs` explains the wait.
    func tellIfNoAgent(arch: String, _ waiting: ArraySlice<String>) {
        guard !core.agents.values.contains(where: { $0.online && $0.runs(arch) }) else { return }
        for jobID in waiting {
            guard let job = core.jobs[jobID], job.state == .queued, !job.toldNoAgent else { continue }
            core.jobs[jobID]?.toldNoAgent = true
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

    /// Starts receiving the attempt's tree (not for agents that share the store).
    func startDownload(_ attemptID: UInt64, restart: Bool) {
        guard let a = core.attempts[attemptID], let job = core.jobs[a.jobID], let agent = core.agents[a.agentID],
            !config.sharedStoreAgents.contains(a.agentID), let outbox
        else { return }
        core.attempts[attemptID]?.download?.cancel()
        let identity = agent.identity
        // Below --min-free-gib a stream waits for credit instead of failing.
        var limits = config.streamLimits
        limits.holdCreditBelowFree = config.minFreeBytes
        let download: TreeDownload
        do {
            download = try TreeDownload(
                attemptID: attemptID, pipelineID: job.pipelineID, store: store,
                window: config.streamWindow, limits: limits, post: { message in outbox.agent(identity, message) })
        } catch {
            attemptFailed(attemptID, AttemptFailure(reason: "cannot receive the tree: \(error)", infrastructure: true))
            return
        }
        core.attempts[attemptID]?.download = download
        // Outcomes reach the actor in batches, like agent messages.
        let finished = finishedDownloads
        download.whenFinished { [weak download] outcome in
            guard let download else { return }
            if finished.append(FinishedDownload(attemptID: attemptID, download: download, outcome: outcome)) {
                Task { await self.drain(finished) }
            }
        }
        download.start(restart: restart)
    }

    /// A download's outcome on its way to the actor.
    struct FinishedDownload: Sendable {
        var attemptID: UInt64
        var download: TreeDownload
        var outcome: Result<DownloadStats, any Error>
    }

    /// Handles the downloads that finished until none is left.
    func drain(_ inbox: Inbox<FinishedDownload>) {
        drain(inbox) { scheduler, item in
            switch item.outcome {
            case .success(let stats): scheduler.streamFinished(item.attemptID, download: item.download, stats: stats)
            case .failure(let error): scheduler.streamFailed(item.attemptID, download: item.download, error: error)
            }
        }
    }

    func streamFinished(_ attemptID: UInt64, download: TreeDownload, stats: DownloadStats) {
        guard let a = core.attempts[attemptID], a.download === download, let job = core.jobs[a.jobID] else { return }
        core.attempts[attemptID]?.streamBytes = stats.compressedBytes
        if let b = core.builds[job.buildID] { metrics?.streamed(arch: b.arch, bytes: stats.compressedBytes) }
        let mb = Double(stats.compressedBytes) / 1e6
        let secs = max(stats.seconds, 0.001)
        let resent = stats.resends > 0 ? ", \(stats.resends) chunk(s) re-sent" : ""
        attemptSucceeded(
            attemptID,
            message: "\(job.pipelineName): streamed \(Self.decimal(mb)) MB from \(a.agentID) in "
                + "\(Self.decimal(secs)) s (\(Int(mb / secs)) MB/s)\(resent)")
    }

    /// One decimal, without `String(format:)` (it showed in the dispatch profile).
    static func decimal(_ x: Double) -> String {
        let tenths = Int((x * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }

    func streamFailed(_ attemptID: UInt64, download: TreeDownload, error: Error) {
        guard let a = core.attempts[attemptID], a.download === download else { return }
        attemptFailed(attemptID, AttemptFailure(reason: "tree stream failed: \(error)", infrastructure: true))
    }

    /// The attempt's tree is in the store.
    func attemptSucceeded(_ attemptID: UInt64, message: String) {
        guard let a = endAttempt(attemptID, state: .succeeded, reason: "") else { return }
        guard let job = core.jobs[a.jobID] else { return }
        recordProvenance(job, a)
        updateJob(job.id) {
            $0.state = .succeeded
            $0.streamBytes = a.streamBytes
        }
        event(job.buildID, .streamed, job: job.id, attempt: attemptID, agent: a.agentID, message: message)
        let pid = job.pipelineID
        let saved = (bytes: a.streamBytes, ms: now - a.startedMS)
        if metrics != nil {
            if builtTrees.count >= 10_000 { builtTrees.removeAll(keepingCapacity: true) }
            builtTrees[pid] = saved
        }
        for other in core.parked.removeValue(forKey: pid) ?? [] {
            treeStored(
                other, message: "\(core.jobs[other]?.pipelineName ?? ""): tree \(pid.prefix(12)) built by job \(job.id)",
                saved: saved)
        }
        advance(job.buildID)
        scheduleDispatch()
    }

    /// Records who stored the job's tree (`kiln store list`, `kiln store forget --agent KEY`).
    func recordProvenance(_ job: FarmJob, _ a: FarmAttempt) {
        records.recordTreeStored(
            pipelineID: job.pipelineID, agentID: a.agentID, agentKey: core.agents[a.agentID]?.publicKey ?? "",
            storedMS: now, streamSHA256: a.streamSHA256, streamBytes: a.streamBytes, buildID: job.buildID,
            jobID: job.id, attemptID: a.id)
    }

    /// A job whose tree another job (or an earlier build) stored.
    func treeStored(_ jobID: String, message: String, saved: (bytes: UInt64, ms: Int64)? = nil) {
        guard let job = core.jobs[jobID], !job.isDone else { return }
        updateJob(jobID) { $0.state = .cached }
        cacheHit(job, saved: saved)
        event(job.buildID, .cached, job: jobID, message: message)
        advance(job.buildID)
    }

    /// Removes a live attempt: frees its agent's slot, stops its stream.
    @discardableResult
    func endAttempt(_ attemptID: UInt64, state: JobState, reason: String, infrastructure: Bool = false) -> FarmAttempt? {
        guard let a = core.attempts.removeValue(forKey: attemptID) else { return nil }
        a.download?.cancel()
        core.agents[a.agentID]?.attempts.remove(attemptID)
        let t = now
        if let metrics, let arch = core.jobs[a.jobID].flatMap({ core.builds[$0.buildID] })?.arch {
            let outcome = state == .failed && infrastructure ? "infrastructure" : Self.outcome(state)
            // Attempts recovered after a restart have no start time here: counted, not timed.
            metrics.attemptFinished(arch: arch, emulated: a.emulated, outcome: outcome, ms: a.startedMS > 0 ? t - a.startedMS : nil)
        }
        records.recordAttemptEnd(
            attemptID, state: state, finishedMS: t, reason: reason, infrastructure: infrastructure,
            streamBytes: a.streamBytes)
        scheduleDispatch()
        return a
    }

    /// Stops an attempt the scheduler no longer wants (build cancelled or failed).
    func stopAttempt(_ attemptID: UInt64, reason: String) {
        guard let a = endAttempt(attemptID, state: .cancelled, reason: reason) else { return }
        if let agent = core.agents[a.agentID] {
            outbox?.agent(agent.identity, .cancel(attemptID: attemptID, reason: reason))
        }
    }

    /// An attempt failed: infrastructure failures are retried on another
    /// agent up to `maxAttempts`; build failures are not retried.
    func attemptFailed(_ attemptID: UInt64, _ failure: AttemptFailure) {
        guard
            let a = endAttempt(
                attemptID, state: .failed, reason: failure.reason,
                infrastructure: failure.infrastructure),
            let job = core.jobs[a.jobID]
        else { return }
        let line = "attempt \(attemptID) on agent \(a.agentID): \(failure.reason)"
        updateJob(job.id) { $0.history.append(line) }
        if failure.infrastructure && job.attempts < config.maxAttempts {
            updateJob(job.id) {
                $0.state = .queued
                $0.agentID = ""
            }
            event(
                job.buildID, .requeued, job: job.id, attempt: attemptID, agent: a.agentID,
                message: "\(job.pipelineName): \(line); requeued (attempt \(job.attempts + 1) of at most \(config.maxAttempts))")
            core.queues[core.builds[job.buildID]?.arch ?? "", default: []].insert(job.id, at: 0)
            scheduleDispatch()
            return
        }
        let history = core.jobs[job.id]?.history ?? [line]
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
        failParked(job.pipelineID, text)
        advance(job.buildID)
    }

    /// Jobs waiting behind a failed identical job go back to the queue.
    func failParked(_ pipelineID: String, _ text: String) {
        for other in core.parked.removeValue(forKey: pipelineID) ?? [] { enqueue(other) }
    }
}
