import Foundation
import KilnTestSupport
import Protocol
import Synchronization

/// A peer on the agent port that speaks the protocol with the project's own
/// ZeroMQ and framing code but not honestly: it says Hello with whatever id
/// and slots it likes, takes the jobs it is given, heartbeats, and (when
/// told) keeps saying it is working on them, without ever building anything.
final class HostileAgent: Sendable {
    let name: String
    let socket: ZMQSocketThread
    private let state = Mutex(State())
    private let tasks = Mutex<[Task<Void, Never>]>([])

    struct State {
        var welcomes = 0
        var assigns: [Kiln_V1_Assign] = []
        var disconnects: [String] = []
        var cancels: [UInt64] = []
        /// Send a bare Progress for every held attempt with each heartbeat.
        var keepAlive = false
    }

    var welcomes: Int { state.withLock { $0.welcomes } }
    var assigns: [Kiln_V1_Assign] { state.withLock { $0.assigns } }
    var disconnects: [String] { state.withLock { $0.disconnects } }
    var cancels: [UInt64] { state.withLock { $0.cancels } }
    func keepAlive(_ on: Bool) { state.withLock { $0.keepAlive = on } }

    /// Connects with `keyName`'s key as routing id `name`, says Hello (unless
    /// `sayHello` is false: it then only squats the routing id) and heartbeats
    /// every 0.5 s until closed.
    init(_ farm: FarmHarness, name: String, keyName: String, slots: UInt32 = 1, arches: [String] = ["x86_64"],
         running: [UInt64] = [], sayHello: Bool = true) async throws {
        self.name = name
        var config = ZMQSocketConfiguration(.dealer, .connect(try SchedulerEndpoint.agents(farm.endpoint)),
                                            curve: .client(keys: try CurveKeyPair.load(secretKeyFile: "\(farm.dir)/\(keyName).key"),
                                                           serverPublicKey: try CurveKeyPair.loadPublicKey("\(farm.dir)/scheduler.pub")))
        config.routingID = Array(name.utf8)
        socket = try await ZMQSocketThread.start(context: farm.context, configuration: config)
        let reader = Task { [self] in
            for await m in socket.inbound {
                guard let (_, msg) = try? Framing.decode(m.frames, routed: false) else { continue }
                self.state.withLock { s in
                    switch msg.envelope.body {
                    case .welcome: s.welcomes += 1
                    case .assign(let a): s.assigns.append(a)
                    case .disconnect(let d): s.disconnects.append(d.reason)
                    case .cancel(let c): s.cancels.append(c.attemptID)
                    default: break
                    }
                }
            }
        }
        if sayHello { try await hello(slots: slots, arches: arches, running: running) }
        let beat = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(500))
                guard let self else { return }
                try? await self.send(.heartbeat(Kiln_V1_Heartbeat()))
                let (on, held) = self.state.withLock { s in (s.keepAlive, s.assigns.map(\.attemptID).filter { !s.cancels.contains($0) }) }
                for id in held where on {
                    var p = Kiln_V1_Progress()
                    p.attemptID = id
                    try? await self.send(.progress(p))
                }
            }
        }
        tasks.withLock { $0 = [reader, beat] }
    }

    func hello(slots: UInt32 = 1, arches: [String] = ["x86_64"], running: [UInt64] = []) async throws {
        var hello = Kiln_V1_Hello()
        hello.agentID = name
        hello.arches = arches
        hello.slots = slots
        hello.version = "hostile"
        hello.runningAttemptIds = running
        try await send(.hello(hello))
    }

    func send(_ body: Kiln_V1_Envelope.OneOf_Body) async throws {
        try await socket.send(try Framing.encode(WireMessage(body)))
    }

    func close() async {
        for t in tasks.withLock({ $0 }) { t.cancel() }
        await socket.close()
    }
}
