import Foundation
import Protocol

extension FarmScheduler {
    /// `FarmSnapshot` as JSON: live state from memory, throughput from the
    /// last hour of history.
    package func snapshotJSON() async throws -> [UInt8] {
        try TelemetryJSON.encode(try await snapshot())
    }

    package func snapshot() async throws -> FarmSnapshot {
        let t = now
        let hourAgo = t - 3_600_000
        let (finishedBuilds, finishedJobs, failures) = try await records.recentHistory(sinceMS: hourAgo)
        // Builds that finished since the rows were read are in memory no more
        // but may not be in those rows yet: the history lags by a few ms.
        return FarmSnapshot(
            generatedUnixMs: t,
            scheduler: .init(
                version: Self.version, epoch: epoch, startedUnixMs: startedMS, assembliesRunning: core.assembliesRunning,
                assembliesQueued: core.assemblyQueue.count, droppedMessages: droppedMessages),
            agents: snapshotAgents(t),
            queues: snapshotQueues(t),
            running: snapshotRunning(t),
            windows: [1, 15, 60].map { Self.window(minutes: $0, now: t, builds: finishedBuilds, jobs: finishedJobs) },
            series: Self.series(now: t, builds: finishedBuilds, jobs: finishedJobs),
            failures: failures)
    }

    struct FinishedBuild: Sendable {
        var imageType: String
        var state: Int
        var createdMS: Int64
        var finishedMS: Int64
        var succeeded: Bool { state == BuildState.succeeded.stored }
        var failed: Bool { state == BuildState.failed.stored }
    }

    struct FinishedJob: Sendable {
        var onAgent: Bool
        var state: Int
        var finishedMS: Int64
        var streamBytes: UInt64
        var counted: Bool { state != JobState.cancelled.stored }
        var hit: Bool { onAgent && state == JobState.cached.stored }
        var miss: Bool { onAgent && state == JobState.succeeded.stored }
    }

    func snapshotAgents(_ t: Int64) -> [FarmSnapshot.Agent] {
        core.agents.values.sorted { $0.id < $1.id }.map { a in
            let running = a.attempts.sorted().compactMap { id -> FarmSnapshot.AgentJob? in
                guard let at = core.attempts[id], let j = core.jobs[at.jobID] else { return nil }
                return .init(
                    buildId: j.buildID, jobId: j.id, pipeline: j.pipelineName, state: Self.name(j.state),
                    stageIndex: Int(j.stageIndex), stageCount: Int(j.stageCount), stageType: j.stageType, emulated: at.emulated)
            }
            return .init(
                id: a.id, arches: a.arches, emulatedArches: a.emulated, state: a.online ? (a.drained ? "drained" : "online") : "offline",
                slots: a.slots, slotsInUse: a.attempts.count, heartbeatAgeS: Double(max(0, t - a.lastSeenMS)) / 1000,
                freeDiskBytes: a.freeDisk, version: a.version, jobs: running)
        }
    }

    func snapshotQueues(_ t: Int64) -> [FarmSnapshot.Queue] {
        let arches = Set(core.queues.keys).union(core.agents.values.flatMap { $0.arches + $0.emulated }).union(core.builds.values.map(\.arch))
        return arches.sorted().map { arch in
            let waiting = (core.queues[arch] ?? []).compactMap { core.jobs[$0] }.filter { $0.state == .queued }
            let oldest = waiting.map(\.queuedMS).filter { $0 > 0 }.min()
            let serving = core.agents.values.filter { $0.online && $0.runs(arch) }
            return .init(
                arch: arch, depth: waiting.count, oldestAgeS: oldest.map { Double(max(0, t - $0)) / 1000 } ?? 0,
                agentsOnline: serving.count, slotsTotal: serving.reduce(0) { $0 + $1.slots },
                slotsBusy: serving.reduce(0) { $0 + $1.attempts.count })
        }
    }

