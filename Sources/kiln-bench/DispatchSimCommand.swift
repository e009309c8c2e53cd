import ArgumentParser
import Crypto
import Foundation
import KilnCLI
import Protocol
import Synchronization

/// `kiln-bench dispatch-sim` (used by ops/bench/dispatch): many simulated
/// agents on real CURVE connections and a client that submits no-op builds,
/// measuring the scheduler's dispatch throughput and latency. A simulated
/// agent answers each Assign with the stream of an empty tree (one chunk),
/// so every job takes the scheduler's full path: commit, Assign, Credit,
/// chunk, verify, extract, store, Ack.
struct DispatchSimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dispatch-sim", abstract: "Benchmark helper: simulated agents and no-op jobs.")

    @Option var scheduler: String
    @Option(help: "Directory with scheduler.pub, client.key and sim-N.key (made by --make-keys).") var keys: String
    @Flag(help: "Only write the keys (and allow/agents/sim-*.pub, allow/admins/client.pub) and exit.") var makeKeys = false
    @Option var agents = 200
    @Option(help: "Slots each simulated agent offers.") var slots = 1
    @Option var builds = 100
    @Option var jobsPerBuild = 100
    @Option(help: "Latency phase: builds submitted one at a time at this interval.") var latencyBuilds = 100
    @Option var latencyJobs = 10
    @Option var latencyIntervalMs = 50
    @Option(help: "Idle phase: seconds with all agents connected and no jobs.") var idleSeconds = 20
    @Option(help: "PID of the scheduler, for its CPU use while agents idle.") var schedulerPid: Int32?

    func run() async throws {
        if makeKeys {
            for folder in ["agents", "admins"] {
                try FileManager.default.createDirectory(atPath: "\(keys)/allow/\(folder)", withIntermediateDirectories: true)
            }
            for name in ["scheduler", "client"] + (0..<agents).map({ "sim-\($0)" }) {
                _ = try CurveKeyPair.generate().write(prefix: "\(keys)/\(name)")
                // The measuring client sees the whole farm: an admin.
                let folder = name == "client" ? "admins" : "agents"
                if name != "scheduler" {
                    try FileManager.default.copyItem(atPath: "\(keys)/\(name).pub", toPath: "\(keys)/allow/\(folder)/\(name).pub")
                }
            }
            return
        }
        let tree = try Self.emptyTreeStream()
        let context = try ZMQContext()
        let serverKey = try CurveKeyPair.loadPublicKey("\(keys)/scheduler.pub")
        let stats = SimStats()
        var sims: [SimAgent] = []
        for i in 0..<agents {
            sims.append(
                try await SimAgent.start(
                    context: context, endpoint: try SchedulerEndpoint.agents(scheduler),
                    name: "sim-\(i)", keys: try CurveKeyPair.load(secretKeyFile: "\(keys)/sim-\(i).key"),
                    serverKey: serverKey, tree: tree, slots: slots, stats: stats))
        }
        let client = try await SchedulerClient.connect(
            context: context, endpoint: try SchedulerEndpoint.clients(scheduler),
            keys: try CurveKeyPair.load(secretKeyFile: "\(keys)/client.key"),
            schedulerPublicKey: serverKey)
        while try await client.agents().filter({ $0.state == .online }).count < agents {
            try await Task.sleep(for: .milliseconds(100))
        }
        var result: [String: Double] = ["agents": Double(agents), "slots": Double(slots)]

        // Idle: heartbeats only.
        let cpu0 = schedulerPid.map(Self.cpuSeconds)
        try await Task.sleep(for: .seconds(idleSeconds))
        if let pid = schedulerPid, let c0 = cpu0 {
            result["idle_cpu_percent"] = (Self.cpuSeconds(pid) - c0) / Double(idleSeconds) * 100
        }

        // Latency: small builds at a steady rate on an idle farm.
        stats.reset()
        var serial = 0
        for _ in 0..<latencyBuilds {
            serial += 1
            let t = ContinuousClock.now
            let reply = try await client.submit(
                manifestJSON: Self.manifest(serial, jobs: latencyJobs), exports: Self.exports(latencyJobs),
                arch: "x86_64", label: "latency \(serial)")
            stats.submitted(reply.buildID, at: t)
            try await Task.sleep(for: .milliseconds(latencyIntervalMs))
        }
        try await stats.waitAcks(latencyBuilds * latencyJobs)
        let lat = stats.latenciesMS().sorted()
        result["latency_jobs"] = Double(lat.count)
        result["latency_p50_ms"] = Self.percentile(lat, 0.5)
        result["latency_p99_ms"] = Self.percentile(lat, 0.99)
        result["latency_max_ms"] = lat.last ?? 0

        // Throughput: many big builds at once.
        stats.reset()
        let t0 = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for b in 0..<builds {
                let n = serial + 1 + b
                group.addTask {
                    let t = ContinuousClock.now
                    let reply = try await client.submit(
                        manifestJSON: Self.manifest(n, jobs: jobsPerBuild),
                        exports: Self.exports(jobsPerBuild), arch: "x86_64", label: "throughput \(n)")
                    stats.submitted(reply.buildID, at: t)
                }
            }
            try await group.waitForAll()
        }
        try await stats.waitAcks(builds * jobsPerBuild)
        let secs = (stats.lastAck() - t0).seconds
        result["throughput_jobs"] = Double(builds * jobsPerBuild)
        result["throughput_seconds"] = secs
        result["throughput_jobs_per_second"] = Double(builds * jobsPerBuild) / secs
        let (service, gap) = stats.medians()
        result["throughput_agent_assign_to_ack_p50_ms"] = service
        result["throughput_agent_ack_to_next_assign_p50_ms"] = gap
        let all = stats.latenciesMS().sorted()
        result["saturated_queue_to_assign_p99_ms"] = Self.percentile(all, 0.99)

        let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
        for s in sims { await s.close() }
        await client.close()
    }

    static func exports(_ n: Int) -> [String] { (0..<n).map { "t\($0)" } }

    /// n tree pipelines of one hostname stage each, unique per build.
    static func manifest(_ build: Int, jobs: Int) -> [UInt8] {
        let pipelines: [[String: Any]] = (0..<jobs).map { j in
            ["name": "t\(j)", "stages": [["type": "org.osbuild.hostname", "options": ["hostname": "b\(build)-j\(j)"]]]]
        }
        return [UInt8](try! JSONSerialization.data(withJSONObject: ["version": "2", "pipelines": pipelines, "sources": [:] as [String: Any]]))
    }

    static func emptyTreeStream() throws -> [UInt8] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-sim-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/tar")
        p.arguments = ["--format=pax", "--zstd", "-C", dir, "-cf", "-", "."]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return [UInt8](data)
    }

    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = s.lastIndex(of: ")")
        else { return 0 }
        let f = s[s.index(after: close)...].split(separator: " ")
        // Fields after the command: state is 0; utime 11, stime 12.
        let ticks = (Double(f[11]) ?? 0) + (Double(f[12]) ?? 0)
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
    }
}

