import Foundation
import KilnTestSupport
import Protocol
#if canImport(Glibc)
import Glibc
#endif

/// A farm of real processes for one test: `kiln scheduler` and `kiln agent`s
/// on tcp://127.0.0.1 with CURVE keys, each with its own stores under a
/// fresh directory, and an in-process client (real CURVE over TCP).
final class FarmHarness: @unchecked Sendable {
    /// This build's `kiln` (`KILN_BIN` overrides): see `BuiltProducts`.
    static var kiln: String { BuiltProducts.kiln }

    let dir: String
    /// The scheduler's agent port (the client port is the next one).
    private(set) var port: Int
    private var schedulerStarted = false
    var endpoint: String { "tcp://127.0.0.1:\(port)" }
    private(set) var scheduler: Process?
    private(set) var agents: [String: Process] = [:]
    let context: ZMQContext

    init() throws {
        dir = "/var/tmp/kiln-farmtests-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        port = try Self.freePortPair()
        context = try ZMQContext()
        for name in ["scheduler", "admin", "client", "client-2", "agent-a", "agent-b", "rogue"] {
            _ = try CurveKeyPair.generate().write(prefix: "\(dir)/\(name)")
        }
        // The roles layout: the folder is the key's role; "rogue" is on no list.
        for (name, role) in Self.roles { try allow(name, as: role) }
    }

    static let roles: [(String, String)] = [
        ("admin", "admins"), ("client", "clients"), ("client-2", "clients"), ("agent-a", "agents"), ("agent-b", "agents"),
    ]

