import Foundation
import Protocol

/// Timings kept for metrics, `kiln top` and `kiln report`: job and attempt
/// times ride on the rows the scheduler writes anyway (the core keeps them,
/// `SchedulerCore.stateChanged`); stage runs get a table of their own
/// (`MetricChange.stageRun`, docs/operating.md).
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
}
