import Foundation
import GRDB
import Manifest
import Protocol
import Stages

// Read-only queries of the scheduler's store (status, logs, fetch, the
// dashboard's history, `kiln report`), and what a restart loads. Wire
// messages are made here only from rows; the actor lays memory over them.
extension SchedulerStore {
    /// `kiln status`: the builds `buildID` names (empty: the `limit` most
    /// recent), only `owner`'s when given (nil: every build, for an admin).
    func status(buildID: String, owner: String?, limit: Int) async throws -> Kiln_V1_StatusReply {
        try await database.read { db -> Kiln_V1_StatusReply in
            let builds: [Row] =
                switch (buildID.isEmpty, owner) {
                case (true, nil):
                    try Row.fetchAll(db, sql: "SELECT * FROM builds ORDER BY created_ms DESC LIMIT ?", arguments: [limit])
                case (true, let owner?):
                    try Row.fetchAll(
                        db, sql: "SELECT * FROM builds WHERE client_key = ? ORDER BY created_ms DESC LIMIT ?",
                        arguments: [owner, limit])
                case (false, nil):
                    try Row.fetchAll(db, sql: "SELECT * FROM builds WHERE id = ?", arguments: [buildID])
                case (false, let owner?):
                    try Row.fetchAll(db, sql: "SELECT * FROM builds WHERE id = ? AND client_key = ?", arguments: [buildID, owner])
                }
            var reply = Kiln_V1_StatusReply()
            for b in builds {
                var s = Kiln_V1_BuildStatus()
                s.buildID = b["id"]
                s.label = b["label"]
                s.arch = b["arch"]
                s.state = BuildState(stored: b["state"])?.wire ?? .unspecified
                s.createdUnixMs = b["created_ms"]
                s.finishedUnixMs = b["finished_ms"]
                s.failure = b["failure"]
                s.artifactsExpiredUnixMs = b["artifacts_expired_ms"]
                s.artifacts = try String.fetchAll(
                    db, sql: "SELECT name FROM artifacts WHERE build_id = ? ORDER BY name",
                    arguments: [s.buildID])
                for r in try Row.fetchAll(db, sql: "SELECT * FROM jobs WHERE build_id = ? ORDER BY ordinal", arguments: [s.buildID]) {
                    var j = Kiln_V1_JobStatus()
                    j.jobID = r["id"]
                    j.pipelineName = r["pipeline_name"]
                    j.pipelineID = r["pipeline_id"]
                    j.onAgent = r["on_agent"]
                    j.state = JobState(stored: r["state"])?.wire ?? .unspecified
                    j.attemptID = UInt64(r["attempt_id"] as Int64)
                    j.attempts = UInt32(r["attempts"] as Int)
                    j.agentID = r["agent_id"]
                    j.stageIndex = UInt32(r["stage_index"] as Int)
                    j.stageCount = UInt32(r["stage_count"] as Int)
                    j.stageType = r["stage_type"]
                    j.failure = r["failure"]
                    s.jobs.append(j)
                }
                reply.builds.append(s)
            }
            return reply
        }
    }

    /// One page of a build's events.
    struct EventPage: Sendable {
        /// The build's stored state (nil: no such build).
        var state: BuildState?
        var exists: Bool
        var events: [Kiln_V1_BuildEvent]
        /// Events were left for the next page to keep the reply small.
        var cut: Bool
    }

