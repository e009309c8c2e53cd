import Foundation
import GRDB
import Manifest
import Protocol

extension FarmScheduler {
    /// Restart (docs/architecture.md §5): bumps the epoch, reloads unfinished builds,
    /// gives running attempts a fresh lease so that reconnecting agents can
    /// re-adopt them, requeues queued jobs and re-runs interrupted assemblies.
    func recover() async throws {
        struct Loaded: Sendable {
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
        let registry = self.registry
        let loaded = try await db.pool.write { db -> Loaded in
            let epoch = (try UInt64.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'epoch'") ?? 0) + 1
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?)", arguments: ["\(epoch)"])
            let maxAttempt = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM attempts") ?? 0
            let active = [BuildState.queued.stored, BuildState.running.stored]
            var builds: [FarmBuild] = []
            var jobs: [FarmJob] = []
            var failed: [(String, String)] = []
            var attemptStarts: [Int64: Int64] = [:]
            var logBytes: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM builds WHERE state IN (?, ?) ORDER BY created_ms",
                                        arguments: [active[0], active[1]]) {
                let id: String = row["id"]
                let json = [UInt8]((row["manifest"] as Data?) ?? Data())
                guard let manifest = try? BuildManifest.decode(Data(json), file: "manifest"),
                      (try? manifest.validate(stages: registry)) != nil, let ids = try? ContentIDs(manifest) else {
                    failed.append((id, "the stored manifest is no longer valid for this version of Kiln; submit it again"))
                    continue
                }
                let seq = try Int64.fetchOne(db, sql: "SELECT MAX(sequence) FROM events WHERE build_id = ?", arguments: [id]) ?? 0
                // Counted as agents' text, scheduler events too: a slight overcount, never an undercount.
                logBytes[id] = try Int.fetchOne(db, sql: """
                    SELECT COALESCE(SUM(length(CAST(message AS BLOB)) + length(CAST(log_lines AS BLOB))), 0)
                    FROM events WHERE build_id = ? AND agent_id != ''
                    """, arguments: [id]) ?? 0
                builds.append(FarmBuild(id: id, label: row["label"], arch: row["arch"], manifestJSON: json, manifest: manifest, ids: ids,
                                        exports: Self.list(row["exports"], separator: "\n"),
                                        state: BuildState(stored: row["state"]) ?? .queued,
                                        createdMS: row["created_ms"], jobIDs: [], nextSequence: UInt64(seq) + 1))
                builds[builds.count - 1].distro = row["distro"]
                builds[builds.count - 1].imageType = row["image_type"]
                builds[builds.count - 1].stageTimeoutMS = row["stage_timeout_ms"]
                for r in try Row.fetchAll(db, sql: "SELECT * FROM jobs WHERE build_id = ? ORDER BY ordinal", arguments: [id]) {
                    var job = FarmJob(id: r["id"], buildID: id, ordinal: r["ordinal"], pipelineName: r["pipeline_name"],
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
                    if job.attemptID > 0, let started = try Int64.fetchOne(
                        db, sql: "SELECT started_ms FROM attempts WHERE id = ?", arguments: [Int64(job.attemptID)]) {
                        attemptStarts[Int64(job.attemptID)] = started
                    }
                }
            }
            let agents = try Row.fetchAll(db, sql: "SELECT * FROM agents").map { row in
                let id: String = row["id"]
                var a = FarmAgent(id: id, identity: [], publicKey: row["public_key"],
                                  arches: Self.list(row["arches"]), emulated: Self.list(row["emulated"]),
                                  slots: row["slots"], freeDisk: UInt64(max(0, row["free_disk"] as Int64)),
                                  version: row["version"], lastSeenMS: row["last_seen_ms"], online: false)
                a.drained = row["drained"]
                return a
            }
            return Loaded(epoch: epoch, maxAttempt: maxAttempt, builds: builds, jobs: jobs, agents: agents, failed: failed,
                          attemptStarts: attemptStarts, logBytes: logBytes)
        }
        epoch = loaded.epoch
        nextAttemptID = UInt64(loaded.maxAttempt) + 1
        for a in loaded.agents { agents[a.id] = a }
        for var b in loaded.builds {
            b.logBytes = loaded.logBytes[b.id] ?? 0
            b.lease = store.pin(b.ids)
            builds[b.id] = b
        }
        let failedToLoad = loaded.failed
        let lease = now + Int64(config.leaseMS)
        var interrupted = 0
        for job in loaded.jobs {
            let buildID = job.buildID
            guard builds[buildID] != nil else { continue }
            builds[buildID]?.jobIDs.append(job.id)
            jobs[job.id] = job
            if job.onAgent {
                switch job.state {
                case .queued:
                    enqueue(job.id)
                case .assigned, .running, .streaming:
                    // Waits for its agent to say Hello with it; requeued when the lease runs out.
                    attempts[job.attemptID] = FarmAttempt(id: job.attemptID, jobID: job.id, pipelineID: job.pipelineID, agentID: job.agentID,
                                                          leaseUntilMS: lease,
                                                          startedMS: loaded.attemptStarts[Int64(job.attemptID)] ?? 0)
                    agents[job.agentID]?.attempts.insert(job.attemptID)
                    interrupted += 1
                default:
                    break
                }
            } else if job.state == .queued || job.state == .running {
                updateJob(job.id) { $0.state = .waiting }  // assembly is re-run from the stored trees
            }
        }
        for (id, reason) in failedToLoad {
            try await db.commit { db in
                try db.execute(sql: "UPDATE builds SET state = ?, failure = ? WHERE id = ?",
                               arguments: [BuildState.failed.stored, reason, id])
            }
        }
        if !builds.isEmpty {
            logger.info("recovered \(builds.count) unfinished build(s), \(interrupted) attempt(s) awaiting their agents",
                        metadata: ["scheduler.epoch": "\(epoch)"])
        }
        for id in builds.keys.sorted() {
            event(id, .queued, message: "scheduler restarted (epoch \(epoch)): build resumed")
            advance(id)
        }
    }

    static func list(_ text: String?, separator: Character = ",") -> [String] {
        (text ?? "").split(separator: separator).map(String.init)
    }
}
