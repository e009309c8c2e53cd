import Protocol

// The scheduler's own states: what memory and SQLite hold. The protobuf
// enums (`Kiln_V1_*`) appear only where a message is made for a peer
// (`wire`) or read back from one. The stored codes are the columns' values
// in scheduler.sqlite and never change meaning; they happen to equal the
// wire's numbers, but nothing relies on that: each side maps by name.

/// Where a build is.
package enum BuildState: Int, Sendable, CaseIterable {
    case queued = 1, running = 2, succeeded = 3, failed = 4, cancelled = 5

    /// The stored code (`builds.state`), or nil for a code this scheduler does not know.
    init?(stored code: Int) { self.init(rawValue: code) }
    var stored: Int { rawValue }

    package var isFinished: Bool {
        switch self {
        case .succeeded, .failed, .cancelled: true
        case .queued, .running: false
        }
    }

    var wire: Kiln_V1_BuildState {
        switch self {
        case .queued: .queued
        case .running: .running
        case .succeeded: .succeeded
        case .failed: .failed
        case .cancelled: .cancelled
        }
    }
}

/// Where a job is.
enum JobState: Int, Sendable, CaseIterable {
    /// Waits for the jobs it depends on.
    case waiting = 1
    case queued = 2, assigned = 3, running = 4, streaming = 5, succeeded = 6, failed = 7, cancelled = 8
    /// Its tree was already stored.
    case cached = 9

    init?(stored code: Int) { self.init(rawValue: code) }
    var stored: Int { rawValue }

    var wire: Kiln_V1_JobState {
        switch self {
        case .waiting: .waiting
        case .queued: .queued
        case .assigned: .assigned
        case .running: .running
        case .streaming: .streaming
        case .succeeded: .succeeded
        case .failed: .failed
        case .cancelled: .cancelled
        case .cached: .cached
        }
    }
}

/// What a build event says happened.
enum EventKind: Int, Sendable, CaseIterable {
    case queued = 1, assigned = 2, stageStarted = 3, stageFinished = 4, log = 5, streamed = 6, assembled = 7,
        requeued = 8, failed = 9, succeeded = 10, cancelled = 11, cached = 12
    /// A note given at submit.
    case note = 13
    /// The build's artifacts were removed (--keep-artifacts).
    case expired = 14

    init?(stored code: Int) { self.init(rawValue: code) }
    var stored: Int { rawValue }

    var wire: Kiln_V1_EventKind {
        switch self {
        case .queued: .queued
        case .assigned: .assigned
        case .stageStarted: .stageStarted
        case .stageFinished: .stageFinished
        case .log: .log
        case .streamed: .streamed
        case .assembled: .assembled
        case .requeued: .requeued
        case .failed: .failed
        case .succeeded: .succeeded
        case .cancelled: .cancelled
        case .cached: .cached
        case .note: .note
        case .expired: .expired
        }
    }
}