    /// `kiln logs`: events after `after`, at most `limit` and about 4 MiB of text.
    func events(buildID: String, after: UInt64, limit: Int) async throws -> EventPage {
        try await database.read { db -> EventPage in
            let state = try Int.fetchOne(db, sql: "SELECT state FROM builds WHERE id = ?", arguments: [buildID])
            // A reply stays well under the framing limit (16 MiB): events up to 4 MiB of text.
            var bytes = 0
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM events WHERE build_id = ? AND sequence > ? ORDER BY sequence LIMIT ?
                    """, arguments: [buildID, Int64(after), limit])
            let kept = rows.prefix { r in
                let size = (r["message"] as String).utf8.count + (r["log_lines"] as String).utf8.count
                defer { bytes += size }
                return bytes == 0 || bytes + size <= 4 << 20
            }
            let events = kept.map { r in
                var e = Kiln_V1_BuildEvent()
                e.sequence = UInt64(r["sequence"] as Int64)
                e.unixMs = r["unix_ms"]
                e.kind = EventKind(stored: r["kind"])?.wire ?? .unspecified
                e.jobID = r["job_id"]
                e.attemptID = UInt64(r["attempt_id"] as Int64)
                e.agentID = r["agent_id"]
                e.message = r["message"]
                let lines: String = r["log_lines"]
                e.logLines = lines.isEmpty ? [] : lines.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                return e
            }
            return EventPage(
                state: state.flatMap { BuildState(stored: $0) }, exists: state != nil, events: events,
                cut: kept.count < rows.count)
        }
    }

    /// A build's stored state, and whether there is such a build.
    func buildState(_ buildID: String) async throws -> (exists: Bool, state: BuildState?) {
        let code = try await database.read { db in
            try Int.fetchOne(db, sql: "SELECT state FROM builds WHERE id = ?", arguments: [buildID])
        }
        return (code != nil, code.flatMap { BuildState(stored: $0) })
    }

    /// The key that submitted a build (nil: no such build).
    func buildOwner(_ buildID: String) async throws -> String? {
        try await database.read { db in
            try String.fetchOne(db, sql: "SELECT client_key FROM builds WHERE id = ?", arguments: [buildID])
        }
    }

    /// One of a build's artifacts.
    func artifact(buildID: String, name: String) async throws -> (path: String, size: Int64, sha256: Data)? {
        try await database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM artifacts WHERE build_id = ? AND name = ?", arguments: [buildID, name])
                .map { ($0["path"], $0["size"], $0["sha256"]) }
        }
    }

    /// When a build's artifacts were removed by retention (0: they were not; nil: no such build).
    func artifactsExpiredMS(_ buildID: String) async throws -> Int64? {
        try await database.read { db in
            try Int64.fetchOne(db, sql: "SELECT artifacts_expired_ms FROM builds WHERE id = ?", arguments: [buildID])
        }
    }

    /// What the last job that built tree `pipelineID` cost: stream bytes and ms.
    func lastTreeCost(pipelineID: String) async throws -> (bytes: UInt64, ms: Int64)? {
        try await database.read { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT stream_bytes, finished_ms - started_ms AS ms FROM jobs
                    WHERE pipeline_id = ? AND on_agent = 1 AND state = ? AND started_ms > 0
                    ORDER BY finished_ms DESC LIMIT 1
                    """, arguments: [pipelineID, JobState.succeeded.stored]
            )
            .map { (UInt64(max(0, $0["stream_bytes"] as Int64)), $0["ms"] as Int64) }
        }
    }

    // MARK: - The dashboard's history and `kiln report`

    /// Builds and jobs that finished since `sinceMS`, and the last ten failures.
    func recentHistory(
        sinceMS: Int64
    ) async throws
        -> (builds: [FarmScheduler.FinishedBuild], jobs: [FarmScheduler.FinishedJob], failures: [FarmSnapshot.Failure])
    {
        try await database.read { db in
            (
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT image_type, state, created_ms, finished_ms FROM builds WHERE finished_ms >= ?
                        """, arguments: [sinceMS]
                ).map {
                    FarmScheduler.FinishedBuild(
                        imageType: $0["image_type"], state: $0["state"],
                        createdMS: $0["created_ms"], finishedMS: $0["finished_ms"])
                },
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT on_agent, state, finished_ms, stream_bytes FROM jobs WHERE finished_ms >= ?
                        """, arguments: [sinceMS]
                ).map {
                    FarmScheduler.FinishedJob(
                        onAgent: $0["on_agent"], state: $0["state"],
                        finishedMS: $0["finished_ms"],
                        streamBytes: UInt64(max(0, $0["stream_bytes"] as Int64)))
                },
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT id, label, arch, image_type, finished_ms, failure FROM builds WHERE state = ? ORDER BY finished_ms DESC LIMIT 10
                        """, arguments: [BuildState.failed.stored]
                ).map {
                    FarmSnapshot.Failure(
                        buildId: $0["id"], label: $0["label"], arch: $0["arch"], imageType: $0["image_type"],
                        finishedUnixMs: $0["finished_ms"], failure: String(($0["failure"] as String).prefix(2000)))
                }
            )
        }
    }

    /// `kiln report`: figures from history alone (nothing in memory), so
    /// they are the same before and after a restart.
    func report(sinceMS: Int64, untilMS: Int64) async throws -> FarmReport {
        try await database.read { db in
            var groups: [String: (arch: String, type: String, states: [Int], secs: [Double])] = [:]
            for r in try Row.fetchAll(
                db,
                sql: """
                    SELECT arch, image_type, state, created_ms, finished_ms FROM builds WHERE finished_ms >= ? AND finished_ms > 0
                    """, arguments: [sinceMS])
            {
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
                return .init(
                    arch: arch, imageType: type, builds: states.count, succeeded: ok, failed: failed,
                    cancelled: states.filter { $0 == BuildState.cancelled.stored }.count,
                    successRate: ok + failed == 0 ? nil : Double(ok) / Double(ok + failed),
                    medianS: TelemetryJSON.percentile(secs, 0.5), p95S: TelemetryJSON.percentile(secs, 0.95))
            }
            let all = groups.values
            let totals = group("all", "all", all.flatMap(\.states), all.flatMap(\.secs))
            let list = all.map { group($0.arch, $0.type, $0.states, $0.secs) }
                .sorted { ($0.builds, $1.arch, $1.imageType) > ($1.builds, $0.arch, $0.imageType) }

            let cacheRow = try Row.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*) AS tree_jobs, COALESCE(SUM(state = ?), 0) AS hits, COALESCE(SUM(saved_ms), 0) AS saved_ms,
                    COALESCE(SUM(saved_bytes), 0) AS saved_bytes, COALESCE(SUM(stream_bytes), 0) AS streamed
                    FROM jobs WHERE on_agent = 1 AND finished_ms >= ? AND state IN (?, ?)
                    """,
                arguments: [
                    JobState.cached.stored, sinceMS, JobState.cached.stored,
                    JobState.succeeded.stored,
                ])
            let treeJobs: Int = cacheRow?["tree_jobs"] ?? 0
            let hits: Int = cacheRow?["hits"] ?? 0
            let cache = FarmReport.Cache(
                treeJobs: treeJobs, treeCacheHits: hits, hitRate: treeJobs == 0 ? nil : Double(hits) / Double(treeJobs),
                savedSeconds: Double(cacheRow?["saved_ms"] as Int64? ?? 0) / 1000,
                savedBytes: UInt64(max(0, cacheRow?["saved_bytes"] as Int64? ?? 0)),
                streamedBytes: UInt64(max(0, cacheRow?["streamed"] as Int64? ?? 0)))

            var waits: [String: [Double]] = [:]
            for r in try Row.fetchAll(
                db,
                sql: """
                    SELECT b.arch AS arch, a.started_ms - a.queued_ms AS wait FROM attempts a JOIN jobs j ON j.id = a.job_id
                    JOIN builds b ON b.id = j.build_id WHERE a.started_ms >= ? AND a.queued_ms > 0
                    """, arguments: [sinceMS])
            {
                waits[r["arch"], default: []].append(Double(max(0, r["wait"] as Int64)) / 1000)
            }
            let queueWait = waits.keys.sorted().map { k in
                FarmReport.QueueWait(
                    arch: k, attempts: waits[k]!.count, medianS: TelemetryJSON.percentile(waits[k]!, 0.5)!,
                    p95S: TelemetryJSON.percentile(waits[k]!, 0.95)!)
            }

            var stages: [String: (stage: String, mode: String, secs: [Double])] = [:]
            for r in try Row.fetchAll(
                db, sql: "SELECT stage_type, mode, duration_ms FROM stage_runs WHERE finished_ms >= ?",
                arguments: [sinceMS])
            {
                let (type, mode): (String, String) = (r["stage_type"], r["mode"])
                stages["\(type)\u{0}\(mode)", default: (type, mode, [])].secs.append(Double(r["duration_ms"] as Int64) / 1000)
            }
            let slowest = stages.values.map { s in
                FarmReport.Stage(
                    stage: s.stage, mode: s.mode, runs: s.secs.count, totalS: s.secs.reduce(0, +),
                    medianS: TelemetryJSON.percentile(s.secs, 0.5)!, p95S: TelemetryJSON.percentile(s.secs, 0.95)!,
                    maxS: s.secs.max()!)
            }.sorted { ($0.totalS, $1.stage) > ($1.totalS, $0.stage) }.prefix(10)

            return FarmReport(
                sinceUnixMs: sinceMS, untilUnixMs: untilMS, totals: totals, groups: list, cache: cache,
                queueWait: queueWait, slowestStages: Array(slowest))
        }
    }
}
