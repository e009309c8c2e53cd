import Foundation
import GRDB
import Manifest
import Stages

// What a restart loads, and what retention removes.
extension SchedulerStore {
    /// What a restart reloads: unfinished builds with their jobs, every agent, and
    /// the builds whose stored manifests no longer load.
    struct Unfinished: Sendable {
        var epoch: UInt64
        var maxAttempt: Int64
        var builds: [FarmBuild]
        var jobs: [FarmJob]
        var agents: [FarmAgent]
        var failed: [(String, String)]
        /// Start of each attempt that was running (for its deadline).
        var attemptStarts: [Int64: Int64]
        /// Bytes of agents' text already in each build's events.
        var logBytes: [String: Int]
    }

    /// Bumps the epoch and loads what a restart resumes (docs/architecture.md §5).
    func loadUnfinished(registry: StageRegistry) async throws -> Unfinished {
        try await database.pool.write { db -> Unfinished in
            let epoch = (try UInt64.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'epoch'") ?? 0) + 1
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?)", arguments: ["\(epoch)"])
            let maxAttempt = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM attempts") ?? 0
            let active = [BuildState.queued.stored, BuildState.running.stored]
            var builds: [FarmBuild] = []
            var jobs: [FarmJob] = []
            var failed: [(String, String)] = []
            var attemptStarts: [Int64: Int64] = [:]
            var logBytes: [String: Int] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT * FROM builds WHERE state IN (?, ?) ORDER BY created_ms",
                arguments: [active[0], active[1]])
            {
                let id: String = row["id"]
                let json = [UInt8]((row["manifest"] as Data?) ?? Data())
                guard let manifest = try? BuildManifest.decode(Data(json), file: "manifest"),
                    (try? manifest.validate(stages: registry)) != nil, let ids = try? ContentIDs(manifest)
                else {
                    failed.append((id, "the stored manifest is no longer valid for this version of Kiln; submit it again"))
                    continue
                }
                let seq = try Int64.fetchOne(db, sql: "SELECT MAX(sequence) FROM events WHERE build_id = ?", arguments: [id]) ?? 0
                // Counted as agents' text, scheduler events too: a slight overcount, never an undercount.
                logBytes[id] =
                    try Int.fetchOne(
                        db,
                        sql: """
                            SELECT COALESCE(SUM(length(CAST(message AS BLOB)) + length(CAST(log_lines AS BLOB))), 0)
                            FROM events WHERE build_id = ? AND agent_id != ''
                            """, arguments: [id]) ?? 0
                builds.append(
                    FarmBuild(
                        id: id, label: row["label"], arch: row["arch"], manifestJSON: json, manifest: manifest, ids: ids,
                        exports: FarmScheduler.list(row["exports"], separator: "\n"),
                        state: BuildState(stored: row["state"]) ?? .queued,
                        createdMS: row["created_ms"], jobIDs: [], nextSequence: UInt64(seq) + 1))
                builds[builds.count - 1].distro = row["distro"]
                builds[builds.count - 1].imageType = row["image_type"]
                builds[builds.count - 1].stageTimeoutMS = row["stage_timeout_ms"]
                for r in try Row.fetchAll(db, sql: "SELECT * FROM jobs WHERE build_id = ? ORDER BY ordinal", arguments: [id]) {
                    var job = FarmJob(
                        id: r["id"], buildID: id, ordinal: r["ordinal"], pipelineName: r["pipeline_name"],
                        pipelineID: r["pipeline_id"], onAgent: r["on_agent"],
                        state: JobState(stored: r["state"]) ?? .queued)
                    job.attempts = r["attempts"]
                    job.attemptID = UInt64(r["attempt_id"] as Int64)
                    job.agentID = r["agent_id"]
                    job.failure = r["failure"]
                    job.queuedMS = r["queued_ms"]
                    job.startedMS = r["started_ms"]
                    job.finishedMS = r["finished_ms"]
                    job.streamBytes = UInt64(max(0, r["stream_bytes"] as Int64))
                    jobs.append(job)
                    if job.attemptID > 0,
                        let started = try Int64.fetchOne(
                            db, sql: "SELECT started_ms FROM attempts WHERE id = ?", arguments: [Int64(job.attemptID)])
                    {
                        attemptStarts[Int64(job.attemptID)] = started
                    }
                }
            }
            let agents = try Row.fetchAll(db, sql: "SELECT * FROM agents").map { row in
                let id: String = row["id"]
                var a = FarmAgent(
                    id: id, identity: [], publicKey: row["public_key"],
                    arches: FarmScheduler.list(row["arches"]), emulated: FarmScheduler.list(row["emulated"]),
                    slots: row["slots"], freeDisk: UInt64(max(0, row["free_disk"] as Int64)),
                    version: row["version"], lastSeenMS: row["last_seen_ms"], online: false)
                a.drained = row["drained"]
                return a
            }
            return Unfinished(
                epoch: epoch, maxAttempt: maxAttempt, builds: builds, jobs: jobs, agents: agents, failed: failed,
                attemptStarts: attemptStarts, logBytes: logBytes)
        }
    }

    // MARK: - Retention

    /// Up to `limit` finished builds (before `cutoffMS`) that still have artifacts, oldest first.
    func buildsWithArtifacts(finishedBefore cutoffMS: Int64, limit: Int) async throws -> [String] {
        try await database.read { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT id FROM builds WHERE finished_ms > 0 AND finished_ms < ? AND artifacts_expired_ms = 0
                    AND EXISTS (SELECT 1 FROM artifacts WHERE artifacts.build_id = builds.id)
                    ORDER BY finished_ms LIMIT ?
                    """, arguments: [cutoffMS, limit])
        }
    }

    /// Forgets the artifacts of `buildIDs`: each build says when, and gets an event saying `message`.
    func expireArtifacts(of buildIDs: [String], atMS t: Int64, message: String) async throws {
        try await database.commit { db in
            for id in buildIDs {
                try db.execute(sql: "DELETE FROM artifacts WHERE build_id = ?", arguments: [id])
                try db.execute(sql: "UPDATE builds SET artifacts_expired_ms = ? WHERE id = ?", arguments: [t, id])
                try db.execute(
                    sql: """
                        INSERT INTO events (build_id, sequence, unix_ms, kind, job_id, attempt_id, agent_id, message, log_lines)
                        SELECT ?, COALESCE(MAX(sequence), 0) + 1, ?, ?, '', 0, '', ?, '' FROM events WHERE build_id = ?
                        """, arguments: [id, t, EventKind.expired.stored, message, id])
            }
        }
    }

    /// Up to `limit` builds that finished before `cutoffMS`, oldest first.
    func buildsFinished(before cutoffMS: Int64, limit: Int) async throws -> [String] {
        let finished = [BuildState.succeeded, .failed, .cancelled].map(\.stored)
        return try await database.read { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT id FROM builds WHERE finished_ms > 0 AND finished_ms < ? AND state IN (?, ?, ?)
                    ORDER BY finished_ms LIMIT ?
                    """, arguments: [cutoffMS, finished[0], finished[1], finished[2], limit])
        }
    }

    /// What deleting a build removes: artifacts, their bytes, events (nil: no such build).
    func contents(of buildID: String) async throws -> (artifacts: Int, bytes: Int64, events: Int)? {
        try await database.read { db -> (artifacts: Int, bytes: Int64, events: Int)? in
            guard try Int.fetchOne(db, sql: "SELECT 1 FROM builds WHERE id = ?", arguments: [buildID]) != nil else { return nil }
            let count = { (sql: String) in try Int64.fetchOne(db, sql: sql, arguments: [buildID]) ?? 0 }
            return (
                Int(try count("SELECT COUNT(*) FROM artifacts WHERE build_id = ?")),
                try count("SELECT COALESCE(SUM(size), 0) FROM artifacts WHERE build_id = ?"),
                Int(try count("SELECT COUNT(*) FROM events WHERE build_id = ?"))
            )
        }
    }

    /// Deletes every row of `buildIDs`. The tree records (`trees`) stay:
    /// they describe stored trees, which other builds use.
    func deleteBuilds(_ buildIDs: [String]) async throws {
        try await database.commit { db in
            for id in buildIDs {
                // A compose goes with the last of its builds (until then it shows that one as removed).
                let composes = try String.fetchAll(
                    db, sql: "SELECT compose_id FROM compose_images WHERE build_id = ?", arguments: [id])
                for compose in composes {
                    let others =
                        try Int.fetchOne(
                            db,
                            sql: """
                                SELECT count(*) FROM compose_images i JOIN builds b ON b.id = i.build_id
                                WHERE i.compose_id = ? AND i.build_id != ?
                                """, arguments: [compose, id]) ?? 0
                    if others == 0 {
                        try db.execute(sql: "DELETE FROM compose_images WHERE compose_id = ?", arguments: [compose])
                        try db.execute(sql: "DELETE FROM composes WHERE id = ?", arguments: [compose])
                    }
                }
                for sql in [
                    "DELETE FROM events WHERE build_id = ?",
                    "DELETE FROM stage_runs WHERE build_id = ?",
                    "DELETE FROM attempts WHERE job_id IN (SELECT id FROM jobs WHERE build_id = ?)",
                    "DELETE FROM jobs WHERE build_id = ?",
                    "DELETE FROM artifacts WHERE build_id = ?",
                    "DELETE FROM builds WHERE id = ?",
                ] {
                    try db.cachedStatement(sql: sql).execute(arguments: [id])
                }
            }
        }
    }

    /// Every build the store knows.
    func allBuildIDs() async throws -> Set<String> {
        try await database.read { db in Set(try String.fetchAll(db, sql: "SELECT id FROM builds")) }
    }
}
