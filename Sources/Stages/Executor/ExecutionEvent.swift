/// What the executor reports while it works; the CLI turns these into progress.
package enum ExecutionEvent: Sendable {
    /// The pipeline's result is in the tree store: nothing to run.
    case pipelineCached(name: String)
    /// The pipeline starts; `restored` stages come from a checkpoint.
    case pipelineStarted(name: String, stages: Int, restored: Int)
    case sources(done: Int, total: Int, bytes: UInt64)
    case stageStarted(pipeline: String, index: Int, count: Int, type: String)
    case stageFinished(pipeline: String, index: Int, count: Int, type: String, seconds: Double)
    case checkpointStored(pipeline: String, index: Int)
    case pipelineFinished(name: String, seconds: Double)
}

/// Receives execution events (from any task).
package protocol ExecutionObserver: Sendable {
    func event(_ event: ExecutionEvent)
}

/// Ignores all events.
package struct SilentObserver: ExecutionObserver {
    package init() {}
    package func event(_ event: ExecutionEvent) {}
}