/// What the simulated agents saw.
final class SimStats: Sendable {
    private let state = Mutex<
        (
            submitted: [String: ContinuousClock.Instant], assigned: [(String, ContinuousClock.Instant)],
            acks: Int, lastAck: ContinuousClock.Instant, service: [Double], gaps: [Double]
        )
    >(([:], [], 0, .now, [], []))

    func reset() { state.withLock { $0 = ([:], [], 0, .now, [], []) } }
    /// Assign → Ack on one agent, and Ack → next Assign, in ms.
    func agentTimes(service: Double?, gap: Double?) {
        state.withLock { s in
            if let service { s.service.append(service) }
            if let gap { s.gaps.append(gap) }
        }
    }
    func medians() -> (service: Double, gap: Double) {
        state.withLock { s in
            (DispatchSimCommand.percentile(s.service.sorted(), 0.5), DispatchSimCommand.percentile(s.gaps.sorted(), 0.5))
        }
    }
    func submitted(_ build: String, at t: ContinuousClock.Instant) { state.withLock { $0.submitted[build] = t } }
    func assigned(_ build: String) {
        let t = ContinuousClock.now
        state.withLock { $0.assigned.append((build, t)) }
    }
    func acked() {
        let t = ContinuousClock.now
        state.withLock {
            $0.acks += 1
            $0.lastAck = t
        }
    }
    func lastAck() -> ContinuousClock.Instant { state.withLock { $0.lastAck } }

