import Agent
import Foundation
import KilnTestSupport
import Protocol
import Synchronization
import Testing

/// Stage progress for one job reaches the scheduler in the order the
/// executor reported it (issue 16): the build's events say each stage
/// started, then finished, stage after stage.
@Suite(.serialized, .tags(.farm), .tier(.quick, .farm))
struct ProgressOrderTests {
    /// The poster alone, with a sink whose posts take varying time: what
    /// goes in comes out in the same order, and `finish` waits for all of it.
    @Test func theAgentsPosterKeepsTheOrderItWasGiven() async throws {
        let seen = Mutex<[UInt32]>([])
        let poster = OrderedPoster { message in
            guard case .progress(let p) = message.envelope.body else { return }
            // A post that suspends for a while, as a busy socket thread makes it.
            if p.stageIndex % 7 == 0 { try? await Task.sleep(for: .milliseconds(Int.random(in: 0...3))) }
            await Task.yield()
            seen.withLock { $0.append(p.stageIndex) }
        }
        for i in 0..<2000 {
            var p = Kiln_V1_Progress()
            p.stageIndex = UInt32(i)
            poster.send(WireMessage(.progress(p)))
        }
        await poster.finish()
        let order = seen.withLock { $0 }
        #expect(
            order == Array(0..<2000).map(UInt32.init),
            "out of order at \(zip(order, 0...).first { $0.0 != UInt32($0.1) }.map { "\($0)" } ?? "the end")")
    }

    /// Over the wire: a tree pipeline of 60 quick stages on a real agent; the
    /// build's events for that pipeline are started/finished, stage 1 to 62, in order.
    @Test func aJobsStageEventsArriveInOrder() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        let c = try await farm.client()
        try await farm.startAgents(["agent-a"], seenBy: c)
        let stages: [[String: Any]] = (0..<60).map { i in
            ["type": "org.kiln.files", "options": ["directories": [["path": "/srv/order/d\(i)", "parents": true] as [String: Any]]]]
        }
        let build = try await c.submit(
            manifestJSON: FarmHarness.manifest(hostname: "progress-order", extraStages: stages),
            exports: ["archive"], arch: "x86_64", label: "progress order"
        ).buildID
        let end = try #require(try await farm.finished(c, build))
        #expect(end.state == .succeeded, "\(farm.log("agent-a"))")
        let lines = try await farm.events(c, build).map(\.message).filter {
            $0.hasPrefix("tree stage ") && ($0.hasSuffix(" started") || $0.hasSuffix(" finished"))
        }
        let expected = (1...62).flatMap { i -> [String] in
            let type = i <= 60 ? "org.kiln.files" : i == 61 ? "org.osbuild.hostname" : "org.osbuild.locale"
            return ["tree stage \(i)/62 \(type) started", "tree stage \(i)/62 \(type) finished"]
        }
        #expect(
            lines == expected,
            "first difference: \(zip(lines, expected).first { $0 != $1 }.map { "\($0)" } ?? "lengths \(lines.count), \(expected.count)")")
        await c.close()
    }
}
