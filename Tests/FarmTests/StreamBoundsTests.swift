import Foundation
import KilnTestSupport
import Protocol
import Synchronization
import Testing

/// Issue 15, finding 8: what one tree stream may cost a real `kiln
/// scheduler`. A hostile agent (an allow-listed key, speaking the protocol
/// with Kiln's own framing) answers each `Assign` with a crafted stream; the
/// attempt fails with a reason that names the limit, nothing reaches the
/// store, the partial data is gone, and the scheduler keeps serving.
@Suite(.serialized, .tags(.farm), .tier(.quick, .farm))
struct StreamBoundsTests {
    /// Limits small enough for a test to pass them cheaply.
    static let limits = [
        "--stream-max-extracted-gib", "0.03125",  // 32 MiB
        "--stream-max-entries", "1000",
        "--stream-window-log-max", "22",  // 4 MiB: zstd -1 (the agents' level) uses 2^19
    ]

    /// A stream that is small on the wire and passes one limit.
    enum Attack: String, CaseIterable, CustomStringConvertible {
        /// 8 files of 8 MiB zeros: ≈ 20 KB compressed, 64 MiB extracted.
        case bomb
        /// 3000 empty files.
        case entries
        /// A small tar compressed with a 128 MiB window (`zstd --long=27` from a pipe, so the window is not
        /// shrunk to the input): within libzstd's own default cap, past the configured one.
        case window

        var description: String { rawValue }

        /// The configuration key the refusal must name.
        var key: String {
            switch self {
            case .bomb: "stream-max-extracted-gib"
            case .entries: "stream-max-entries"
            case .window: "stream-window-log-max"
            }
        }

        func bytes(in directory: String) async throws -> [UInt8] {
            let tar = "\(directory)/\(rawValue).tar", zst = tar + ".zst"
            try await TreeFixture.run(["python3", "-c", """
                import io, sys, tarfile
                kind, path = sys.argv[1], sys.argv[2]
                t = tarfile.open(path, 'w', format=tarfile.PAX_FORMAT)
                d = tarfile.TarInfo('.'); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)
                if kind == 'bomb':
                    for i in range(8):
                        f = tarfile.TarInfo('zeros-%d' % i); f.size = 8 << 20; t.addfile(f, io.BytesIO(bytes(8 << 20)))
                elif kind == 'entries':
                    for i in range(3000):
                        t.addfile(tarfile.TarInfo('f%05d' % i), io.BytesIO(b''))
                else:
                    f = tarfile.TarInfo('etc-hostname'); f.size = 5; t.addfile(f, io.BytesIO(b'evil\\n'))
                t.close()
                """, rawValue, tar])
            switch self {
            case .window:
                try await TreeFixture.run(["sh", "-c", "zstd -q --long=27 -c < \"$0\" > \"$1\"", tar, zst])
            default:
                try await TreeFixture.run(["zstd", "-q", "-1", tar, "-o", zst])
            }
            return try [UInt8](Data(contentsOf: URL(fileURLWithPath: zst)))
        }
    }

