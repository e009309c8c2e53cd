import Foundation
import Logging
import Protocol

/// What `SchedulerCore` decided, for `FarmScheduler` to do, in order
/// (FarmScheduler+Actions.swift). Changes to the store are queued, not
/// awaited: where a peer may only hear of something once it is durable,
/// the actor awaits a write between two calls to the core.
enum SchedulerAction {
    /// A message to an agent's connection (its routing identity).
    case send(to: [UInt8], WireMessage)
    /// A change for scheduler.sqlite, recorded in order.
    case persist(StoreChange)
    /// A build event: recorded after the build's earlier ones, and logged.
    case event(BuildEvent)
    /// A figure for the metrics (only with telemetry on).
    case metric(MetricChange)
    /// A tree job needed no agent: counted, and what it saved recorded
    /// (`saved`, or the cost of the job that built the tree, from the history).
    case cacheHit(jobID: String, pipelineID: String, arch: String, saved: TreeCost?)
    /// Start receiving the attempt's tree (again from the start: `restart`).
    case startDownload(attempt: UInt64, restart: Bool)
    /// Stream data for the attempt's download (a chunk, or the end).
    case deliver(attempt: UInt64, WireMessage)
    /// Stop receiving the attempt's tree, if a download runs.
    case stopDownload(attempt: UInt64)
    /// Run the build's assembly job on the scheduler (from the build as it is now).
    case startAssembly(jobID: String, build: FarmBuild)
    /// The build ended: the store may prune its trees from now on.
    case releaseTrees(buildID: String)
    /// Something may be assigned now: run a dispatch pass soon (passes coalesce).
    case dispatchSoon
    /// A message the scheduler did not take: counted, and logged if `warning` says what.
    case dropped(warning: DroppedMessage?)
    /// An agent says it takes no new job (its disk is low): logged, at most every few seconds per agent.
    case diskWarning(agentID: String, String)
    /// A line for the scheduler's log.
    case log(Logger.Level, String, Logger.Metadata)
}

/// Why a message from an agent was dropped, and whose session it came on.
struct DroppedMessage {
    var message: String
    var agentID: String
}

/// What a stored tree cost to make: stream bytes and build time.
struct TreeCost: Equatable {
    var bytes: UInt64
    var ms: Int64
}

/// One row change of `SchedulerStore`'s `record…` methods.
enum StoreChange {
    case job(FarmJob)
    case buildState(buildID: String, BuildState)
    case buildFinished(buildID: String, BuildState, finishedMS: Int64, failure: String)
    case attemptEnd(attempt: UInt64, state: JobState, finishedMS: Int64, reason: String, infrastructure: Bool, streamBytes: UInt64)
    case treeStored(TreeProvenance)
    /// An agent as its last Hello described it.
    case agent(FarmAgent)
}

/// Who stored a tree (`kiln store list`, `kiln store forget --agent KEY`).
struct TreeProvenance {
    var pipelineID, agentID, agentKey: String
    var storedMS: Int64
    var streamSHA256: Data
    var streamBytes: UInt64
    /// The job, and its attempt, that stored it.
    var buildID, jobID: String
    var attemptID: UInt64
}

/// One build event (`kiln logs`), numbered after the build's earlier ones.
struct BuildEvent {
    var buildID: String
    /// Its place in the build's log, and when it happened.
    var sequence: UInt64, unixMS: Int64
    var kind: EventKind
    /// The job, attempt and agent it is about (empty, 0: the build's own).
    var job: String, attempt: UInt64, agent: String
    var message: String
    /// An agent's log lines (bounded by `AgentText.Limits`).
    var logLines: [String]
}

/// One call on `FarmMetrics`.
enum MetricChange: Equatable {
    case queueWait(arch: String, ms: Int64)
    case jobFinished(arch: String, imageType: String, kind: String, outcome: String)
    case treeCacheMiss(arch: String)
    case assemblyFinished(imageType: String, outcome: String, ms: Int64)
    case buildFinished(arch: String, imageType: String, outcome: String, ms: Int64)
    case attemptFinished(arch: String, emulated: Bool, outcome: String, ms: Int64?)
    case streamed(arch: String, bytes: UInt64)
    /// A tree was just built: what it cost, for the cache hits it serves next.
    case treeBuilt(pipelineID: String, TreeCost)
    /// A stage ran (on an agent, or an assembly's on the scheduler): its
    /// duration, and a row of `stage_runs` for `kiln report`.
    case stageRun(StageRun)
}

/// One stage's run.
struct StageRun: Equatable {
    var buildID, jobID: String
    /// 0 for an assembly stage.
    var attemptID: UInt64
    var index: UInt32
    /// The stage type; the mode is native, emulated or scheduler.
    var type, arch, mode: String
    var finishedMS, ms: Int64
}
