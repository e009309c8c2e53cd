import Foundation
import Logging
import Protocol

/// The glue between the core and the world: what the core is told with
/// each event (`outside`), and what the actor does with the actions it
/// returns, in their order (docs/architecture.md §7).
extension FarmScheduler {
    /// The time, the tree store, and whether new work may start, now.
    var outside: SchedulerCore.Outside {
        let store = self.store
        return .init(now: now, hasTree: { store.contains($0) }, startsWork: db.readOnly == nil && lowDisk == nil)
    }

    /// Runs `change` on the core and performs what it decided.
    func act(_ change: (inout SchedulerCore) -> Void) {
        perform(core.run(outside, change))
    }

    /// Performs the core's actions in order. Store changes are queued in
    /// that order (`SchedulerStore.record…`); nothing here waits.
    func perform(_ actions: [SchedulerAction]) {
        for action in actions {
            switch action {
            case .send(let identity, let message):
                outbox?.agent(identity, message)
            case .persist(let change):
                persist(change)
            case .event(let e):
                record(e)
            case .metric(let change):
                count(change)
            case .cacheHit(let jobID, let pipelineID, let arch, let saved):
                cacheHit(jobID: jobID, pipelineID: pipelineID, arch: arch, saved: saved)
            case .startDownload(let attempt, let restart):
                startDownload(attempt, restart: restart)
            case .deliver(let attempt, let message):
                downloads[attempt]?.deliver(message)
            case .stopDownload(let attempt):
                downloads.removeValue(forKey: attempt)?.cancel()
            case .startAssembly(let jobID, let build):
                runAssembly(jobID, build)
            case .releaseTrees(let buildID):
                treeLeases.removeValue(forKey: buildID)?.release()
            case .dispatchSoon:
                scheduleDispatch()
            case .dropped(let warning):
                droppedMessages += 1
                metrics?.dropped()
                if let warning {
                    logger.warning("\(warning.message)", metadata: ["agent.id": "\(warning.agentID)"])
                }
            case .diskWarning(let agentID, let message):
                // At most one line per agent every 10 s, however often it flips.
                if diskWarningsStorage == nil { diskWarningsStorage = RateLimitedWarnings(logger: logger) }
                diskWarningsStorage?.warn(peer: agentID, on: "agent", message)
            case .log(let level, let message, let metadata):
                logger.log(level: level, "\(message)", metadata: metadata)
            }
        }
    }

    func persist(_ change: StoreChange) {
        switch change {
        case .job(let j):
            records.recordJob(j)
        case .buildState(let buildID, let state):
            records.recordBuildState(buildID, state)
        case .buildFinished(let buildID, let state, let finishedMS, let failure):
            records.recordBuildFinished(buildID, state, finishedMS: finishedMS, failure: failure)
        case .attemptEnd(let attempt, let state, let finishedMS, let reason, let infrastructure, let streamBytes):
            records.recordAttemptEnd(
                attempt, state: state, finishedMS: finishedMS, reason: reason, infrastructure: infrastructure,
                streamBytes: streamBytes)
        case .treeStored(let p):
            records.recordTreeStored(
                pipelineID: p.pipelineID, agentID: p.agentID, agentKey: p.agentKey, storedMS: p.storedMS,
                streamSHA256: p.streamSHA256, streamBytes: p.streamBytes, buildID: p.buildID, jobID: p.jobID,
                attemptID: p.attemptID)
        case .agent(let a):
            records.recordAgent(
                id: a.id, publicKey: a.publicKey, arches: a.arches, emulated: a.emulated, slots: a.slots,
                freeDisk: a.freeDisk, version: a.version, lastSeenMS: a.lastSeenMS)
        }
    }

    /// Records a build event (durably, in order, without waiting) and logs it.
    func record(_ e: BuildEvent) {
        records.recordEvent(
            buildID: e.buildID, sequence: e.sequence, unixMS: e.unixMS, kind: e.kind, jobID: e.job, attemptID: e.attempt,
            agentID: e.agent, message: e.message, logLines: e.logLines.joined(separator: "\n"))
        // A build's course at info; each job's steps (thousands an hour on a busy farm) at debug.
        switch e.kind {
        case .log: break
        case .assigned, .stageStarted, .stageFinished, .streamed, .cached:
            logger.debug("\(e.message)", metadata: ["build.id": "\(e.buildID)", "job.id": "\(e.job)", "agent.id": "\(e.agent)"])
        default:
            logger.info("\(e.message)", metadata: ["build.id": "\(e.buildID)", "job.id": "\(e.job)", "agent.id": "\(e.agent)"])
        }
    }

    func count(_ change: MetricChange) {
        guard let metrics else { return }
        switch change {
        case .queueWait(let arch, let ms):
            metrics.queueWait(arch: arch, ms: ms)
        case .jobFinished(let arch, let imageType, let kind, let outcome):
            metrics.jobFinished(arch: arch, imageType: imageType, kind: kind, outcome: outcome)
        case .treeCacheMiss(let arch):
            metrics.treeCache(hit: false, arch: arch)
        case .assemblyFinished(let imageType, let outcome, let ms):
            metrics.assemblyFinished(imageType: imageType, outcome: outcome, ms: ms)
        case .buildFinished(let arch, let imageType, let outcome, let ms):
            metrics.buildFinished(arch: arch, imageType: imageType, outcome: outcome, ms: ms)
        case .attemptFinished(let arch, let emulated, let outcome, let ms):
            metrics.attemptFinished(arch: arch, emulated: emulated, outcome: outcome, ms: ms)
        case .streamed(let arch, let bytes):
            metrics.streamed(arch: arch, bytes: bytes)
        case .treeBuilt(let pipelineID, let cost):
            if builtTrees.count >= 10_000 { builtTrees.removeAll(keepingCapacity: true) }
            builtTrees[pipelineID] = cost
        case .stageRun(let r):
            // Unknown stage types are counted as "other" (a fixed label set).
            let stage = metrics.stage(r.type)
            metrics.stageFinished(type: stage, arch: r.arch, mode: r.mode, ms: r.ms)
            records.recordStageRun(
                buildID: r.buildID, jobID: r.jobID, attemptID: r.attemptID, index: r.index, type: stage, arch: r.arch,
                mode: r.mode, finishedMS: r.finishedMS, ms: r.ms)
        }
    }
}
