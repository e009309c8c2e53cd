import Foundation
import KilnTestSupport
import Protocol
import Testing

/// Who may talk to a scheduler, and what a hostile peer cannot do to it.
@Suite(.serialized, .tags(.farm), .tier(.quick, .farm))
struct SecurityTests {
    @Test("an agent whose key is not allow-listed is refused and the refusal is logged with its key")
    func unknownAgentRefused() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        try farm.startAgent("agent-x", keyName: "rogue")
        let rogue = try CurveKeyPair.loadPublicKey("\(farm.dir)/rogue.pub")
        #expect(try await farm.eventually(.seconds(30)) { farm.log("scheduler").contains(rogue) },
                "scheduler:\n\(farm.log("scheduler"))\nagent:\n\(farm.log("agent-x"))")
        #expect(farm.log("scheduler").contains("refused"))
        let c = try await farm.client()
        #expect(try await c.agents().isEmpty)
        await c.close()
    }

    @Test("a client without an allow-listed key, or with the wrong scheduler key, cannot submit")
    func clientsNeedTheRightKeys() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        let good = try await farm.client()
        #expect(try await good.status().isEmpty)
        for (key, server) in [("rogue", "scheduler"), ("client", "rogue")] {
            let c = try await farm.client(keyName: key, schedulerKeyName: server)
            await #expect(throws: ClientError.self) {
                _ = try await c.submit(manifestJSON: FarmHarness.manifest(hostname: "nope"), exports: ["archive"],
                                       arch: "x86_64", label: "should not land")
            }
            await c.close()
        }
        #expect(try await good.status().isEmpty, "nothing was submitted")
        await good.close()
    }

    @Test("a submit's notes become the build's first NOTE events, printable; too many or too long are refused and nothing lands")
    func submitNotes() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        let c = try await farm.client()
        let note = "cloud-init left out: \u{1B}[2J\u{1B}]0;owned\u{07}\u{202E}\u{2028}conflicts with firewalld"
        let build = try await c.submit(manifestJSON: FarmHarness.manifest(hostname: "farm-notes"), exports: ["archive"],
                                       arch: "x86_64", label: "notes", notes: [note, "second"]).buildID
        let notes = try await farm.events(c, build).filter { $0.kind == .note }.map(\.message)
        #expect(notes.count == 2, "\(notes)")
        #expect(notes.first?.hasPrefix("cloud-init left out: ") == true && notes.first?.hasSuffix("conflicts with firewalld") == true)
        let hidden: Set<Unicode.GeneralCategory> = [.control, .format, .lineSeparator, .paragraphSeparator]
        #expect(notes.allSatisfy { !$0.unicodeScalars.contains { hidden.contains($0.properties.generalCategory) } },
                "no terminal escapes reach another user's `kiln logs`: \(notes)")
        // The limits themselves are fine: 32 notes of 2048 bytes.
        let full = try await c.submit(manifestJSON: FarmHarness.manifest(hostname: "farm-notes"), exports: ["archive"],
                                      arch: "x86_64", label: "notes at the limit",
                                      notes: Array(repeating: String(repeating: "y", count: 2048), count: 32)).buildID
        #expect(try await farm.events(c, full).filter { $0.kind == .note }.count == 32)
        for bad in [Array(repeating: "n", count: 33), [String(repeating: "x", count: 2049)]] {
            await #expect(throws: ClientError.self) {
                _ = try await c.submit(manifestJSON: FarmHarness.manifest(hostname: "farm-notes-bad"), exports: ["archive"],
                                       arch: "x86_64", label: "too many notes", notes: bad)
            }
        }
        #expect(Set(try await c.status().map(\.label)) == ["notes", "notes at the limit"], "the refused submits left nothing behind")
        await c.close()
    }

    @Test("garbage, truncated, oversized and stale messages from an agent: the scheduler keeps serving")
    func hostilePeer() async throws {
        let farm = try FarmHarness()
        defer { farm.cleanUp() }
        try await farm.startScheduler()
        // An allow-listed peer that speaks nonsense on the agent socket.
        var config = ZMQSocketConfiguration(.dealer, .connect(try SchedulerEndpoint.agents(farm.endpoint)),
                                            curve: .client(keys: try CurveKeyPair.load(secretKeyFile: "\(farm.dir)/agent-b.key"),
                                                           serverPublicKey: try CurveKeyPair.loadPublicKey("\(farm.dir)/scheduler.pub")))
        config.routingID = Array("agent-b".utf8)
        config.maxMessageSize = 64 << 20
        let peer = try await ZMQSocketThread.start(context: farm.context, configuration: config)
        var rng = SystemRandomNumberGenerator()
        try await peer.send([(0..<64).map { _ in UInt8.random(in: 0...255, using: &rng) }])
        try await peer.send([Array("KILN1".utf8), [0x0a, 0xff, 0xff]])                       // truncated envelope
        try await peer.send([Array("KILN9".utf8), [0x08, 0x01]])                             // wrong signature
        try await peer.send([Array("KILN1".utf8), [UInt8](repeating: 7, count: 20 << 20)])   // oversized frame
        // A stale result: fenced off (answered with Cancel), nothing else happens.
        var stale = Kiln_V1_JobFailed()
        stale.attemptID = 999
        stale.reason = "late"
        var hello = Kiln_V1_Hello()
        hello.agentID = "agent-b"
        hello.arches = ["aarch64"]  // never picked for the x86_64 build below
        hello.slots = 1
        let peer2 = try await ZMQSocketThread.start(context: farm.context, configuration: {
            var c = config
            c.routingID = Array("agent-b2".utf8)
            return c
        }())
        hello.agentID = "agent-b2"
        try await peer2.send(try Framing.encode(WireMessage(.hello(hello))))
        try await peer2.send(try Framing.encode(WireMessage(.jobFailed(stale))))
        var sawCancel = false
        for await m in peer2.inbound {
            if let (_, msg) = try? Framing.decode(m.frames, routed: false), case .cancel(let cancel) = msg.envelope.body {
                #expect(cancel.attemptID == 999)
                sawCancel = true
                break
            }
        }
        #expect(sawCancel)
        // Still serving: a real agent builds a real build.
        try farm.startAgent("agent-a")
        let c = try await farm.client()
        let build = try await c.submit(manifestJSON: FarmHarness.manifest(hostname: "farm-hostile"), exports: ["archive"],
                                       arch: "x86_64", label: "after garbage").buildID
        let status = try #require(try await farm.finished(c, build))
        #expect(status.state == .succeeded, "\(status.failure)")
        #expect(farm.scheduler?.isRunning == true)
        await peer.close()
        await peer2.close()
        await c.close()
    }
}
