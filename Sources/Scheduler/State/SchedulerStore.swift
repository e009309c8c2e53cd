import Foundation
import GRDB

/// Every SQL statement of the scheduler daemon, behind typed methods: the
/// actor says what happened, the store says how it is kept in
/// scheduler.sqlite (the schema is `SchedulerDatabase.migrator`).
///
/// - `record…` queues a change and returns at once: changes are applied in
///   the order they were made and grouped into few transactions
///   (`SchedulerDatabase.record`); nobody is told about them before a later
///   `async` write has committed.
/// - `async` writes return once the change is durable (`SchedulerDatabase.commit`):
///   the scheduler awaits them before it answers a peer.
/// - Reads (here and in SchedulerStore+Queries.swift) go to a reader of the
///   WAL database and never block the writer.
///
/// `kiln store` and the other admin commands read the same file through
/// `SchedulerAdmin`, which keeps its own few statements about stored trees.
struct SchedulerStore: Sendable {
    let database: SchedulerDatabase

    // MARK: - Builds and jobs

    /// A submitted build, its jobs and the attempts its first dispatch made,
    /// in one transaction: one fsync from submit to `Assign` on an idle farm.
    func insertSubmission(
        _ b: FarmBuild, clientKey: String, jobs: [FarmJob], attempts: [SchedulerCore.Assignment],
        startedMS: Int64
    ) async throws {
        let attempts = attempts.map(AttemptRow.init)
        try await database.commit { db in
            try db.cachedStatement(
                sql: """
                    INSERT INTO builds (id, label, arch, manifest, exports, state, created_ms, client_key, distro, image_type,
                                        stage_timeout_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                b.id, b.label, b.arch, Data(b.manifestJSON), b.exports.joined(separator: "\n"),
                b.state.stored, b.createdMS, clientKey, b.distro, b.imageType, b.stageTimeoutMS,
            ])
            for j in jobs {
                try Self.insertJob(j, db)
                if j.state == .assigned { try Self.updateJob(j, db) }
            }
            try Self.insertAttempts(attempts, startedMS: startedMS, db)
        }
    }

    /// A build's new state (queued → running).
    func recordBuildState(_ buildID: String, _ state: BuildState) {
        database.record { db in
            try db.cachedStatement(sql: "UPDATE builds SET state = ? WHERE id = ?").execute(arguments: [state.stored, buildID])
        }
    }

    /// A build's end.
    func recordBuildFinished(_ buildID: String, _ state: BuildState, finishedMS: Int64, failure: String) {
        database.record { db in
            try db.cachedStatement(sql: "UPDATE builds SET state = ?, finished_ms = ?, failure = ? WHERE id = ?").execute(
                arguments: [state.stored, finishedMS, failure, buildID])
        }
    }

    /// A build whose stored manifest no longer loads (after an upgrade): failed, with why.
    func failBuild(_ buildID: String, reason: String) async throws {
        try await database.commit { db in
            try db.execute(
                sql: "UPDATE builds SET state = ?, failure = ? WHERE id = ?",
                arguments: [BuildState.failed.stored, reason, buildID])
        }
    }

    /// A job as it is now (every field the scheduler changes).
    func recordJob(_ j: FarmJob) {
        database.record { db in try Self.updateJob(j, db) }
    }

    /// What a cache hit saved: the cost of the job that made the tree.
    func recordCacheSavings(jobID: String, bytes: UInt64, ms: Int64) {
        database.record { db in
            try db.cachedStatement(sql: "UPDATE jobs SET saved_bytes = ?, saved_ms = ? WHERE id = ?").execute(
                arguments: [Int64(clamping: bytes), ms, jobID])
        }
    }

    /// One build event, after the build's earlier ones.
    func recordEvent(
        buildID: String, sequence: UInt64, unixMS: Int64, kind: EventKind, jobID: String, attemptID: UInt64,
        agentID: String, message: String, logLines: String
    ) {
        database.record { db in
            try db.cachedStatement(
                sql: """
                    INSERT INTO events (build_id, sequence, unix_ms, kind, job_id, attempt_id, agent_id, message, log_lines)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                buildID, Int64(sequence), unixMS, kind.stored, jobID, Int64(attemptID), agentID,
                message, logLines,
            ])
        }
    }

    private static func insertJob(_ j: FarmJob, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO jobs (id, build_id, ordinal, pipeline_name, pipeline_id, on_agent, state, queued_ms, finished_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            j.id, j.buildID, j.ordinal, j.pipelineName, j.pipelineID, j.onAgent, j.state.stored,
            j.queuedMS, j.finishedMS,
        ])
    }

    private static func updateJob(_ s: FarmJob, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                UPDATE jobs SET state = ?, attempts = ?, attempt_id = ?, agent_id = ?, stage_index = ?, stage_count = ?,
                stage_type = ?, failure = ?, queued_ms = ?, started_ms = ?, finished_ms = ?, stream_bytes = ? WHERE id = ?
                """
        ).execute(arguments: [
            s.state.stored, s.attempts, Int64(s.attemptID), s.agentID, s.stageIndex, s.stageCount,
            s.stageType, s.failure, s.queuedMS, s.startedMS, s.finishedMS,
            Int64(clamping: s.streamBytes), s.id,
        ])
    }

    // MARK: - Attempts and trees

    /// What an attempt row starts with.
    struct AttemptRow: Sendable {
        var id: UInt64
        var jobID: String
        var agentID: String
        var queuedMS: Int64
        var emulated: Bool

        init(_ a: SchedulerCore.Assignment) {
            (id, jobID, agentID, queuedMS, emulated) = (a.attempt, a.job.id, a.agent.id, a.job.queuedMS, a.emulated)
        }
    }

    /// The attempts of one dispatch pass, before any `Assign` leaves.
    func insertAttempts(_ assigned: [SchedulerCore.Assignment], startedMS: Int64) async throws {
        let rows = assigned.map(AttemptRow.init)
        try await database.commit { db in try Self.insertAttempts(rows, startedMS: startedMS, db) }
    }

    private static func insertAttempts(_ rows: [AttemptRow], startedMS: Int64, _ db: Database) throws {
        for a in rows {
            try db.cachedStatement(
                sql: """
                    INSERT INTO attempts (id, job_id, agent_id, state, started_ms, queued_ms, emulated) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                Int64(a.id), a.jobID, a.agentID, JobState.assigned.stored, startedMS, a.queuedMS,
                a.emulated,
            ])
        }
    }

    /// An attempt's end.
    func recordAttemptEnd(
        _ attemptID: UInt64, state: JobState, finishedMS: Int64, reason: String, infrastructure: Bool,
        streamBytes: UInt64
    ) {
        let bytes = Int64(clamping: streamBytes)
        database.record { db in
            try db.cachedStatement(
                sql: """
                    UPDATE attempts SET state = ?, finished_ms = ?, reason = ?, infrastructure = ?, stream_bytes = ? WHERE id = ?
                    """
            ).execute(arguments: [state.stored, finishedMS, reason, infrastructure, bytes, Int64(attemptID)])
        }
    }

    /// Who stored a tree (`kiln store list`, `kiln store forget --agent KEY`).
    func recordTreeStored(
        pipelineID: String, agentID: String, agentKey: String, storedMS: Int64, streamSHA256: Data,
        streamBytes: UInt64, buildID: String, jobID: String, attemptID: UInt64
    ) {
        let bytes = Int64(clamping: streamBytes)
        database.record { db in
            try db.cachedStatement(
                sql: """
                    INSERT OR REPLACE INTO trees (pipeline_id, agent_id, agent_key, stored_ms, stream_sha256, stream_bytes,
                    build_id, job_id, attempt_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                pipelineID, agentID, agentKey, storedMS, streamSHA256, bytes, buildID, jobID,
                Int64(attemptID),
            ])
        }
    }

    /// One stage's run on an agent (`kiln report`).
    func recordStageRun(
        buildID: String, jobID: String, attemptID: UInt64, index: UInt32, type: String, arch: String,
        mode: String, finishedMS: Int64, ms: Int64
    ) {
        database.record { db in
            try db.cachedStatement(
                sql: """
                    INSERT INTO stage_runs (build_id, job_id, attempt_id, stage_index, stage_type, arch, mode, finished_ms, duration_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [buildID, jobID, Int64(attemptID), Int64(index), type, arch, mode, finishedMS, max(0, ms)])
        }
    }

    // MARK: - Agents

    /// An agent as its last Hello described it.
    func recordAgent(
        id: String, publicKey: String, arches: [String], emulated: [String], slots: Int, freeDisk: UInt64,
        version: String, lastSeenMS: Int64
    ) {
        let (arches, emulated, disk) = (arches.joined(separator: ","), emulated.joined(separator: ","), Int64(clamping: freeDisk))
        database.record { db in
            try db.cachedStatement(
                sql: """
                    INSERT INTO agents (id, public_key, arches, emulated, slots, free_disk, version, last_seen_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET public_key = excluded.public_key, arches = excluded.arches,
                    emulated = excluded.emulated, slots = excluded.slots, free_disk = excluded.free_disk,
                    version = excluded.version, last_seen_ms = excluded.last_seen_ms
                    """
            ).execute(arguments: [id, publicKey, arches, emulated, slots, disk, version, lastSeenMS])
        }
    }

    /// `kiln agents drain` / `undrain`.
    func setDrained(_ agentID: String, _ drained: Bool) async throws {
        try await database.commit { db in
            try db.cachedStatement(sql: "UPDATE agents SET drained = ? WHERE id = ?").execute(arguments: [drained, agentID])
        }
    }

    /// The key an agent id is bound to (nil: none; `kiln agents release` clears it).
    func agentKey(_ agentID: String) async throws -> String? {
        try await database.read { db in
            try String.fetchOne(db, sql: "SELECT public_key FROM agents WHERE id = ?", arguments: [agentID])
        }
    }

    // MARK: - Artifacts

    /// A build's assembled files.
    func insertArtifacts(buildID: String, _ artifacts: [Artifact]) async throws {
        let rows = artifacts.map { ($0.name, $0.path, Int64($0.size), Data($0.sha256)) }
        try await database.commit { db in
            for (name, path, size, sha256) in rows {
                try db.cachedStatement(
                    sql: """
                        INSERT OR REPLACE INTO artifacts (build_id, name, path, size, sha256) VALUES (?, ?, ?, ?, ?)
                        """
                ).execute(arguments: [buildID, name, path, size, sha256])
            }
        }
    }

    /// A file's digest computed at fetch time (a cache: the file is the truth).
    func updateArtifactDigest(buildID: String, name: String, sha256: Data) async throws {
        try await database.commit { db in
            try db.cachedStatement(sql: "UPDATE artifacts SET sha256 = ? WHERE build_id = ? AND name = ?").execute(
                arguments: [sha256, buildID, name])
        }
    }
}
