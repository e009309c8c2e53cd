import Foundation
import KilnTestSupport
import Protocol
import Testing

/// Issue 15, finding 9: memory exhaustion over ZeroMQ, against a real
/// `kiln scheduler` process. A peer with an allow-listed key sends the
/// message of 200 frames of 1 MiB (each frame within `ZMQ_MAXMSGSIZE`) on
/// each port, then floods both; the scheduler's peak resident memory
/// (`VmHWM`) stays bounded, it says so in a few log lines rather than one
/// per message, and it still answers a normal client. (libzmq gives no way
/// to limit the frames of a message: it holds each such message whole
/// before Kiln sees a frame, so several sent at once on several
/// connections cost that many times 200 MiB; docs/operating.md says so.)
@Suite(.serialized, .tags(.farm), .tier(.quick, .farm))
struct InboundFloodTests {
    /// `VmRSS` and `VmHWM` (peak) of process `pid`, in bytes.
    static func memory(_ pid: Int32) -> (rss: UInt64, peak: UInt64) {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        func field(_ name: String) -> UInt64 {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
            return (UInt64(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    @Test("200 × 1 MiB frames in one message and a flood: scheduler memory stays bounded and it keeps answering")
    func multipartBombAndFlood() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        let pid = try #require(farm.scheduler?.processIdentifier)
        let c = try await farm.client()
        _ = try await c.status()  // warmed up: the client path has run once
        let before = Self.memory(pid)

        var peers: [ZMQSocketThread] = []
        for endpoint in [try SchedulerEndpoint.agents(farm.endpoint), try SchedulerEndpoint.clients(farm.endpoint)] {
            var config = ZMQSocketConfiguration(.dealer, .connect(endpoint),
                                                curve: .client(keys: try CurveKeyPair.load(secretKeyFile: "\(farm.dir)/agent-b.key"),
                                                               serverPublicKey: try CurveKeyPair.loadPublicKey("\(farm.dir)/scheduler.pub")))
            config.routingID = Array("agent-b".utf8)
            config.sendTimeout = .seconds(60)
            config.highWaterMark = 100_000
            peers.append(try await ZMQSocketThread.start(context: farm.context, configuration: config))
        }
        let megabyte = [UInt8](repeating: 0x41, count: 1 << 20)
        var sentBytes = 0
        for (peer, side) in zip(peers, ["agent", "client"]) {
            try await peer.send(Array(repeating: megabyte, count: 200))
            sentBytes += 200 << 20
            // The scheduler says it dropped it: 201 frames with the identity its ROUTER adds.
            let seen = try await farm.eventually(.seconds(60)) { farm.log("scheduler").contains("dropped an \(side) message of 201 frame(s)") }
            #expect(seen, "the \(side) port drops the 200-frame message:\n\(farm.log("scheduler"))")
        }
        // The flood: status requests (each would be answered) and 1 MiB chunks for no attempt, as fast as libzmq takes them.
        var status = Kiln_V1_StatusRequest()
        status.limit = 1
        let request = try Framing.encode(WireMessage(.status(status)))
        var chunk = Kiln_V1_StreamChunk()
        chunk.attemptID = 424_242
        chunk.length = UInt32(megabyte.count)
        let junk = try Framing.encode(WireMessage(.streamChunk(chunk), data: megabyte))
        for _ in 0..<20_000 { peers[1].post(request) }
        for _ in 0..<500 {
            try await peers[0].send(junk)
            sentBytes += junk.reduce(0) { $0 + $1.count }
        }

        // A normal client is answered while (or just after) the flood is taken.
        let answered = try await farm.eventually(.seconds(60)) { (try? await c.status()) != nil }
        #expect(answered, "a normal client is still answered")
        let after = Self.memory(pid)
        let grown = after.peak > before.peak ? after.peak - before.peak : 0
        print("scheduler memory: RSS \(before.rss >> 20) → \(after.rss >> 20) MiB, peak \(before.peak >> 20) → \(after.peak >> 20) MiB "
              + "after \(sentBytes >> 20) MiB sent")
        // libzmq holds a multipart message until its last frame is in (200 MiB here) and Kiln then drops it
        // without a copy; before, Kiln copied all of it too and framing refused it only then (+400 MB).
        #expect(grown < 300 << 20, "peak RSS grew by \(grown >> 20) MiB")
        #expect(farm.scheduler?.isRunning == true)
        let dropped = farm.log("scheduler").split(separator: "\n").filter { $0.contains("dropped") }
        #expect(!dropped.isEmpty, "the drops are reported")
        #expect(dropped.count < 40, "rate-limited: \(dropped.count) lines")
        for peer in peers { await peer.close() }
        await c.close()
    }
}
