import Foundation
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
            if core.builds[j.buildID]?.state == .queued { setBuildState(j.buildID, .running) }
            if let b = core.builds[j.buildID], j.queuedMS > 0 { metrics?.queueWait(arch: b.arch, ms: t - j.queuedMS) }
        case .running where !j.onAgent:
            j.startedMS = t
        case .succeeded, .cached, .failed, .cancelled:
            j.finishedMS = t
            guard let metrics, let b = core.builds[j.buildID] else { return }
            metrics.jobFinished(
                arch: b.arch, imageType: b.imageType, kind: j.onAgent ? "tree" : "assembly",
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
        guard let b = core.builds[j.buildID] else { return }
        metrics?.treeCache(hit: true, arch: b.arch)
        let (records, metrics, jobID, pipelineID) = (self.records, self.metrics, j.id, j.pipelineID)
        let known = saved ?? builtTrees[j.pipelineID]
        Task.detached {
            var figures = known
            if figures == nil { figures = try? await records.lastTreeCost(pipelineID: pipelineID) }
            guard let (bytes, ms) = figures else { return }
            metrics?.treeCacheSaved(bytes: bytes, ms: ms)
            records.recordCacheSavings(jobID: jobID, bytes: bytes, ms: ms)
        }
    }

    /// A stage finished: its duration goes to the histogram and, with
    /// telemetry on, to `stage_runs` for `kiln report`.
    func stageRun(buildID: String, jobID: String, attemptID: UInt64, index: UInt32, type: String, mode: String, ms: Int64) {
        guard let metrics, let b = core.builds[buildID] else { return }
        let stage = metrics.stage(type)
        metrics.stageFinished(type: stage, arch: b.arch, mode: mode, ms: ms)
        records.recordStageRun(
            buildID: buildID, jobID: jobID, attemptID: attemptID, index: index, type: stage, arch: b.arch,
            mode: mode, finishedMS: now, ms: ms)
    }
}
