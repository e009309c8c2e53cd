import Foundation
import KilnTestSupport
import Protocol
import Synchronization

/// The soak's hostile peer: it holds a key in `allow/clients/` and acts as
/// an agent anyway. Whatever it sends on the agent port must be refused; on
/// the client port it may submit and follow its own builds, and nothing
/// else. It learns live attempt IDs (its own builds' status shows them, and
/// attempt IDs are small integers anyway) and answers them with hostile
/// trees, log floods, failures and keep-alives; it claims a million slots,
/// re-adopts attempts it never had, squats the routing ids of honest agents,
/// storms the port with new connections and sends oversized and junk
/// messages. Every text it sends carries `marker`, which must end up
/// nowhere in the scheduler's state or stores.
final class SoakHostile: Sendable {
    static let keyName = "hostile"
    let farm: FarmHarness
    let ledger: SoakLedger
    let marker: String
    /// Each stream as messages for attempt 0 (retargeted per attempt).
    private let streams: [(name: String, messages: [WireMessage])]
    private let agent = Mutex<(current: HostileAgent?, since: ContinuousClock.Instant)>((nil, .now))
    /// Welcomes, Assigns and Disconnects of closed HostileAgents.
    private let closed = Mutex((welcomes: 0, assigns: 0, disconnects: 0))

    private init(farm: FarmHarness, ledger: SoakLedger, marker: String, streams: [(name: String, messages: [WireMessage])]) {
        self.farm = farm
        self.ledger = ledger
        self.marker = marker
        self.streams = streams
    }

    /// Prepares the hostile streams: a tree whose hostname and files carry
    /// the marker, with a link out of the tree, and the stream-bounds attacks.
    static func make(_ farm: FarmHarness, ledger: SoakLedger, marker: String) async throws -> SoakHostile {
        let dir = "\(farm.dir)/hostile"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tar = "\(dir)/tree.tar", zst = tar + ".zst"
        _ = try await TreeFixture.run(["python3", "-c", """
            import io, sys, tarfile
            marker, path = sys.argv[1], sys.argv[2]
            t = tarfile.open(path, 'w', format=tarfile.PAX_FORMAT)
            for name in ['.', 'etc']:
                d = tarfile.TarInfo(name); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)
            for name, text in [('etc/hostname', 'pwned ' + marker + '\\n'), (marker, marker + '\\n')]:
                data = text.encode(); f = tarfile.TarInfo(name); f.size = len(data); f.mode = 0o4755
                t.addfile(f, io.BytesIO(data))
            l = tarfile.TarInfo('etc/escape'); l.type = tarfile.SYMTYPE; l.linkname = '/etc/kiln'; t.addfile(l)
            t.close()
            """, marker, tar])
        _ = try await TreeFixture.run(["zstd", "-q", "-1", tar, "-o", zst])
        var streams: [(name: String, messages: [WireMessage])] = [
            (name: "marked tree", messages: try await TreeStreamTests.streamMessages([UInt8](Data(contentsOf: URL(fileURLWithPath: zst))),
                                                                     attempt: 0, in: dir)),
        ]
        for attack in StreamBoundsTests.Attack.allCases {
            let bytes = try await attack.bytes(in: dir)
            streams.append((name: "\(attack)", messages: try await TreeStreamTests.streamMessages(bytes, attempt: 0, in: dir)))
        }
        try? FileManager.default.removeItem(atPath: dir)
        return SoakHostile(farm: farm, ledger: ledger, marker: marker, streams: streams)
    }

    var keyFile: String { "\(farm.dir)/\(Self.keyName).key" }
    var publicKeyFile: String { "\(farm.dir)/\(Self.keyName).pub" }

    /// What the scheduler gave it, over all its sessions: each must stay 0
    /// (a Welcome or an Assign means a client key became an agent).
    var welcomes: Int { closed.withLock { $0.welcomes } + (agent.withLock { $0.current }?.welcomes ?? 0) }
    var assigns: Int { closed.withLock { $0.assigns } + (agent.withLock { $0.current }?.assigns.count ?? 0) }
    var disconnects: Int { closed.withLock { $0.disconnects } + (agent.withLock { $0.current }?.disconnects.count ?? 0) }

