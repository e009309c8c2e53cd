import Foundation
import GRDB
import Protocol

/// Timings kept for metrics, `kiln top` and `kiln report`: job and attempt
/// times ride on the rows the scheduler writes anyway; stage runs get a
/// table of their own (docs/operating.md).
extension FarmScheduler {
    static func outcome(_ s: BuildState) -> String {
        switch s {
        case .succeeded: "succeeded"
        case .cancelled: "cancelled"
        default: "failed"
        }
    }

    static func outcome(_ s: JobState) -> String {
        switch s {
        case .succeeded: "succeeded"
        case .cached: "cached"
        case .cancelled: "cancelled"
        default: "failed"
        }
    }

    /// Keeps a job's times and counts its end (called by `updateJob`).
    func stateChanged(_ j: inout FarmJob, from before: JobState) {
        let t = now
        switch j.state {
        case .queued:
            j.queuedMS = t
        case .assigned:
            if j.startedMS == 0 { j.startedMS = t }
            // Its first job on an agent makes a build running (top, dashboard, gauges).
            if builds[j.buildID]?.state == .queued { setBuildState(j.buildID, .running) }
            if let b = builds[j.buildID], j.queuedMS > 0 { metrics?.queueWait(arch: b.arch, ms: t - j.queuedMS) }
        case .running where !j.onAgent:
            j.startedMS = t
        case .succeeded, .cached, .failed, .cancelled:
            j.finishedMS = t
            guard let metrics, let b = builds[j.buildID] else { return }
            metrics.jobFinished(arch: b.arch, imageType: b.imageType, kind: j.onAgent ? "tree" : "assembly",
                                outcome: Self.outcome(j.state))
            if j.onAgent && j.state == .succeeded { metrics.treeCache(hit: false, arch: b.arch) }
            if !j.onAgent && before == .running {
                metrics.assemblyFinished(imageType: b.imageType, outcome: Self.outcome(j.state), ms: t - j.startedMS)
            }
        default:
            break
        }
    }

    /// A tree job that needed no agent: its tree was stored already. What
    /// it saved is what the job that made the tree cost: given when that
    /// job just finished, else looked up in the history.
    func cacheHit(_ j: FarmJob, saved: (bytes: UInt64, ms: Int64)?) {
        guard let b = builds[j.buildID] else { return }
        metrics?.treeCache(hit: true, arch: b.arch)
        let (db, metrics, jobID, pipelineID) = (self.db, self.metrics, j.id, j.pipelineID)
        let succeeded = JobState.succeeded.stored
        let known = saved ?? builtTrees[j.pipelineID]
        Task.detached {
            var figures = known
            if figures == nil {
                figures = try? await db.read { db in
                    try Row.fetchOne(db, sql: """
                        SELECT stream_bytes, finished_ms - started_ms AS ms FROM jobs
                        WHERE pipeline_id = ? AND on_agent = 1 AND state = ? AND started_ms > 0
                        ORDER BY finished_ms DESC LIMIT 1
                        """, arguments: [pipelineID, succeeded]).map { (UInt64(max(0, $0["stream_bytes"] as Int64)), $0["ms"] as Int64) }
                }
            }
            guard let (bytes, ms) = figures else { return }
            metrics?.treeCacheSaved(bytes: bytes, ms: ms)
            db.record { db in
                try db.cachedStatement(sql: "UPDATE jobs SET saved_bytes = ?, saved_ms = ? WHERE id = ?").execute(
                    arguments: [Int64(clamping: bytes), ms, jobID])
            }
        }
    }

    /// A stage finished: its duration goes to the histogram and, with
    /// telemetry on, to `stage_runs` for `kiln report`.
    func stageRun(buildID: String, jobID: String, attemptID: UInt64, index: UInt32, type: String, mode: String, ms: Int64) {
        guard let metrics, let b = builds[buildID] else { return }
        let stage = metrics.stage(type)
        metrics.stageFinished(type: stage, arch: b.arch, mode: mode, ms: ms)
        let (arch, t) = (b.arch, now)
        db.record { db in
            try db.cachedStatement(sql: """
                INSERT INTO stage_runs (build_id, job_id, attempt_id, stage_index, stage_type, arch, mode, finished_ms, duration_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [buildID, jobID, Int64(attemptID), Int64(index), stage, arch, mode, t, max(0, ms)])
        }
    }
}