    /// Copies `name.pub` into `allow/FOLDER/` (the scheduler reads it within 2 s when running).
    func allow(_ name: String, as folder: String) throws {
        try FileManager.default.createDirectory(atPath: "\(dir)/allow/\(folder)", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(dir)/\(name).pub", toPath: "\(dir)/allow/\(folder)/\(name).pub")
    }

    /// Removes `name.pub` from `allow/FOLDER/`.
    func disallow(_ name: String, from folder: String) throws {
        try FileManager.default.removeItem(atPath: "\(dir)/allow/\(folder)/\(name).pub")
    }

    /// Moves `name.pub` from `allow/FROM/` to `allow/TO/` in one rename, as an operator's `mv` does.
    func move(_ name: String, from: String, to: String) throws {
        try FileManager.default.createDirectory(atPath: "\(dir)/allow/\(to)", withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: "\(dir)/allow/\(from)/\(name).pub", toPath: "\(dir)/allow/\(to)/\(name).pub")
    }

    func cleanUp() {
        scheduler.map { kill($0.processIdentifier, SIGKILL) }
        for p in agents.values { kill(p.processIdentifier, SIGKILL) }
        scheduler?.waitUntilExit()
        for p in agents.values { p.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The scheduler's state and store, as `kiln store` and `kiln agents release` take them.
    var stateOptions: [String] { ["--state", "\(dir)/scheduler", "--store", "\(dir)/scheduler/store"] }

    func startScheduler(lease: Double = 4, extra: [String] = []) async throws {
        // The pair was free when chosen; another test may bind one of them
        // before this scheduler does. A first start then takes another pair
        // (a restart keeps its port: agents and clients know it).
        for attempt in 1...5 {
            do {
                try await startSchedulerOnce(lease: lease, extra: extra)
                schedulerStarted = true
                return
            } catch FarmHarnessError.schedulerDidNotStart(let log)
                where !schedulerStarted && attempt < 5 && log.contains("Address already in use") {
                port = try Self.freePortPair()
            }
        }
    }

    private func startSchedulerOnce(lease: Double, extra: [String]) async throws {
        scheduler = try spawn("scheduler", [
            "scheduler", "--bind", endpoint, "--state", "\(dir)/scheduler", "--key", "\(dir)/scheduler.key",
            "--allow", "\(dir)/allow", "--store", "\(dir)/scheduler/store", "--logs", "\(dir)/scheduler/logs",
            "--lease", "\(lease)", "--max-attempts", "3",
        ] + extra, env: [:])
        // Ready when it says where it listens; a scheduler that died says why.
        let deadline = ContinuousClock.now + .seconds(60)
        while !log("scheduler").contains("kiln scheduler: agents on") {
            guard scheduler?.isRunning == true, ContinuousClock.now < deadline else {
                throw FarmHarnessError.schedulerDidNotStart(log: log("scheduler"))
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Starts agent `name` (its key is `name.key`; `keyName` picks another key).
    func startAgent(_ name: String, keyName: String? = nil, slots: Int = 1, env: [String: String] = [:],
                    extra: [String] = []) throws {
        agents[name] = try spawn(name, [
            "agent", "--scheduler", endpoint, "--arch", "x86_64", "--name", name, "--state", "\(dir)/\(name)",
            "--key", "\(dir)/\(keyName ?? name).key", "--scheduler-key", "\(dir)/scheduler.pub",
            "--store", "\(dir)/\(name)/store", "--logs", "\(dir)/\(name)/logs", "--slots", "\(slots)",
        ] + extra, env: env)
    }

    /// Starts agents `names` (each with `env`) and waits until `c`, an
    /// admin's client, lists every one of them online.
    func startAgents(_ names: [String], env: [String: String] = [:], seenBy c: SchedulerClient,
                     timeout: Duration = .seconds(20)) async throws {
        for name in names { try startAgent(name, env: env) }
        let online = try await eventually(timeout) {
            let listed = try await c.agents()
            return names.allSatisfy { name in listed.contains { $0.agentID == name && $0.state == .online } }
        }
        guard online else {
            throw FarmHarnessError.notOnline(names, logs: names.map { "\($0):\n\(log($0))" }.joined(separator: "\n"))
        }
    }

    /// Submits `manifest` (for x86_64, exporting `archive`) and waits until
    /// agent `agent` runs its tree job: the scheduler lists the job on it
    /// and the agent says it took it. Returns the build's id.
    func submitRunning(_ c: SchedulerClient, _ manifest: [UInt8], label: String, on agent: String,
                       stageTimeoutMS: UInt64 = 0, timeout: Duration = .seconds(20)) async throws -> String {
        let build = try await c.submit(manifestJSON: manifest, exports: ["archive"], arch: "x86_64", label: label,
                                       stageTimeoutMS: stageTimeoutMS).buildID
        let running = try await eventually(timeout) {
            try await c.status(build).first?.jobs.contains { $0.onAgent && $0.agentID == agent } == true
                && log(agent).contains("running tree of build \(build)")
        }
        guard running else { throw FarmHarnessError.notRunning(build: build, agent: agent, log: log(agent)) }
        return build
    }

    /// Runs `kiln ARGS` to its end (standard error merged into the output).
    func kiln(_ args: [String]) async throws -> ChildOutput {
        try await runChild(Self.kiln, args, mergeErrors: true)
    }

    /// Runs `kiln ARGS` as a client of this farm's scheduler with key
    /// `keyName` (KILN_SCHEDULER, KILN_KEY and KILN_SCHEDULER_KEY, as a user sets them).
    func kiln(as keyName: String, _ args: [String]) async throws -> ChildOutput {
        try await runChild(Self.kiln, args, environment: [
            "KILN_SCHEDULER": endpoint, "KILN_KEY": "\(dir)/\(keyName).key", "KILN_SCHEDULER_KEY": "\(dir)/scheduler.pub",
        ], mergeErrors: true)
    }

    func killScheduler() async {
        guard let p = scheduler else { return }
        kill(p.processIdentifier, SIGKILL)
        await p.exited()
        scheduler = nil
    }

    func killAgent(_ name: String) async {
        guard let p = agents.removeValue(forKey: name) else { return }
        kill(p.processIdentifier, SIGKILL)
        await p.exited()
    }

    /// Sends `sig` to agent `name` (SIGTERM: a graceful stop); returns its
    /// process, no longer tracked, for the caller to watch it exit.
    func signalAgent(_ name: String, _ sig: Int32) -> Process? {
        guard let p = agents.removeValue(forKey: name) else { return nil }
        kill(p.processIdentifier, sig)
        return p
    }

    /// Processes whose environment holds `KILN_TEST_MARK=mark` (what a test's
    /// agent and everything it started inherit), other than agents still tracked.
    func markedProcesses(_ mark: String) -> [Int32] {
        let tracked = Set(agents.values.map(\.processIdentifier))
        let needle = Array("KILN_TEST_MARK=\(mark)".utf8)
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init)
        return pids.filter { pid in
            guard !tracked.contains(pid), let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return env.split(separator: 0).contains { Array($0) == needle }
        }
    }

    /// Those of `pids` that descend from no agent this harness still runs:
    /// what stopped or killed agents left behind (an orphan's parent is init).
    func outsideLiveAgents(_ pids: [Int32]) -> [Int32] {
        let live = Set(agents.values.map(\.processIdentifier))
        func parent(_ pid: Int32) -> Int32? {
            // /proc/PID/stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses.
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            return stat[stat.index(after: close)...].split(separator: " ").dropFirst().first.flatMap { Int32($0) }
        }
        return pids.filter { pid in
            var p: Int32? = pid
            while let current = p, current > 1 {
                if live.contains(current) { return false }
                p = parent(current)
            }
            return true
        }
    }

    /// Mount points under this farm's directory (this mount namespace).
    var mountsInFarm: [String] {
        let table = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return table.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 && fields[4].hasPrefix(dir + "/") ? String(fields[4]) : nil
        }
    }

    func log(_ name: String) -> String {
        (try? String(contentsOfFile: "\(dir)/\(name).out", encoding: .utf8)) ?? ""
    }

    private func spawn(_ name: String, _ args: [String], env: [String: String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.kiln)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        FileManager.default.createFile(atPath: "\(dir)/\(name).out", contents: nil)
        let out = FileHandle(forWritingAtPath: "\(dir)/\(name).out")!
        out.seekToEndOfFile()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        return p
    }

    /// A client with the admin key, which sees the whole farm (or another key
    /// — "client" and "client-2" are clients' — or another scheduler key).
    func client(keyName: String = "admin", schedulerKeyName: String = "scheduler") async throws -> SchedulerClient {
        try await SchedulerClient.connect(
            context: context, endpoint: try SchedulerEndpoint.clients(endpoint),
            keys: try CurveKeyPair.load(secretKeyFile: "\(dir)/\(keyName).key"),
            schedulerPublicKey: try CurveKeyPair.loadPublicKey("\(dir)/\(schedulerKeyName).pub"))
    }

    /// Polls until `condition` holds or `timeout` passes. The condition is
    /// checked once more after the deadline: a busy machine may not have run
    /// this task at all for a while, and that is no reason to fail.
    func eventually(_ timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async rethrows -> Bool {
        try await waitFor(timeout, interval: .milliseconds(200), condition)
    }

    /// Waits for the build to finish; returns its status (nil on timeout).
    func finished(_ c: SchedulerClient, _ build: String, timeout: Duration = .seconds(120)) async throws -> Kiln_V1_BuildStatus? {
        var last: Kiln_V1_BuildStatus?
        _ = try await eventually(timeout) {
            last = try? await c.status(build).first
            return [.succeeded, .failed, .cancelled].contains(last?.state ?? .unspecified)
        }
        return [.succeeded, .failed, .cancelled].contains(last?.state ?? .unspecified) ? last : nil
    }

    func events(_ c: SchedulerClient, _ build: String) async throws -> [Kiln_V1_BuildEvent] {
        var all: [Kiln_V1_BuildEvent] = []
        try await c.logs(build, follow: false) { all.append($0) }
        return all
    }

    /// A two-pipeline manifest: a small tree built on an agent, archived with
    /// org.osbuild.tar on the scheduler.
    static func manifest(hostname: String, extraStages: [[String: Any]] = [], sources: [String: Any] = [:]) -> [UInt8] {
        let tree: [[String: Any]] = extraStages + [
            ["type": "org.osbuild.hostname", "options": ["hostname": hostname]],
            ["type": "org.osbuild.locale", "options": ["language": "C.UTF-8"]],
        ]
        let m: [String: Any] = [
            "version": "2",
            "pipelines": [
                ["name": "tree", "stages": tree],
                ["name": "archive", "stages": [[
                    "type": "org.osbuild.tar", "options": ["filename": "tree.tar"],
                    "inputs": ["tree": ["type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": ["name:tree"]]],
                ]]],
            ],
            "sources": sources,
        ]
        return [UInt8](try! JSONSerialization.data(withJSONObject: m))
    }

    static func freePortPair() throws -> Int {
        for _ in 0..<50 {
            let p = Int.random(in: 20_000..<32_000)  // below the kernel's ephemeral range (32768+)
            if canBind(p) && canBind(p + 1) { return p }
        }
        throw CocoaError(.featureUnsupported)
    }

    static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

enum FarmHarnessError: Error {
    case schedulerDidNotStart(log: String)
    /// Agents the scheduler did not list online in time; their logs.
    case notOnline([String], logs: String)
    /// A build's tree job that did not run on the agent in time; the agent's log.
    case notRunning(build: String, agent: String, log: String)
}

/// A hand-driven agent connection (allow-listed key) for sending what a real
/// agent would not.
struct FakeAgent {
    let socket: ZMQSocketThread

    static func connect(_ farm: FarmHarness, name: String, arches: [String]) async throws -> FakeAgent {
        var config = ZMQSocketConfiguration(.dealer, .connect(try SchedulerEndpoint.agents(farm.endpoint)),
                                            curve: .client(keys: try CurveKeyPair.load(secretKeyFile: "\(farm.dir)/\(name).key"),
                                                           serverPublicKey: try CurveKeyPair.loadPublicKey("\(farm.dir)/scheduler.pub")))
        config.routingID = Array(name.utf8)
        let socket = try await ZMQSocketThread.start(context: farm.context, configuration: config)
        let agent = FakeAgent(socket: socket)
        var hello = Kiln_V1_Hello()
        hello.agentID = name
        hello.arches = arches
        hello.slots = 1
        try await agent.send(.hello(hello))
        return agent
    }

    func send(_ body: Kiln_V1_Envelope.OneOf_Body) async throws {
        try await socket.send(try Framing.encode(WireMessage(body)))
    }

    /// The attempt id of the next Cancel (nil if none within 10 s).
    func nextCancel() async -> UInt64? {
        let reader = Task { () -> UInt64? in
            for await m in socket.inbound {
                if let (_, msg) = try? Framing.decode(m.frames, routed: false), case .cancel(let c) = msg.envelope.body {
                    return c.attemptID
                }
            }
            return nil
        }
        let timer = Task { try? await Task.sleep(for: .seconds(10)); reader.cancel() }
        defer { timer.cancel() }
        return await reader.value
    }

    func close() async { await socket.close() }
}
