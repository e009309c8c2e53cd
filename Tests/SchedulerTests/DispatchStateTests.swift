import Foundation
import Protocol
import Testing

@testable import Scheduler

/// The scheduler's decisions, driven in-process (InProcessFarm): who gets a
/// job, what a lost lease does, how many tries a job gets, what is built
/// once for many, what is not built at all, what a cancel stops, and what a
/// restart resumes. No sockets, no processes; time moves when the test says.
@Suite struct DispatchStateTests {
    let a: [UInt8] = [0xA1]
    let b: [UInt8] = [0xB2]

    @Test("an agent's Assign, its streamed tree, Ack: the build succeeds on that agent")
    func assignStreamSucceed() async throws {
        let farm = try await InProcessFarm()
        defer { farm.remove() }
        try await farm.hello("agent-a", on: a)
        let build = try await farm.submit(hostname: "one")
        let assign = try await farm.assignment(to: a)
        #expect(assign.buildID == build.buildID && assign.export == "tree" && assign.arch == "x86_64")
        try await farm.streamTree(from: a, attempt: assign.attemptID)
        let done = try await farm.until(build.buildID, is: .succeeded)
        let tree = try #require(done.jobs.first { $0.onAgent })
        #expect(tree.agentID == "agent-a" && tree.attempts == 1)
    }

    @Test("a lease that runs out requeues the job on another agent; the first attempt's late results are fenced off")
    func leaseExpiryRequeuesAndFences() async throws {
        let farm = try await InProcessFarm(leaseMS: 10_000)
        defer { farm.remove() }
        try await farm.hello("agent-a", on: a)
        let build = try await farm.submit(hostname: "lease")
        let first = try await farm.assignment(to: a)
        try await farm.hello("agent-b", on: b)
        // Agent a makes no progress past its lease (its heartbeats keep it online, but they are not progress).
        await farm.advance(ms: 10_001, alive: [a, b])
        #expect(try await farm.cancel(to: a).attemptID == first.attemptID, "the stale attempt is called off")
        let second = try await farm.assignment(to: b)
        #expect(second.attemptID != first.attemptID && second.jobID == first.jobID)
        // Agent a's late stream for its fenced attempt: answered with Cancel, nothing stored from it.
        await farm.sendEnd(from: a, attempt: first.attemptID, length: 1, sha256: Data(repeating: 0, count: 32))
        #expect(try await farm.cancel(to: a).attemptID == first.attemptID)
        try await farm.streamTree(from: b, attempt: second.attemptID)
        let done = try await farm.until(build.buildID, is: .succeeded)
        let tree = try #require(done.jobs.first { $0.onAgent })
        #expect(tree.agentID == "agent-b" && tree.attempts == 2)
        let events = try await farm.events(build.buildID)
        #expect(events.contains { $0.kind == .requeued && $0.message.contains("lease expired") })
    }

    @Test("a job whose every attempt loses its lease fails the build after the attempt limit, naming each attempt")
    func attemptLimit() async throws {
        let farm = try await InProcessFarm(maxAttempts: 2, leaseMS: 10_000)
        defer { farm.remove() }
        try await farm.hello("agent-a", on: a)
        let build = try await farm.submit(hostname: "limit")
        let first = try await farm.assignment(to: a)
        await farm.advance(ms: 10_001, alive: [a])
        let second = try await farm.assignment(to: a)
        #expect(second.attemptID != first.attemptID, "with no other agent, the same one is tried again")
        await farm.advance(ms: 10_001, alive: [a])
        let failed = try await farm.until(build.buildID, is: .failed)
        #expect(failed.jobs.first { $0.onAgent }?.attempts == 2)
        #expect(failed.failure.contains("lease expired"), "\(failed.failure)")
        #expect(farm.mailbox.all(for: a) { if case .assign = $0 { true } else { false } }.isEmpty, "no third attempt")
    }

    @Test("two builds that need one tree at once: one attempt builds it for both")
    func identicalJobsMerge() async throws {
        let farm = try await InProcessFarm()
        defer { farm.remove() }
        try await farm.hello("agent-a", on: a, slots: 2)
        let first = try await farm.submit(hostname: "same")
        let second = try await farm.submit(hostname: "same")
        let assign = try await farm.assignment(to: a)
        try await farm.streamTree(from: a, attempt: assign.attemptID)
        for id in [first.buildID, second.buildID] { _ = try await farm.until(id, is: .succeeded) }
        #expect(farm.mailbox.all(for: a) { if case .assign = $0 { true } else { false } }.isEmpty, "one Assign for both builds")
        let events = try await farm.events(second.buildID)
        #expect(events.contains { $0.kind == .cached })
    }