    /// Submit (request sent) → Assign received, per job, in ms.
    func latenciesMS() -> [Double] {
        state.withLock { s in s.assigned.compactMap { b, t in s.submitted[b].map { (t - $0).seconds * 1000 } } }
    }

    func waitAcks(_ n: Int) async throws {
        var last = (0, ContinuousClock.now)
        while true {
            let acks = state.withLock { $0.acks }
            if acks >= n { return }
            if acks != last.0 { last = (acks, .now) }
            if ContinuousClock.now - last.1 > .seconds(60) {
                throw CLIError.badInput("dispatch-sim: stuck at \(acks) of \(n) acknowledged jobs")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// One simulated agent: Hello, heartbeats, and for each Assign the stream
/// of an empty tree once credit allows.
final class SimAgent: Sendable {
    let socket: ZMQSocketThread
    let tasks: [Task<Void, Never>]

    private init(socket: ZMQSocketThread, tasks: [Task<Void, Never>]) {
        self.socket = socket
        self.tasks = tasks
    }

    static func start(
        context: ZMQContext, endpoint: String, name: String, keys: CurveKeyPair, serverKey: String,
        tree: [UInt8], slots: Int, stats: SimStats
    ) async throws -> SimAgent {
        var config = ZMQSocketConfiguration(.dealer, .connect(endpoint), curve: .client(keys: keys, serverPublicKey: serverKey))
        // As a real agent: the scheduler picks the routing id.
        config.sendTimeout = nil
        let socket = try await ZMQSocketThread.start(context: context, configuration: config, name: "sim")
        func post(_ body: Kiln_V1_Envelope.OneOf_Body, data: [UInt8]? = nil) {
            if let f = try? Framing.encode(WireMessage(body, data: data)) { socket.post(f) }
        }
        var hello = Kiln_V1_Hello()
        hello.agentID = name
        hello.arches = ["x86_64"]
        hello.slots = UInt32(slots)
        post(.hello(hello))
        let digest = Array(SHA256.hash(data: tree))
        let reader = Task {
            var builds: [UInt64: String] = [:]
            var sent = Set<UInt64>()
            var assignedAt: [UInt64: ContinuousClock.Instant] = [:]
            var lastAck: ContinuousClock.Instant?
            for await m in socket.inbound {
                guard let (_, msg) = try? Framing.decode(m.frames, routed: false) else { continue }
                switch msg.envelope.body {
                case .assign(let a):
                    builds[a.attemptID] = a.buildID
                    stats.assigned(a.buildID)
                    assignedAt[a.attemptID] = .now
                    stats.agentTimes(service: nil, gap: lastAck.map { (ContinuousClock.now - $0).seconds * 1000 })
                case .credit(let c):
                    guard c.bytes >= UInt64(tree.count), !sent.contains(c.attemptID) else { continue }
                    sent.insert(c.attemptID)
                    var chunk = Kiln_V1_StreamChunk()
                    chunk.attemptID = c.attemptID
                    chunk.offset = 0
                    chunk.sha256 = Data(digest)
                    chunk.length = UInt32(tree.count)
                    post(.streamChunk(chunk), data: tree)
                    var end = Kiln_V1_StreamEnd()
                    end.attemptID = c.attemptID
                    end.totalLength = UInt64(tree.count)
                    end.sha256 = Data(digest)
                    end.format = "tar+zstd"
                    post(.streamEnd(end))
                case .ack(let a):
                    if builds.removeValue(forKey: a.attemptID) != nil {
                        sent.remove(a.attemptID)
                        stats.acked()
                        lastAck = .now
                        stats.agentTimes(
                            service: assignedAt.removeValue(forKey: a.attemptID).map { (ContinuousClock.now - $0).seconds * 1000 },
                            gap: nil)
                    }
                case .cancel(let c):
                    builds[c.attemptID] = nil
                default:
                    break
                }
            }
        }
        let beat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(2))
                post(.heartbeat(Kiln_V1_Heartbeat()))
            }
        }
        return SimAgent(socket: socket, tasks: [reader, beat])
    }

    func close() async {
        for t in tasks { t.cancel() }
        await socket.close()
    }
}
