import Foundation
import Manifest
import Protocol
import Stages

/// In-memory picture of what the scheduler is doing (`SchedulerCore` holds
/// it); SQLite holds the same facts durably (`SchedulerDatabase`), and
/// `FarmScheduler.recover` rebuilds this from it after a restart.
struct FarmBuild: Sendable {
    var id: String
    var label: String
    var arch: String
    /// What the client said it builds (metrics and reports; may be empty).
    var distro = ""
    var imageType = ""
    var manifestJSON: [UInt8]
    var manifest: BuildManifest
    /// Content IDs of the validated manifest.
    var ids: ContentIDs
    var exports: [String]
    var state: BuildState
    var createdMS: Int64
    var finishedMS: Int64 = 0
    var failure = ""
    var jobIDs: [String]
    var nextSequence: UInt64 = 1
    var assembling = false
    /// Bytes of agents' text in this build's events (capped by `AgentText.Limits.buildBytes`).
    var logBytes = 0
    /// The longest one stage may run on an agent (ms; 0: the scheduler's --stage-timeout).
    var stageTimeoutMS: Int64 = 0

    var isFinished: Bool { state.isFinished }
}

struct FarmJob: Sendable {
    var id: String
    var buildID: String
    var ordinal: Int
    var pipelineName: String
    var pipelineID: String
    var onAgent: Bool
    var state: JobState
    var attempts = 0
    var attemptID: UInt64 = 0
    var agentID = ""
    var stageIndex: UInt32 = 0
    var stageCount: UInt32 = 0
    var stageType = ""
    var failure = ""
    /// One line per failed attempt, for the final failure message.
    var history: [String] = []
    var triedAgents: Set<String> = []
    /// The user was told that no online agent runs this job's architecture.
    var toldNoAgent = false
    /// Unix ms: last entered a queue, first started, ended (0: not yet).
    var queuedMS: Int64 = 0
    var startedMS: Int64 = 0
    var finishedMS: Int64 = 0
    /// Compressed bytes of the tree stream that stored its tree.
    var streamBytes: UInt64 = 0

    // Switches, not array literals: these run for every job on every change.
    var isActive: Bool {
        switch state {
        case .assigned, .running, .streaming: true
        default: false
        }
    }
    var isDone: Bool {
        switch state {
        case .succeeded, .cached, .failed, .cancelled: true
        default: false
        }
    }
}

struct FarmAttempt: Sendable {
    var id: UInt64
    var jobID: String
    /// The job's pipeline ID: identical jobs wait while one of them is in flight.
    var pipelineID: String
    var agentID: String
    var leaseUntilMS: Int64
    var startedMS: Int64 = 0
    /// The agent runs the build's architecture through qemu-user.
    var emulated = false
    /// When the stage in progress started (0: none), for stage durations.
    var stageStartedMS: Int64 = 0
    var streamBytes: UInt64 = 0
    /// The whole-stream sha256 of the agent's last StreamEnd (the download checks it).
    var streamSHA256 = Data()
}

struct FarmAgent: Sendable {
    var id: String
    var identity: [UInt8]
    var publicKey: String
    var arches: [String]
    var emulated: [String]
    var slots: Int
    var freeDisk: UInt64
    var version: String
    var lastSeenMS: Int64
    var online: Bool
    /// Attempts it runs (or streams) now.
    var attempts: Set<UInt64> = []
    /// An operator drained it (`kiln agents drain`): no new job; what it runs finishes.
    var drained = false
    /// Why it takes no new job now, as it said (its disk is low); empty: it takes jobs.
    var notTakingJobs = ""

    var freeSlots: Int { online && !drained && notTakingJobs.isEmpty ? max(0, slots - attempts.count) : 0 }
    func runs(_ arch: String) -> Bool { arches.contains(arch) || emulated.contains(arch) }
}

/// Why an attempt ended without a tree.
struct AttemptFailure {
    var reason: String
    var infrastructure: Bool
    var logTail: [String] = []
}