    /// Runs until the ledger says stop; the client connection is its own.
    func run(seed: UInt64) async {
        var rng = SplitMix64(seed: seed)
        let client = try? await SchedulerClient.connect(
            context: farm.context, endpoint: try SchedulerEndpoint.clients(farm.endpoint),
            keys: try CurveKeyPair.load(secretKeyFile: keyFile), schedulerPublicKey: try CurveKeyPair.loadPublicKey("\(farm.dir)/scheduler.pub"))
        var lastSubmit = ContinuousClock.now - .seconds(60)
        var own = 0
        while !ledger.stopping {
            let roll = rng.unit()
            switch roll {
            case ..<0.16: await hello(&rng)
            case ..<0.30: await floodLogs(&rng)
            case ..<0.42: await hostileTree(&rng)
            case ..<0.50: await failJobs(&rng)
            case ..<0.58: await stall(&rng)
            case ..<0.64: await storm(&rng)
            case ..<0.70: await oversized(&rng)
            case ..<0.80: await junk(&rng)
            default:
                if let client { await clientSide(client, &rng, own: &own, lastSubmit: &lastSubmit) }
            }
            await soakPause(rng.between(0.2, 1.0)) { ledger.stopping }
        }
        await closeAgent()
        await client?.close()
    }

    // MARK: - The agent port

    /// The session: a Hello claiming a million slots, with attempts it never
    /// had to re-adopt, as its own id or an honest agent's (squatting the
    /// routing id, which libzmq gives the first connection that has it).
    /// Kept for a while, heartbeating and keeping its nonexistent jobs alive.
    private func hello(_ rng: inout SplitMix64) async {
        let (current, since) = agent.withLock { ($0.current, $0.since) }
        if let current, ContinuousClock.now - since < .seconds(15) {
            try? await current.hello(slots: 1_000_000, running: Array(ledger.recentAttempts.suffix(8)))
            ledger.hostile("hello")
            return
        }
        await closeAgent()
        let names = ["hostile", "agent-a", "agent-b", "agent-\(rng.next() % 1000)"]
        let name = names[Int(rng.next() % UInt64(names.count))]
        guard let fresh = try? await HostileAgent(farm, name: name, keyName: Self.keyName, slots: 1_000_000,
                                                  running: Array(ledger.recentAttempts.suffix(8))) else { return }
        fresh.keepAlive(true)
        agent.withLock { $0 = (fresh, .now) }
        ledger.hostile("hello")
        ledger.hostile("session as \(name == "hostile" || name.count > 7 ? "its own id" : name)")
    }

    private func closeAgent() async {
        guard let old = agent.withLock({ a -> HostileAgent? in
            defer { a.current = nil }
            return a.current
        }) else { return }
        closed.withLock {
            $0.welcomes += old.welcomes
            $0.assigns += old.assigns.count
            $0.disconnects += old.disconnects.count
        }
        await old.close()
    }

    /// Sends on the session (opening one first when there is none).
    private func send(_ body: Kiln_V1_Envelope.OneOf_Body, data: [UInt8]? = nil, _ rng: inout SplitMix64) async {
        if agent.withLock({ $0.current }) == nil { await hello(&rng) }
        guard let a = agent.withLock({ $0.current }) else { return }
        if let frames = try? Framing.encode(WireMessage(body, data: data)) { a.socket.post(frames) }
    }

    /// Targets: recent real attempts and numbers near them.
    private func targets(_ rng: inout SplitMix64, _ count: Int) -> [UInt64] {
        let known = ledger.recentAttempts
        guard let top = known.max() else { return (0..<count).map { _ in 1 + rng.next() % 64 } }
        return (0..<count).map { i in
            let back = rng.next() % 6
            return i % 2 == 0 ? known[Int(rng.next() % UInt64(known.count))] : top + 2 > back ? top + 2 - back : 1
        }
    }

    /// Log lines for attempts it does not hold: 64 lines of 1 KiB a message.
    private func floodLogs(_ rng: inout SplitMix64) async {
        for attempt in targets(&rng, 3) {
            var p = Kiln_V1_Progress()
            p.attemptID = attempt
            p.stageType = "org.osbuild.hostname"
            p.logLines = (0..<64).map { "\(marker) \($0) " + String(repeating: "x", count: 1000) }
            for _ in 0..<4 { await send(.progress(p), &rng) }
            ledger.hostile("log flood message", 4)
        }
    }

    /// A whole tree stream (chunks and StreamEnd) for an attempt.
    private func hostileTree(_ rng: inout SplitMix64) async {
        let (name, messages) = streams[Int(rng.next() % UInt64(streams.count))]
        for attempt in targets(&rng, 2) {
            for m in messages {
                var m = m
                switch m.envelope.body {
                case .streamChunk(var c):
                    c.attemptID = attempt
                    m.envelope.body = .streamChunk(c)
                case .streamEnd(var e):
                    e.attemptID = attempt
                    m.envelope.body = .streamEnd(e)
                default: break
                }
                await send(m.envelope.body!, data: m.data, &rng)
            }
            ledger.hostile("tree stream (\(name))")
        }
    }

