import Foundation
import Protocol

/// What the scheduler knows and decides, as a plain value: builds, jobs,
/// attempts with their leases, agents with their slots and sessions, and
/// the queues (docs/architecture.md §7). `FarmScheduler` (the actor) holds one.
package struct SchedulerCore {
    var builds: [String: FarmBuild] = [:]
    var jobs: [String: FarmJob] = [:]
    var attempts: [UInt64: FarmAttempt] = [:]
    var agents: [String: FarmAgent] = [:]
    /// Connections (routing ids) of welcomed agents → their agent ids.
    var agentSessions: [[UInt8]: String] = [:]
    /// Tree jobs waiting for an agent, per architecture, oldest first.
    var queues: [String: [String]] = [:]
    /// Jobs parked behind an identical job (same pipeline ID) in flight.
    var parked: [String: [String]] = [:]
    var nextAttemptID: UInt64 = 1
    /// Assembly jobs waiting for one of the scheduler's assembly places, oldest first.
    var assemblyQueue: [String] = []
    var assembliesRunning = 0

    init() {}
}
