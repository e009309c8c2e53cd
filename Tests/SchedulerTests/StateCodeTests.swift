import Protocol
import Testing

@testable import Scheduler

/// The scheduler's own states (memory and scheduler.sqlite) and the wire's:
/// a database written by an earlier Kiln must read back the same, and a
/// peer must see each state under its own name.
@Suite struct StateCodeTests {
    /// The codes in scheduler.sqlite since its first schema: changing one
    /// would make every stored build, job or event mean something else.
    @Test func storedCodesNeverChange() {
        let builds: [BuildState: Int] = [.queued: 1, .running: 2, .succeeded: 3, .failed: 4, .cancelled: 5]
        let jobs: [JobState: Int] = [
            .waiting: 1, .queued: 2, .assigned: 3, .running: 4, .streaming: 5, .succeeded: 6, .failed: 7, .cancelled: 8, .cached: 9,
        ]
        let events: [EventKind: Int] = [
            .queued: 1, .assigned: 2, .stageStarted: 3, .stageFinished: 4, .log: 5, .streamed: 6, .assembled: 7, .requeued: 8,
            .failed: 9, .succeeded: 10, .cancelled: 11, .cached: 12, .note: 13, .expired: 14,
        ]
        #expect(
            BuildState.allCases.count == builds.count && JobState.allCases.count == jobs.count
                && EventKind.allCases.count == events.count, "a new state takes a new code (never a used one), and this table gains it")
        for s in BuildState.allCases { #expect(s.stored == builds[s] && BuildState(stored: s.stored) == s) }
        for s in JobState.allCases { #expect(s.stored == jobs[s] && JobState(stored: s.stored) == s) }
        for k in EventKind.allCases { #expect(k.stored == events[k] && EventKind(stored: k.stored) == k) }
        // A code from a newer Kiln is not guessed at.
        #expect(BuildState(stored: 0) == nil && JobState(stored: 99) == nil && EventKind(stored: -1) == nil)
    }

    /// Each state goes on the wire as the protobuf value of the same name,
    /// and no two states share one.
    @Test func wireValuesAreTheSameNamesOneToOne() {
        func same<A, B>(_ a: A, _ b: B) -> Bool { "\(a)" == "\(b)" }
        #expect(BuildState.allCases.allSatisfy { same($0, $0.wire) })
        #expect(JobState.allCases.allSatisfy { same($0, $0.wire) })
        #expect(EventKind.allCases.allSatisfy { same($0, $0.wire) })
        #expect(Set(BuildState.allCases.map(\.wire)).count == BuildState.allCases.count)
        #expect(Set(JobState.allCases.map(\.wire)).count == JobState.allCases.count)
        #expect(Set(EventKind.allCases.map(\.wire)).count == EventKind.allCases.count)
        #expect(!BuildState.allCases.map(\.wire).contains(.unspecified))
    }
}