    /// Build failures for attempts it does not hold.
    private func failJobs(_ rng: inout SplitMix64) async {
        for attempt in targets(&rng, 3) {
            var f = Kiln_V1_JobFailed()
            f.attemptID = attempt
            f.reason = "\(marker): failed by a client key"
            f.stageType = "org.osbuild.hostname"
            f.logTail = [marker]
            f.infrastructure = rng.next() % 2 == 0
            await send(.jobFailed(f), &rng)
            ledger.hostile("job failed")
        }
    }

    /// Holding jobs: keep-alives for live attempts, and a Hello that claims them.
    private func stall(_ rng: inout SplitMix64) async {
        for attempt in ledger.recentAttempts.suffix(8) {
            var p = Kiln_V1_Progress()
            p.attemptID = attempt
            await send(.progress(p), &rng)
            ledger.hostile("keep-alive")
        }
        if let a = agent.withLock({ $0.current }) {
            try? await a.hello(slots: 1_000_000, running: Array(ledger.recentAttempts.suffix(8)))
        }
    }

    /// A reconnect storm: 16 fresh connections that each say Hello and go.
    private func storm(_ rng: inout SplitMix64) async {
        var sockets: [ZMQSocketThread] = []
        for i in 0..<16 {
            guard let s = try? await rawSocket(port: .agents, routingID: "storm-\(rng.next() % 100_000)-\(i)") else { continue }
            var hello = Kiln_V1_Hello()
            hello.agentID = "storm"
            hello.arches = ["x86_64"]
            hello.slots = 1_000_000
            if let frames = try? Framing.encode(WireMessage(.hello(hello))) { s.post(frames) }
            sockets.append(s)
        }
        await soakPause(0.5) { false }
        for s in sockets { await s.close() }
        ledger.hostile("storm connection", sockets.count)
    }

    /// Messages past the bounds: a frame past ZMQ_MAXMSGSIZE (libzmq drops
    /// the connection), five frames (one too many), three frames of 7 MiB (past
    /// 20 MiB in all). Each is at most 21 MiB, so that the RSS check measures
    /// the scheduler, not libzmq holding one whole message (docs/operating.md).
    private func oversized(_ rng: inout SplitMix64) async {
        let port: SoakPort = rng.next() % 2 == 0 ? .agents : .clients
        let frames: [[UInt8]]
        let what: String
        switch rng.next() % 3 {
        case 0:
            frames = [[UInt8](repeating: 0x41, count: 17 << 20)]
            what = "frame past ZMQ_MAXMSGSIZE"
        case 1:
            frames = Array(repeating: Array(marker.utf8), count: 5)
            what = "five frames"
        default:
            frames = Array(repeating: [UInt8](repeating: 0x42, count: 7 << 20), count: 3)
            what = "21 MiB message"
        }
        guard let s = try? await rawSocket(port: port, routingID: "big-\(rng.next() % 100_000)") else { return }
        do {
            try await s.send(frames)
            ledger.hostile("oversized (\(what))")
        } catch {
            ledger.hostile("oversized not taken")
        }
        await soakPause(1.5) { false }
        await s.close()
    }

    /// Junk: random bytes, an envelope that is not a message, a client
    /// request on the agent port and an agent message on the client port.
    private func junk(_ rng: inout SplitMix64) async {
        var submit = Kiln_V1_SubmitRequest()
        submit.label = marker
        submit.manifestJson = Data(marker.utf8)
        var hello = Kiln_V1_Hello()
        hello.agentID = "junk"
        hello.arches = ["x86_64"]
        hello.slots = 1_000_000
        let sends: [(SoakPort, [[UInt8]])] = [
            (.agents, [rng.bytes(Int(1 + rng.next() % 4096))]),
            (.agents, [rng.bytes(64), rng.bytes(64)]),
            (.clients, [rng.bytes(Int(1 + rng.next() % 4096))]),
            (.agents, (try? Framing.encode(WireMessage(.submit(submit)))) ?? []),
            (.clients, (try? Framing.encode(WireMessage(.hello(hello)))) ?? []),
        ]
        for (port, frames) in sends {
            guard let s = try? await rawSocket(port: port, routingID: "junk-\(rng.next() % 100_000)") else { continue }
            if (try? await s.send(frames)) != nil { ledger.hostile("junk message") }
            await soakPause(0.2) { false }
            await s.close()
        }
    }

