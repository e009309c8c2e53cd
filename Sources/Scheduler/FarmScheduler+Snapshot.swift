import Foundation
import GRDB
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
        let (finishedBuilds, finishedJobs, failures) = try await db.read { db in
            (try Row.fetchAll(db, sql: """
                SELECT image_type, state, created_ms, finished_ms FROM builds WHERE finished_ms >= ?
                """, arguments: [hourAgo]).map { FinishedBuild(imageType: $0["image_type"], state: $0["state"],
                                                                 createdMS: $0["created_ms"], finishedMS: $0["finished_ms"]) },
             try Row.fetchAll(db, sql: """
                SELECT on_agent, state, finished_ms, stream_bytes FROM jobs WHERE finished_ms >= ?
                """, arguments: [hourAgo]).map { FinishedJob(onAgent: $0["on_agent"], state: $0["state"], finishedMS: $0["finished_ms"],
                                                             streamBytes: UInt64(max(0, $0["stream_bytes"] as Int64))) },
             try Row.fetchAll(db, sql: """
                SELECT id, label, arch, image_type, finished_ms, failure FROM builds WHERE state = ? ORDER BY finished_ms DESC LIMIT 10
                """, arguments: [BuildState.failed.stored]).map {
                    FarmSnapshot.Failure(buildId: $0["id"], label: $0["label"], arch: $0["arch"], imageType: $0["image_type"],
                                         finishedUnixMs: $0["finished_ms"], failure: String(($0["failure"] as String).prefix(2000)))
                })
        }
        // Builds that finished since the rows were read are in memory no more
        // but may not be in those rows yet: the history lags by a few ms.
        return FarmSnapshot(
            generatedUnixMs: t,
            scheduler: .init(version: Self.version, epoch: epoch, startedUnixMs: startedMS, assembliesRunning: assembliesRunning,
                             assembliesQueued: assemblyQueue.count, droppedMessages: droppedMessages),
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
        agents.values.sorted { $0.id < $1.id }.map { a in
            let running = a.attempts.sorted().compactMap { id -> FarmSnapshot.AgentJob? in
                guard let at = attempts[id], let j = jobs[at.jobID] else { return nil }
                return .init(buildId: j.buildID, jobId: j.id, pipeline: j.pipelineName, state: Self.name(j.state),
                             stageIndex: Int(j.stageIndex), stageCount: Int(j.stageCount), stageType: j.stageType, emulated: at.emulated)
            }
            return .init(id: a.id, arches: a.arches, emulatedArches: a.emulated, state: a.online ? (a.drained ? "drained" : "online") : "offline",
                         slots: a.slots, slotsInUse: a.attempts.count, heartbeatAgeS: Double(max(0, t - a.lastSeenMS)) / 1000,
                         freeDiskBytes: a.freeDisk, version: a.version, jobs: running)
        }
    }

    func snapshotQueues(_ t: Int64) -> [FarmSnapshot.Queue] {
        let arches = Set(queues.keys).union(agents.values.flatMap { $0.arches + $0.emulated }).union(builds.values.map(\.arch))
        return arches.sorted().map { arch in
            let waiting = (queues[arch] ?? []).compactMap { jobs[$0] }.filter { $0.state == .queued }
            let oldest = waiting.map(\.queuedMS).filter { $0 > 0 }.min()
            let serving = agents.values.filter { $0.online && $0.runs(arch) }
            return .init(arch: arch, depth: waiting.count, oldestAgeS: oldest.map { Double(max(0, t - $0)) / 1000 } ?? 0,
                         agentsOnline: serving.count, slotsTotal: serving.reduce(0) { $0 + $1.slots },
                         slotsBusy: serving.reduce(0) { $0 + $1.attempts.count })
        }
    }

    func snapshotRunning(_ t: Int64) -> [FarmSnapshot.RunningBuild] {
        builds.values.sorted { $0.createdMS < $1.createdMS }.map { b in
            let js = b.jobIDs.compactMap { jobs[$0] }
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
            return .init(buildId: b.id, label: b.label, arch: b.arch, distro: b.distro, imageType: b.imageType,
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
        for b in bs where b.succeeded { byType[b.imageType.isEmpty ? "none" : b.imageType, default: []].append(Double(b.finishedMS - b.createdMS) / 1000) }
        let seconds = Double(minutes * 60)
        return .init(minutes: minutes, buildsFinished: bs.count, buildsSucceeded: bs.filter(\.succeeded).count,
                     buildsFailed: bs.filter(\.failed).count, buildsPerHour: Double(bs.count) * 60 / Double(minutes),
                     jobsFinished: js.count, jobsPerMinute: Double(js.count) / Double(minutes), streamedBytes: streamed,
                     streamedMbPerS: Double(streamed) / 1e6 / seconds, treeCacheHits: hits, treeCacheMisses: misses,
                     cacheHitRate: hits + misses == 0 ? nil : Double(hits) / Double(hits + misses),
                     imageTypes: byType.keys.sorted().map { k in
                         .init(imageType: k, builds: byType[k]!.count, medianS: TelemetryJSON.percentile(byType[k]!, 0.5) ?? 0,
                               p95S: TelemetryJSON.percentile(byType[k]!, 0.95) ?? 0)
                     })
    }

    static func series(now t: Int64, builds: [FinishedBuild], jobs: [FinishedJob]) -> [FarmSnapshot.Minute] {
        // Whole minutes: the last entry is the minute in progress.
        let current = t / 60_000 * 60_000
        var minutes = (0..<60).map { i in
            FarmSnapshot.Minute(startUnixMs: current - Int64(59 - i) * 60_000, buildsSucceeded: 0, buildsFailed: 0,
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

    static func name(_ s: JobState) -> String {
        switch s {
        case .waiting: "waiting"
        case .queued: "queued"
        case .assigned: "assigned"
        case .running: "running"
        case .streaming: "streaming"
        case .succeeded: "succeeded"
        case .failed: "failed"
        case .cancelled: "cancelled"
        case .cached: "cached"
        default: "unknown"
        }
    }

    static func name(_ s: BuildState) -> String {
        switch s {
        case .queued: "queued"
        case .running: "running"
        case .succeeded: "succeeded"
        case .failed: "failed"
        case .cancelled: "cancelled"
        default: "unknown"
        }
    }

    // MARK: - Report

    package func reportJSON(sinceMS: Int64) async throws -> [UInt8] {
        try TelemetryJSON.encode(try await report(sinceMS: sinceMS))
    }

    /// Figures from history alone (nothing in memory), so they are the same
    /// before and after a restart.
    package func report(sinceMS: Int64) async throws -> FarmReport {
        let until = now
        return try await db.read { db in
            var groups: [String: (arch: String, type: String, states: [Int], secs: [Double])] = [:]
            for r in try Row.fetchAll(db, sql: """
                SELECT arch, image_type, state, created_ms, finished_ms FROM builds WHERE finished_ms >= ? AND finished_ms > 0
                """, arguments: [sinceMS]) {
                let (arch, type): (String, String) = (r["arch"], r["image_type"])
                let key = "\(arch)\u{0}\(type)"
                var g = groups[key] ?? (arch, type.isEmpty ? "none" : type, [], [])
                let state: Int = r["state"]
                g.states.append(state)
                if state == BuildState.succeeded.stored {
                    g.secs.append(Double((r["finished_ms"] as Int64) - (r["created_ms"] as Int64)) / 1000)
                }
                groups[key] = g
            }
            func group(_ arch: String, _ type: String, _ states: [Int], _ secs: [Double]) -> FarmReport.Group {
                let ok = states.filter { $0 == BuildState.succeeded.stored }.count
                let failed = states.filter { $0 == BuildState.failed.stored }.count
                return .init(arch: arch, imageType: type, builds: states.count, succeeded: ok, failed: failed,
                             cancelled: states.filter { $0 == BuildState.cancelled.stored }.count,
                             successRate: ok + failed == 0 ? nil : Double(ok) / Double(ok + failed),
                             medianS: TelemetryJSON.percentile(secs, 0.5), p95S: TelemetryJSON.percentile(secs, 0.95))
            }
            let all = groups.values
            let totals = group("all", "all", all.flatMap(\.states), all.flatMap(\.secs))
            let list = all.map { group($0.arch, $0.type, $0.states, $0.secs) }
                .sorted { ($0.builds, $1.arch, $1.imageType) > ($1.builds, $0.arch, $0.imageType) }

            let cacheRow = try Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS tree_jobs, COALESCE(SUM(state = ?), 0) AS hits, COALESCE(SUM(saved_ms), 0) AS saved_ms,
                COALESCE(SUM(saved_bytes), 0) AS saved_bytes, COALESCE(SUM(stream_bytes), 0) AS streamed
                FROM jobs WHERE on_agent = 1 AND finished_ms >= ? AND state IN (?, ?)
                """, arguments: [JobState.cached.stored, sinceMS, JobState.cached.stored,
                                 JobState.succeeded.stored])
            let treeJobs: Int = cacheRow?["tree_jobs"] ?? 0
            let hits: Int = cacheRow?["hits"] ?? 0
            let cache = FarmReport.Cache(
                treeJobs: treeJobs, treeCacheHits: hits, hitRate: treeJobs == 0 ? nil : Double(hits) / Double(treeJobs),
                savedSeconds: Double(cacheRow?["saved_ms"] as Int64? ?? 0) / 1000,
                savedBytes: UInt64(max(0, cacheRow?["saved_bytes"] as Int64? ?? 0)),
                streamedBytes: UInt64(max(0, cacheRow?["streamed"] as Int64? ?? 0)))

            var waits: [String: [Double]] = [:]
            for r in try Row.fetchAll(db, sql: """
                SELECT b.arch AS arch, a.started_ms - a.queued_ms AS wait FROM attempts a JOIN jobs j ON j.id = a.job_id
                JOIN builds b ON b.id = j.build_id WHERE a.started_ms >= ? AND a.queued_ms > 0
                """, arguments: [sinceMS]) {
                waits[r["arch"], default: []].append(Double(max(0, r["wait"] as Int64)) / 1000)
            }
            let queueWait = waits.keys.sorted().map { k in
                FarmReport.QueueWait(arch: k, attempts: waits[k]!.count, medianS: TelemetryJSON.percentile(waits[k]!, 0.5)!,
                                     p95S: TelemetryJSON.percentile(waits[k]!, 0.95)!)
            }

            var stages: [String: (stage: String, mode: String, secs: [Double])] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT stage_type, mode, duration_ms FROM stage_runs WHERE finished_ms >= ?",
                                      arguments: [sinceMS]) {
                let (type, mode): (String, String) = (r["stage_type"], r["mode"])
                stages["\(type)\u{0}\(mode)", default: (type, mode, [])].secs.append(Double(r["duration_ms"] as Int64) / 1000)
            }
            let slowest = stages.values.map { s in
                FarmReport.Stage(stage: s.stage, mode: s.mode, runs: s.secs.count, totalS: s.secs.reduce(0, +),
                                 medianS: TelemetryJSON.percentile(s.secs, 0.5)!, p95S: TelemetryJSON.percentile(s.secs, 0.95)!,
                                 maxS: s.secs.max()!)
            }.sorted { ($0.totalS, $1.stage) > ($1.totalS, $0.stage) }.prefix(10)

            return FarmReport(sinceUnixMs: sinceMS, untilUnixMs: until, totals: totals, groups: list, cache: cache,
                              queueWait: queueWait, slowestStages: Array(slowest))
        }
    }
}
