import Foundation
import Protocol

/// Timings kept for metrics, `kiln top` and `kiln report`: job and attempt
/// times ride on the rows the scheduler writes anyway (the core keeps them,
/// `SchedulerCore.stateChanged`); stage runs get a table of their own
/// (docs/operating.md).
extension FarmScheduler {
    /// A tree job that needed no agent: its tree was stored already. What
    /// it saved is what the job that made the tree cost: given when that
    /// job just finished, else looked up in the history.
    func cacheHit(jobID: String, pipelineID: String, arch: String, saved: TreeCost?) {
        metrics?.treeCache(hit: true, arch: arch)
        let (records, metrics) = (self.records, self.metrics)
        let known = (saved ?? builtTrees[pipelineID]).map { (bytes: $0.bytes, ms: $0.ms) }
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