    enum SoakPort { case agents, clients }

    private func rawSocket(port: SoakPort, routingID: String) async throws -> ZMQSocketThread {
        let endpoint = port == .agents ? try SchedulerEndpoint.agents(farm.endpoint) : try SchedulerEndpoint.clients(farm.endpoint)
        var config = ZMQSocketConfiguration(.dealer, .connect(endpoint),
                                            curve: .client(keys: try CurveKeyPair.load(secretKeyFile: keyFile),
                                                           serverPublicKey: try CurveKeyPair.loadPublicKey("\(farm.dir)/scheduler.pub")))
        config.routingID = Array(routingID.utf8)
        config.sendTimeout = .seconds(5)
        return try await ZMQSocketThread.start(context: farm.context, configuration: config)
    }

    // MARK: - The client port

    /// What the key may do as a client (submit and follow its own builds,
    /// learning their attempt IDs), and what it may not: see or cancel
    /// another key's build.
    private func clientSide(_ client: SchedulerClient, _ rng: inout SplitMix64, own: inout Int,
                            lastSubmit: inout ContinuousClock.Instant) async {
        let mine = ledger.unsettled([.hostile])
        if mine.count < 2, ContinuousClock.now - lastSubmit > .seconds(15) {
            own += 1
            lastSubmit = .now
            let hostname = "soak-h\(own)"
            let i = ledger.add(SoakBuild(label: "soak hostile-\(own) \(hostname)", kind: .hostile, hostname: hostname))
            do {
                let r = try await client.soakSubmit(manifest: SoakManifests.manifest(hostname: hostname, kind: .hostile),
                                                    label: "soak hostile-\(own) \(hostname)")
                ledger.accepted(i, id: r.buildID, cachedJobs: Int(r.cachedJobs))
            } catch ClientError.refused(_, let message) {
                ledger.submitEnded(i, "refused", message)
            } catch {
                ledger.submitEnded(i, "unknown", "\(error)")
            }
            ledger.hostile("own build submitted")
        }
        for id in mine {
            if let s = try? await client.soakStatus(id).first {
                ledger.sawAttempts(s.jobs.filter { $0.onAgent && $0.attemptID != 0 }.map(\.attemptID))
            }
        }
        // A build of the honest client's, as if its ID had leaked.
        let foreign = ledger.builds.filter { $0.kind != .hostile }.compactMap(\.id)
        guard !foreign.isEmpty else { return }
        let id = foreign[Int(rng.next() % UInt64(foreign.count))]
        ledger.hostile("foreign build asked for")
        if let seen = try? await client.soakStatus(id), !seen.isEmpty {
            ledger.state.withLock { $0.hostileForeign.append("the hostile key saw build \(id)") }
        }
        do {
            let state = try await client.soakCancel(id)
            ledger.state.withLock { $0.hostileForeign.append("the hostile key's cancel of build \(id) was answered \(state.soakName)") }
        } catch ClientError.refused {
            ledger.hostile("foreign cancel refused")
        } catch {}
    }
}

/// The soak's manifests: a small tree built on an agent (a hostname, a
/// locale, 40 directories and 4 KiB of data that does not compress, so
/// that the stores have bytes to hold), archived with tar on the scheduler.
/// With `hang`, a stage hangs on the agents (`HangingStage.pausingStages`)
/// until the build's stage timeout or its cancel.
enum SoakManifests {
    static func manifest(hostname: String, kind: SoakKind, hang: Bool = false) -> [UInt8] {
        var seed: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in hostname.utf8 { seed = (seed ^ UInt64(b)) &* 0x100_0000_01b3 }
        var rng = SplitMix64(seed: seed)
        var stages: [[String: Any]] = [[
            "type": "org.kiln.files",
            "options": [
                "directories": (0..<40).map {
                    ["path": "/srv/soak/d\($0)", "mode": "0755", "user": "0", "group": "0", "parents": true] as [String: Any]
                },
                "files": [["path": "/srv/soak/payload", "mode": "0644", "user": "0", "group": "0",
                           "data": Data(rng.bytes(4 << 10)).base64EncodedString()] as [String: Any]],
            ] as [String: Any],
        ]]
        if kind == .fail { stages.insert(["type": "org.osbuild.timezone", "options": ["zone": "Mars/Olympus"]], at: 0) }
        if hang || kind == .timeout { stages.insert(contentsOf: HangingStage.pausingStages(), at: 0) }
        return FarmHarness.manifest(hostname: hostname, extraStages: stages)
    }
}
