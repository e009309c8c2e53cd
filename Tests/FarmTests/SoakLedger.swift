import Foundation
import KilnTestSupport
import Protocol
import Synchronization

/// What each soak build is for.
enum SoakKind: String, CaseIterable, Sendable {
    /// A tree no earlier build made: built on an agent, assembled.
    case new
    /// The tree of an earlier build: served from the store when it is still there.
    case `repeat`
    /// A time zone that does not exist: fails on purpose.
    case fail
    /// A stage that hangs (`HangingStage.pausingStages`) past the build's own stage timeout: fails on purpose.
    case timeout
    /// A new tree, cancelled at a random moment.
    case cancel
    /// Submitted by the hostile key through the client port (which it may use).
    case hostile

    var failsOnPurpose: Bool { self == .fail || self == .timeout }
}

/// One submission and all the soak saw of it.
struct SoakBuild: Sendable {
    let label: String
    let kind: SoakKind
    let hostname: String
    var id: String?
    /// accepted, refused (the scheduler said no), unknown (no answer: it may or may not exist).
    var submit = "pending"
    var submitDetail = ""
    var cachedJobs = 0
    var lastState: Kiln_V1_BuildState = .unspecified
    /// The first terminal state seen, and when its answer came.
    var terminal: Kiln_V1_BuildState?
    var terminalAt: ContinuousClock.Instant?
    var failure = ""
    var cancelSent = false
    var cancelReply: Kiln_V1_BuildState?
    /// "ok", or what was wrong with the fetched artifact.
    var verification: String?
}

/// Everything the soak's tasks record, behind one lock.
final class SoakLedger: Sendable {
    struct State {
        var builds: [SoakBuild] = []
        var index: [String: Int] = [:]
        /// A build ID returned for two submissions.
        var idViolations: [String] = []
        /// A finished build shown in another state later (a cancelled one running or succeeded: resurrected).
        var stateViolations: [String] = []
        /// Anything else that should not happen to a build (a cancel of one's own build refused).
        var buildViolations: [String] = []
        /// Build IDs the admin saw that no submission of the soak got back.
        var unknownIDs: Set<String> = []
        var attempts: [UInt64] = []
        var verifyQueue: [String] = []
        var kills: [(target: String, at: Double, downtime: Double)] = []
        var crashes: [String] = []
        var restartFailures: [String] = []
        var droppedByIncarnation: [Int: UInt64] = [:]
        var schedulerRSS = SoakPeak()
        var schedulerHWM: UInt64 = 0
        /// The scheduler's peak VmRSS in each minute of the run (a trend, not only a peak).
        var schedulerRSSByMinute: [Int: UInt64] = [:]
        var agentRSS = SoakPeak()
        var disk: [String: SoakPeak] = [:]
        var largestObject: [String: UInt64] = [:]
        var objectCount: [String: Int] = [:]
        var hostile: [String: Int] = [:]
        var hostileForeign: [String] = []
        var stopping = false
    }

    let state = Mutex(State())
    let started = ContinuousClock.now

    var stopping: Bool { state.withLock { $0.stopping } }
    var elapsed: Double { Self.seconds(ContinuousClock.now - started) }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// A new submission; returns its index.
    func add(_ build: SoakBuild) -> Int {
        state.withLock { s in
            s.builds.append(build)
            return s.builds.count - 1
        }
    }

    func accepted(_ i: Int, id: String, cachedJobs: Int) {
        state.withLock { s in
            if let other = s.index[id] {
                s.idViolations.append("build ID \(id) was returned twice: for \(s.builds[other].label) and \(s.builds[i].label)")
            }
            s.index[id] = i
            s.unknownIDs.remove(id)
            s.builds[i].id = id
            s.builds[i].submit = "accepted"
            s.builds[i].cachedJobs = cachedJobs
        }
    }

    func submitEnded(_ i: Int, _ outcome: String, _ detail: String) {
        state.withLock { s in
            s.builds[i].submit = outcome
            s.builds[i].submitDetail = detail
        }
    }

    /// A build's state as an answer showed it. `sent`: when the question
    /// left (an answer to a question sent after a terminal state was
    /// known must show that state); `received`: when the answer came.
    func observe(_ id: String, _ state: Kiln_V1_BuildState, failure: String = "", sent: ContinuousClock.Instant,
                 received: ContinuousClock.Instant, source: String) {
        var verify = false
        self.state.withLock { s in
            guard let i = s.index[id] else {
                s.unknownIDs.insert(id)
                return
            }
            var b = s.builds[i]
            b.lastState = state
            if let t = b.terminal, let at = b.terminalAt {
                if state != t && (state.isTerminal || sent > at) {
                    s.stateViolations.append("\(b.label) (\(id)) was \(t.soakName), then \(source) showed it \(state.soakName)")
                }
            } else if state.isTerminal {
                b.terminal = state
                b.terminalAt = received
                b.failure = failure
                verify = state == .succeeded
            }
            s.builds[i] = b
            if verify { s.verifyQueue.append(id) }
        }
    }

    func sawAttempts(_ ids: [UInt64]) {
        guard !ids.isEmpty else { return }
        state.withLock { s in
            for id in ids where !s.attempts.contains(id) { s.attempts.append(id) }
            if s.attempts.count > 64 { s.attempts.removeFirst(s.attempts.count - 64) }
        }
    }

    var recentAttempts: [UInt64] { state.withLock { $0.attempts } }

    /// Accepted builds whose end has not been seen, of `kinds` (all when nil).
    func unsettled(_ kinds: Set<SoakKind>? = nil) -> [String] {
        state.withLock { s in
            s.builds.filter { $0.id != nil && $0.terminal == nil && (kinds?.contains($0.kind) ?? true) }.compactMap(\.id)
        }
    }

    func settledSample(_ count: Int, using rng: inout SplitMix64) -> [String] {
        let ids = state.withLock { s in s.builds.filter { $0.terminal != nil }.compactMap(\.id) }
        guard !ids.isEmpty else { return [] }
        return (0..<min(count, ids.count)).map { _ in ids[Int(rng.next() % UInt64(ids.count))] }
    }

    func build(_ id: String) -> SoakBuild? { state.withLock { s in s.index[id].map { s.builds[$0] } } }
    var builds: [SoakBuild] { state.withLock { $0.builds } }

    func violation(_ text: String) { state.withLock { $0.buildViolations.append(text) } }

    func nextToVerify() -> String? {
        state.withLock { s in s.verifyQueue.isEmpty ? nil : s.verifyQueue.removeFirst() }
    }

    var verifyPending: Int { state.withLock { $0.verifyQueue.count } }

    func verified(_ id: String, _ result: String) {
        state.withLock { s in
            if let i = s.index[id] { s.builds[i].verification = result }
        }
    }

    func cancelSent(_ id: String) { state.withLock { s in s.index[id].map { s.builds[$0].cancelSent = true } } }
    func cancelReplied(_ id: String, _ state: Kiln_V1_BuildState) {
        self.state.withLock { s in s.index[id].map { s.builds[$0].cancelReply = state } }
    }

    func hostile(_ what: String, _ n: Int = 1) { state.withLock { $0.hostile[what, default: 0] += n } }
}