    func snapshotRunning(_ t: Int64) -> [FarmSnapshot.RunningBuild] {
        core.builds.values.sorted { $0.createdMS < $1.createdMS }.map { b in
            let js = b.jobIDs.compactMap { core.jobs[$0] }
            let done = js.filter(\.isDone).count
            var progress = Double(done)
            var doing: [String] = []
            for j in js where !j.isDone && j.state != .waiting && j.state != .queued {
                if j.stageCount > 0 { progress += Double(j.stageIndex) / Double(j.stageCount) }
                let stage = j.stageCount > 0 ? " stage \(j.stageIndex + 1)/\(j.stageCount) \(j.stageType)" : ""
                let where_ = j.onAgent ? (j.agentID.isEmpty ? "" : " on \(j.agentID)") : " on the scheduler"
                let what = j.state == .streaming ? "\(j.pipelineName) streaming" : j.onAgent ? j.pipelineName : "assembly"
                doing.append(what + (j.state == .streaming ? "" : stage) + where_)
            }
            if doing.isEmpty { doing = [js.contains { $0.state == .queued } ? "waiting for an agent" : "waiting"] }
            return .init(
                buildId: b.id, label: b.label, arch: b.arch, distro: b.distro, imageType: b.imageType,
                state: Self.name(b.state), ageS: Double(max(0, t - b.createdMS)) / 1000, jobsTotal: js.count,
                jobsDone: done, progress: js.isEmpty ? 0 : min(1, progress / Double(js.count)),
                current: doing.joined(separator: "; "))
        }
    }

    static func window(minutes: Int, now t: Int64, builds: [FinishedBuild], jobs: [FinishedJob]) -> FarmSnapshot.Window {
        let cutoff = t - Int64(minutes) * 60_000
        let bs = builds.filter { $0.finishedMS >= cutoff }
        let js = jobs.filter { $0.finishedMS >= cutoff && $0.counted }
        let hits = js.filter(\.hit).count, misses = js.filter(\.miss).count
        let streamed = js.reduce(UInt64(0)) { $0 + $1.streamBytes }
        var byType: [String: [Double]] = [:]
        for b in bs where b.succeeded {
            byType[b.imageType.isEmpty ? "none" : b.imageType, default: []].append(Double(b.finishedMS - b.createdMS) / 1000)
        }
        let seconds = Double(minutes * 60)
        return .init(
            minutes: minutes, buildsFinished: bs.count, buildsSucceeded: bs.filter(\.succeeded).count,
            buildsFailed: bs.filter(\.failed).count, buildsPerHour: Double(bs.count) * 60 / Double(minutes),
            jobsFinished: js.count, jobsPerMinute: Double(js.count) / Double(minutes), streamedBytes: streamed,
            streamedMbPerS: Double(streamed) / 1e6 / seconds, treeCacheHits: hits, treeCacheMisses: misses,
            cacheHitRate: hits + misses == 0 ? nil : Double(hits) / Double(hits + misses),
            imageTypes: byType.keys.sorted().map { k in
                .init(
                    imageType: k, builds: byType[k]!.count, medianS: TelemetryJSON.percentile(byType[k]!, 0.5) ?? 0,
                    p95S: TelemetryJSON.percentile(byType[k]!, 0.95) ?? 0)
            })
    }

    static func series(now t: Int64, builds: [FinishedBuild], jobs: [FinishedJob]) -> [FarmSnapshot.Minute] {
        // Whole minutes: the last entry is the minute in progress.
        let current = t / 60_000 * 60_000
        var minutes = (0..<60).map { i in
            FarmSnapshot.Minute(
                startUnixMs: current - Int64(59 - i) * 60_000, buildsSucceeded: 0, buildsFailed: 0,
                jobsFinished: 0, streamedBytes: 0, treeCacheHits: 0, treeCacheMisses: 0)
        }
        func slot(_ ms: Int64) -> Int? {
            let i = 59 - Int((current - ms / 60_000 * 60_000) / 60_000)
            return (0..<60).contains(i) ? i : nil
        }
        for b in builds {
            guard let i = slot(b.finishedMS) else { continue }
            if b.succeeded { minutes[i].buildsSucceeded += 1 }
            if b.failed { minutes[i].buildsFailed += 1 }
        }
        for j in jobs where j.counted {
            guard let i = slot(j.finishedMS) else { continue }
            minutes[i].jobsFinished += 1
            minutes[i].streamedBytes += j.streamBytes
            if j.hit { minutes[i].treeCacheHits += 1 }
            if j.miss { minutes[i].treeCacheMisses += 1 }
        }
        return minutes
    }

    /// The state's name in the dashboard's JSON (`queued`, `running`, …).
    static func name(_ s: JobState) -> String { "\(s)" }

    static func name(_ s: BuildState) -> String { "\(s)" }

    // MARK: - Report

    package func reportJSON(sinceMS: Int64) async throws -> [UInt8] {
        try TelemetryJSON.encode(try await report(sinceMS: sinceMS))
    }

    /// Figures from history alone (nothing in memory), so they are the same
    /// before and after a restart.
    package func report(sinceMS: Int64) async throws -> FarmReport {
        try await records.report(sinceMS: sinceMS, untilMS: now)
    }
}