    @Test("a tree already stored is not built again: the job is cached at submit and nothing is assigned")
    func cachedAtSubmit() async throws {
        let farm = try await InProcessFarm()
        defer { farm.remove() }
        try await farm.hello("agent-a", on: a)
        let first = try await farm.submit(hostname: "cached")
        try await farm.streamTree(from: a, attempt: try await farm.assignment(to: a).attemptID)
        _ = try await farm.until(first.buildID, is: .succeeded)
        let again = try await farm.submit(hostname: "cached")
        #expect(again.cachedJobs == 1, "its one tree job; the export runs on the scheduler")
        let done = try await farm.until(again.buildID, is: .succeeded)
        #expect(done.jobs.first { $0.onAgent }?.state == .cached)
        #expect(farm.mailbox.all(for: a) { if case .assign = $0 { true } else { false } }.isEmpty)
    }

    @Test("cancel stops the running attempt on its agent, and its late stream stores nothing")
    func cancelStopsTheAttempt() async throws {
        let farm = try await InProcessFarm()
        defer { farm.remove() }
        try await farm.hello("agent-a", on: a)
        let build = try await farm.submit(hostname: "cancel")
        let assign = try await farm.assignment(to: a)
        let reply = try await farm.scheduler.cancel(buildID: build.buildID)
        #expect(reply.state == .cancelled)
        #expect(try await farm.cancel(to: a).attemptID == assign.attemptID)
        await farm.sendEnd(from: a, attempt: assign.attemptID, length: 1, sha256: Data(repeating: 0, count: 32))
        #expect(try await farm.cancel(to: a).attemptID == assign.attemptID, "a stream for a cancelled attempt is refused")
        let status = try await farm.status(build.buildID)
        #expect(status.state == .cancelled && status.jobs.allSatisfy { $0.state == .cancelled })
        // The agent's slot is free again: the next build goes to it.
        let next = try await farm.submit(hostname: "after-cancel")
        #expect(try await farm.assignment(to: a).buildID == next.buildID)
    }

    @Test("after a restart from the store, a running attempt is re-adopted when its agent says Hello with it, and the build finishes")
    func restartResumes() async throws {
        let before = try await InProcessFarm()
        defer { before.remove() }
        try await before.hello("agent-a", on: a)
        let build = try await before.submit(hostname: "restart")
        let assign = try await before.assignment(to: a)
        let queued = try await before.submit(hostname: "restart-queued")  // waits: agent a has one slot

        // A new scheduler on the same state: what it knows comes from SQLite alone.
        let after = try await InProcessFarm(reopening: before)
        let welcome = try await after.hello("agent-a", on: a, running: [assign.attemptID])
        #expect(welcome.epoch == 2, "the second start of this state")
        #expect(
            after.mailbox.all(for: a) { if case .cancel = $0 { true } else { false } }.isEmpty,
            "the running attempt is adopted, not cancelled")
        try await after.streamTree(from: a, attempt: assign.attemptID)
        _ = try await after.until(build.buildID, is: .succeeded)
        // The build that was queued before the restart is assigned after it.
        let next = try await after.assignment(to: a)
        #expect(next.buildID == queued.buildID && next.attemptID > assign.attemptID, "attempt ids go on from the stored ones")
        try await after.streamTree(from: a, attempt: next.attemptID)
        _ = try await after.until(queued.buildID, is: .succeeded)
    }

    @Test("the retention pass forgets the records of trees that left the store; a tree still there keeps its record")
    func treeRecordsFollowTheStore() async throws {
        let farm = try await InProcessFarm()
        defer { farm.remove() }
        try await farm.hello("agent-a", on: a)
        var trees: [String] = []
        for host in ["gone", "kept"] {
            let build = try await farm.submit(hostname: host)
            try await farm.streamTree(from: a, attempt: try await farm.assignment(to: a).attemptID)
            let done = try await farm.until(build.buildID, is: .succeeded)
            trees.append(try #require(done.jobs.first { $0.onAgent }?.pipelineID))
        }
        let records = await farm.scheduler.records
        _ = try await Deadline.until("both trees recorded") { try await records.treeRecords().count == 2 ? true : nil }
        // Pruned by the store's cap, or removed by hand: the tree is gone, its record is not yet.
        try FileManager.default.removeItem(atPath: "\(farm.dir)/store/objects/\(trees[0])")
        await farm.advance(ms: 60_001, alive: [a])
        let left = try await Deadline.until("the gone tree's record forgotten") {
            let ids = try await records.treeRecords().map(\.pipelineID)
            return ids.count == 1 ? ids : nil
        }
        #expect(left == [trees[1]])
    }
}