    @Test("a zstd bomb, too many entries and a huge zstd window are refused with their reason; disk stays bounded; the scheduler keeps serving")
    func hostileStreamsAreRefused() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler(extra: Self.limits)
        let c = try await farm.client()
        let store = "\(farm.dir)/scheduler/store"
        var peakStoreBytes: UInt64 = 0
        for attack in Attack.allCases {
            let bytes = try await attack.bytes(in: farm.dir)
            #expect(bytes.count < 1 << 20, "\(attack): small on the wire (\(bytes.count) bytes)")
            let agent = try await StreamingHostileAgent.start(farm, name: "agent-b", stream: bytes)
            let build = try await c.submit(manifestJSON: FarmHarness.manifest(hostname: "farm-\(attack)"), exports: ["archive"],
                                           arch: "x86_64", label: "\(attack)").buildID
            // Disk use is sampled while the attempts run: the limit holds during extraction, not only after.
            let sampler = Task {
                var peak: UInt64 = 0
                while !Task.isCancelled {
                    peak = max(peak, Self.diskUsage(store))
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return peak
            }
            let status = try #require(try await farm.finished(c, build), "\(attack): the build ends")
            sampler.cancel()
            peakStoreBytes = max(peakStoreBytes, await sampler.value)
            #expect(status.state == .failed, "\(attack): \(status.state)")
            let events = try await farm.events(c, build).map(\.message).joined(separator: "\n")
            #expect(events.contains(attack.key), "\(attack): the reason names the limit:\n\(events)")
            let streamsSent = agent.streamsSent.load(ordering: .relaxed)
            #expect(streamsSent >= 1, "\(attack): the hostile stream was sent")
            // The build fails as soon as the attempt is refused; the download's
            // own clean-up (spool, partial tree) ends on its thread a moment later.
            let cleaned = await farm.eventually(.seconds(30)) {
                ((try? FileManager.default.contentsOfDirectory(atPath: "\(store)/tmp")) ?? []).isEmpty
            }
            let left = (try? FileManager.default.contentsOfDirectory(atPath: "\(store)/tmp")) ?? []
            #expect(cleaned, "\(attack): no partial tree or spool is left: \(left) \(events)")
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: "\(store)/objects")) ?? []).isEmpty,
                    "\(attack): nothing was stored")
            await agent.stop()
        }
        // 32 MiB of extracted data at most per attempt, with a little slack for directories and a spool.
        print("peak store use during the hostile streams: \(peakStoreBytes >> 10) KiB")
        #expect(peakStoreBytes < 40 << 20, "peak store use \(peakStoreBytes) bytes")
        // Still serving: an honest agent builds the same kind of build.
        try farm.startAgent("agent-a")
        let good = try await c.submit(manifestJSON: FarmHarness.manifest(hostname: "farm-after-bombs"), exports: ["archive"],
                                      arch: "x86_64", label: "honest").buildID
        let status = try #require(try await farm.finished(c, good))
        #expect(status.state == .succeeded, "\(status.failure)")
        #expect(farm.scheduler?.isRunning == true)
        await c.close()
    }

    @Test("credit is not granted when the store's filesystem lacks the free space to keep; the attempt fails saying so")
    func freeSpaceIsCheckedBeforeCredit() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        // No filesystem here has a million GiB free.
        try await farm.startScheduler(extra: ["--store-free-reserve-gib", "1000000"])
        try farm.startAgent("agent-a")
        let c = try await farm.client()
        let build = try await c.submit(manifestJSON: FarmHarness.manifest(hostname: "farm-full"), exports: ["archive"],
                                       arch: "x86_64", label: "no room").buildID
        let status = try #require(try await farm.finished(c, build))
        #expect(status.state == .failed)
        let events = try await farm.events(c, build).map(\.message).joined(separator: "\n")
        #expect(events.contains("store-free-reserve-gib"), "\(events)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: "\(farm.dir)/scheduler/store/objects")) ?? []).isEmpty)
        await c.close()
    }

    /// Bytes allocated under `path` (`du`), following nothing.
    static func diskUsage(_ path: String) -> UInt64 {
        var total: UInt64 = 0
        guard let walk = FileManager.default.enumerator(atPath: path) else { return 0 }
        for case let name as String in walk {
            var st = stat()
            if lstat("\(path)/\(name)", &st) == 0 { total += UInt64(st.st_blocks) * 512 }
        }
        return total
    }
}

/// An agent that speaks the protocol and answers every `Assign` with the
/// same crafted stream, sent in chunks within the credit it was given.
final class StreamingHostileAgent: Sendable {
    let socket: ZMQSocketThread
    let streamsSent = Atomic(0)
    private let tasks = Mutex<[Task<Void, Never>]>([])

    private init(socket: ZMQSocketThread) { self.socket = socket }

    static func start(_ farm: FarmHarness, name: String, stream: [UInt8]) async throws -> StreamingHostileAgent {
        var config = ZMQSocketConfiguration(.dealer, .connect(try SchedulerEndpoint.agents(farm.endpoint)),
                                            curve: .client(keys: try CurveKeyPair.load(secretKeyFile: "\(farm.dir)/\(name).key"),
                                                           serverPublicKey: try CurveKeyPair.loadPublicKey("\(farm.dir)/scheduler.pub")))
        config.routingID = Array(name.utf8)
        let agent = StreamingHostileAgent(socket: try await ZMQSocketThread.start(context: farm.context, configuration: config))
        var hello = Kiln_V1_Hello()
        hello.agentID = name
        hello.arches = ["x86_64"]
        hello.slots = 1
        try await agent.send(WireMessage(.hello(hello)))
        let socket = agent.socket, scratch = farm.dir
        agent.tasks.withLock { tasks in
            tasks.append(Task {
                var sent: Set<UInt64> = []
                for await raw in socket.inbound {
                    guard let (_, message) = try? Framing.decode(raw.frames, routed: false) else { continue }
                    // Credit follows Assign: the scheduler is ready for this attempt's chunks.
                    guard case .credit(let credit) = message.envelope.body, !sent.contains(credit.attemptID) else { continue }
                    sent.insert(credit.attemptID)
                    // Chunks of 64 KiB and StreamEnd, as StreamSender makes them (the streams are far below the credit).
                    let messages = (try? await TreeStreamTests.streamMessages(stream, attempt: credit.attemptID, in: scratch)) ?? []
                    for message in messages {
                        if let frames = try? Framing.encode(message) { socket.post(frames) }
                    }
                    agent.streamsSent.add(1, ordering: .relaxed)
                }
            })
            tasks.append(Task {
                while !Task.isCancelled {
                    socket.post((try? Framing.encode(WireMessage(.heartbeat(Kiln_V1_Heartbeat())))) ?? [])
                    try? await Task.sleep(for: .milliseconds(500))
                }
            })
        }
        return agent
    }

    func send(_ message: WireMessage) async throws {
        try await socket.send(try Framing.encode(message))
    }

    /// Says goodbye (the scheduler stops dispatching to it at once) and closes.
    func stop() async {
        var d = Kiln_V1_Disconnect()
        d.reason = "test over"
        try? await send(WireMessage(.disconnect(d)))
        for t in tasks.withLock({ $0 }) { t.cancel() }
        await socket.close()
    }
}
