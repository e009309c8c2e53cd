import Manifest
import Stages

/// How a manifest splits into jobs (docs/architecture.md §2): every pipeline with a tree
/// stage that an assembly pipeline (or an export) needs is a job for an agent
/// of the manifest's architecture; the assembly pipelines run together on the
/// scheduler once those trees are stored. Placement comes from the stage
/// registry, never from pipeline names.
package struct BuildPlan: Sendable {
    package struct TreeJob: Sendable, Equatable {
        package var pipelineName: String
        package var pipelineID: String
        /// Already in the tree store: nothing to dispatch.
        package var cached: Bool
    }

    package var treeJobs: [TreeJob]
    /// True when some export needs work on the scheduler (assembly stages).
    package var needsAssembly: Bool
    package var ids: ContentIDs
    /// Keeps the build's trees in the scheduler's store from the moment they
    /// were found there until the build ends (`TreeStore.pin`).
    package var lease: TreeLease?

    package static func make(
        _ manifest: BuildManifest, exports: [String], registry: StageRegistry,
        store: TreeStore
    ) throws -> BuildPlan {
        try manifest.validate(stages: registry)
        for e in exports where manifest.pipeline(named: e) == nil {
            throw ExecutorError.unknownExport(name: e, available: manifest.pipelines.map(\.name))
        }
        let ids = try ContentIDs(manifest)
        let plan = try manifest.plan(exports: exports)
        func isTree(_ p: Pipeline) -> Bool { p.stages.contains { registry.placement(of: $0.type) == .tree } }
        var wanted: [String] = []
        for p in plan where !isTree(p) {
            for dep in manifest.dependencies(of: p) {
                if let d = manifest.pipeline(named: dep), isTree(d), !wanted.contains(dep) { wanted.append(dep) }
            }
        }
        for e in exports {
            if let p = manifest.pipeline(named: e), isTree(p), !wanted.contains(e) { wanted.append(e) }
        }
        // Leased before the store is asked: a tree found now is still there when the build needs it.
        let lease = store.pin(ids)
        let jobs = wanted.map { name in
            let pid = ids.pipelines[name]!
            let cached = store.contains(pid)
            if cached { store.touch(pid) }  // used again: the last to be pruned
            return TreeJob(pipelineName: name, pipelineID: pid, cached: cached)
        }
        let assembly = plan.contains { !isTree($0) }
        return BuildPlan(treeJobs: jobs, needsAssembly: assembly, ids: ids, lease: lease)
    }
}
