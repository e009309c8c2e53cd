import Agent
import ArgumentParser
import ComposerAPI
import Foundation
import HTTPServing
import Images
import Logging
import Manifest
import Protocol
import Scheduler
import Stages

struct SchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Run the scheduler daemon: agents connect to the endpoint's port, clients to the next one.")

    @Option(
        help:
            "TOML file of these options (keys: bind, state, key, …; docs/operating.md); default /etc/kiln/scheduler.toml when it exists. Flags win over the file."
    )
    var config: String?

    @Option(help: "Endpoint to listen on, tcp://HOST:PORT (agents on PORT, clients on PORT+1).")
    var bind: String

    @Option(help: "State directory (scheduler.sqlite, artifacts, logs).")
    var state: String = "/var/lib/kiln/scheduler"

    @Option(help: "The scheduler's CURVE secret key file (NAME.key from `kiln keys new`).")
    var key: String

    @Option(help: "Allow directory: agents/, clients/ and admins/ of public keys (*.pub); the folder is the key's role; changes apply within 2 s.")
    var allow: String

    @OptionGroup var stores: StoreOptions

    @Option(help: "Seconds without word from an agent before its attempt is requeued.")
    var lease: Double = 30

    @Option(help: "Attempts per job for infrastructure failures.")
    var maxAttempts: Int = 3

    @Option(help: "Most slots one agent is given, whatever it offers.")
    var maxSlots: Int = 16

    @Option(help: "How long one attempt may run from its assignment before it is stopped and requeued: a number and s, m, h or d.")
    var attemptDeadline: String = "3h"

    @Option(
        help:
            "How long one stage may run on an agent before it is stopped (its processes killed) and its build fails, unless the build asks for another limit (`kiln submit --stage-timeout`); at most --attempt-deadline. Default 1h (or --attempt-deadline when shorter)."
    )
    var stageTimeout: String?

    @Option(help: "Serve /metrics (Prometheus) and the dashboard over HTTP on HOST:PORT (:PORT is loopback); off by default.")
    var metrics: String?
    @Option(
        help: """
            Serve the HTTP API (osbuild-composer's Cloud API v2, under /api/image-builder-composer/v2) on HOST:PORT \
            (:PORT is loopback; loopback only, put a TLS proxy in front for other hosts); off by default. Tokens: kiln tokens new.
            """)
    var api: String?

    @Option(help: "Longest compressed tree stream taken from an agent per attempt, in GiB.")
    var streamMaxCompressedGib: Double = 8

    @Option(help: "Most file contents one streamed tree may extract to, in GiB (sparse files at full size).")
    var streamMaxExtractedGib: Double = 16

    @Option(help: "Most entries (files, directories, links) in one streamed tree.")
    var streamMaxEntries: Int = 2_000_000

    @Option(help: "Largest zstd window a tree stream may use, as a power of two (27: 128 MiB of decoder memory).")
    var streamWindowLogMax: Int32 = 27

    @Option(help: "GiB kept free on the store's filesystem beyond the stream credit agents hold; credit that would eat into it fails the attempt.")
    var storeFreeReserveGib: Double = 2

    @Flag(help: "Keep no metrics and no stage history (kiln top, kiln report and the dashboard then have less to show); for measuring their cost.")
    var noTelemetry = false

    @Option(
        help: "Remove the artifacts of builds finished longer ago than this (90m, 36h, 7d; default: forever); the build's record stays and says so.")
    var keepArtifacts: String = "forever"

    @Option(help: "Delete builds finished longer ago than this, with their events, logs and artifacts (default: forever).")
    var keepHistory: String = "forever"

    @Option(
        help:
            "GiB that must stay free under the state directory and the tree store: below it submits are refused and no job starts, until space returns (0: no check)."
    )
    var minFreeGib: Double = 2

    @Option(help: .hidden) var retentionInterval: Double = 60
    @Option(help: .hidden) var vacuumInterval: Double = 3600
    @Option(help: .hidden) var pruneInterval: Double = 60

    @Option(help: "Log level (debug adds every job's assignment, stages and stream).")
    var logLevel: Logger.Level = .info

    func run() async throws {
        try await CLI.main {
            let logger = Logging.logger(level: logLevel)
            if noTelemetry, metrics != nil {
                throw CLIError.badInput("--metrics serves what --no-telemetry turns off: drop one of them")
            }
            let keys = try CurveKeyPair.load(secretKeyFile: key)
            let allowDirectory = AllowDirectory(path: allow)
            let allowed = try allowDirectory.load()
            for w in allowed.warnings { logger.warning("\(w)") }
            if allowed.roles.isEmpty {
                logger.warning("no *.pub keys in \(allow)/agents, clients or admins: no agent or client can connect yet")
            }
            var config = SchedulerConfiguration(stateDirectory: state)
            config.imageTypes = Set(ImageType.allCases.map(\.rawValue))
            config.hiddenFromAssembly = config.secrets(keyFile: key, allowDirectory: allow)
            config.leaseMS = UInt32(lease * 1000)
            config.agentTimeoutMS = min(config.agentTimeoutMS, config.leaseMS)
            config.maxAttempts = maxAttempts
            guard maxSlots >= 1 else { throw CLIError.badInput("--max-slots \(maxSlots): must be at least 1") }
            config.maxSlotsPerAgent = maxSlots
            guard let deadline = Since.parse(attemptDeadline) else {
                throw CLIError.badInput("--attempt-deadline \(attemptDeadline): use a duration such as 90m, 3h or 1d")
            }
            config.attemptDeadlineMS = deadline
            config.stageTimeoutMS =
                try stageTimeout.map {
                    try CLI.durationMS(
                        $0, option: "--stage-timeout", max: (deadline, "--attempt-deadline \(attemptDeadline), which bounds every stage"))
                } ?? min(3600 * 1000, deadline)
            config.telemetry = !noTelemetry
            config.streamLimits = try streamLimits()
            config.keepArtifactsMS = try Retention.keep(keepArtifacts, option: "--keep-artifacts")
            config.keepHistoryMS = try Retention.keep(keepHistory, option: "--keep-history")
            config.minFreeBytes = try Retention.gib(minFreeGib, option: "--min-free-gib")
            config.retentionIntervalMS = try Retention.seconds(retentionInterval, option: "--retention-interval")
            config.vacuumIntervalMS = try Retention.seconds(vacuumInterval, option: "--vacuum-interval")
            config.storePruneInterval = .milliseconds(try Retention.seconds(pruneInterval, option: "--prune-interval"))
            // Every option is checked before anything on disk is opened or made.
            let http = try metrics.map { try HTTPEndpoint(parsing: $0, option: "--metrics") }
            let apiEndpoint = try api.map { try HTTPEndpoint(parsing: $0, option: "--api") }
            if let apiEndpoint, !apiEndpoint.isLoopback {
                throw CLIError.badInput(
                    """
                    --api \(api ?? ""): bearer tokens would cross plain HTTP; serve the API on loopback (e.g. --api 127.0.0.1:8080) \
                    and put a TLS proxy such as nginx in front of it for other hosts (docs/api.md)
                    """)
            }
            let executor = try await stores.executor()
            let scheduler = try FarmScheduler(config: config, store: executor.store, sources: executor.sources, logger: logger)
            if let http, !http.isLoopback {
                logger.warning(
                    """
                    --metrics \(http.host): the dashboard and /metrics have no authentication; anyone who reaches \
                    this address sees build labels, agents and failure logs
                    """)
            }
            let tokens = BearerTokens(allowed.tokens)
            let endpoints = SchedulerServer.Endpoints(
                agents: try SchedulerEndpoint.agents(bind), clients: try SchedulerEndpoint.clients(bind),
                security: .init(keys: keys, roles: allowed.roles, allow: allowDirectory, tokens: tokens), http: http)
            let server = try await SchedulerServer.start(
                scheduler: scheduler, endpoints: endpoints, context: try ZMQContext(),
                logger: logger)
            CLI.say(
                "kiln scheduler: agents on \(server.agentEndpoint), clients on \(server.clientEndpoint), "
                    + "\(allowed.count(.agent)) agent, \(allowed.count(.client)) client and \(allowed.count(.admin)) admin key(s), "
                    + "public key \(keys.publicKey)")
            if let h = server.http {
                CLI.say("kiln scheduler: dashboard on http://\(h.endpoint.host):\(h.port)/, metrics on http://\(h.endpoint.host):\(h.port)/metrics")
            }
            var apiServer: StatusServer?
            if let apiEndpoint {
                do {
                    let depsolver = Depsolver(logger: logger)
                    let handlers = ComposerHandlers(distros: Distro.all, scheduler: scheduler) { request in
                        let made = try await ManifestGenerator(resolver: depsolver).generate(for: request)
                        return ([UInt8](made.manifest.encoded(pretty: false)), made.notes)
                    }
                    apiServer = try await ComposerAPI.start(endpoint: apiEndpoint, tokens: tokens, handlers: handlers, logger: logger)
                } catch {
                    await server.stop()
                    throw error
                }
                CLI.say(
                    "kiln scheduler: API on http://\(apiEndpoint.host):\(apiServer!.port)\(ComposerAPI.basePath)/, "
                        + "\(tokens.count) token(s) allowed")
            }
            await CLI.untilCancelled()
            CLI.say("kiln scheduler: stopping")
            await apiServer?.stop()
            await server.stop()
        }
    }

    /// The stream limits from their options, each checked.
    private func streamLimits() throws -> StreamLimits {
        func bytes(_ gib: Double, _ option: String) throws -> UInt64 {
            guard gib > 0, gib < 1e9 else { throw CLIError.badInput("--\(option) \(gib): give a size in GiB above 0") }
            return UInt64(gib * Double(1 << 30))
        }
        var limits = StreamLimits()
        limits.maxCompressedBytes = try bytes(streamMaxCompressedGib, "stream-max-compressed-gib")
        limits.archive.maxExtractedBytes = try bytes(streamMaxExtractedGib, "stream-max-extracted-gib")
        guard streamMaxEntries > 0 else { throw CLIError.badInput("--stream-max-entries \(streamMaxEntries): give a count above 0") }
        limits.archive.maxEntries = streamMaxEntries
        // zstd's own bounds for a decoder's window (ZSTD_WINDOWLOG_ABSOLUTEMIN … _MAX_64).
        guard (10...31).contains(streamWindowLogMax) else {
            throw CLIError.badInput("--stream-window-log-max \(streamWindowLogMax): give 10 … 31 (27 is zstd's default)")
        }
        limits.archive.windowLogMax = streamWindowLogMax
        guard storeFreeReserveGib >= 0, storeFreeReserveGib < 1e9 else {
            throw CLIError.badInput("--store-free-reserve-gib \(storeFreeReserveGib): give a size in GiB, 0 or more")
        }
        limits.freeSpaceReserve = UInt64(storeFreeReserveGib * Double(1 << 30))
        return limits
    }
}

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run a build agent for one or more architectures.")

    @Option(
        help:
            "TOML file of these options (keys: scheduler, arch, key, …; docs/operating.md); default /etc/kiln/agent.toml when it exists. Flags win over the file."
    )
    var config: String?

    @Option(help: "Scheduler endpoint, tcp://HOST:PORT.")
    var scheduler: String

    @Option(help: "Architecture to build for (repeatable); a foreign one needs qemu-user binfmt.")
    var arch: [String]

    @Option(help: "State directory (agent id, spooled streams, logs).")
    var state: String = "/var/lib/kiln/agent"

    @Option(help: "This agent's CURVE secret key file.")
    var key: String

    @Option(help: "The scheduler's public key file.")
    var schedulerKey: String

    @Option(help: "Jobs to run at once.")
    var slots: Int = 1

    @Option(help: "Agent name (default: kept in the state directory, made from the host name).")
    var name: String?

    @OptionGroup var stores: StoreOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Serve this agent's /metrics (Prometheus) over HTTP on HOST:PORT (:PORT is loopback); off by default.")
    var metrics: String?

    @Option(
        help:
            "GiB that must stay free under the tree store and the state directory: below it the agent takes no new job, until space returns (0: no check)."
    )
    var minFreeGib: Double = 2

    @Option(help: .hidden) var pruneInterval: Double = 60

    func run() async throws {
        try await CLI.main {
            let logger = Logging.logger(level: logLevel)
            let http = try metrics.map { try HTTPEndpoint(parsing: $0, option: "--metrics") }
            if let http, !http.isLoopback {
                logger.warning("--metrics \(http.host): /metrics has no authentication; anyone who reaches this address reads it")
            }
            var archs: [Architecture] = []
            for a in arch {
                guard let x = Architecture(name: a) else { throw CLIError.badInput("--arch \(a): use x86_64 or aarch64") }
                archs.append(x)
            }
            guard !archs.isEmpty else { throw CLIError.badInput("--arch: name at least one architecture") }
            guard slots >= 1 else { throw CLIError.badInput("--slots \(slots): must be at least 1") }
            let minFree = try Retention.gib(minFreeGib, option: "--min-free-gib")
            let prune = try Retention.seconds(pruneInterval, option: "--prune-interval")
            let (native, emulated) = try HostArchitectures.split(archs)
            try PrivateDirectory.prepare(state, what: "the agent's state directory")
            let id = try name ?? Self.agentID(state: state)
            guard SchedulerCore.isAgentID(id) else {
                throw CLIError.badInput("--name \(id): an agent id is 1 to 64 letters, digits, '.', '_' or '-'")
            }
            var config = AgentConfiguration(
                agentID: id, schedulerEndpoint: try SchedulerEndpoint.agents(scheduler),
                arches: native, emulatedArches: emulated, stateDirectory: state)
            config.keys = try CurveKeyPair.load(secretKeyFile: key)
            config.schedulerPublicKey = try CurveKeyPair.loadPublicKey(schedulerKey)
            config.slots = slots
            config.minFreeBytes = minFree
            config.storePruneInterval = .milliseconds(prune)
            let executor = try await stores.executor()
            let agent = try BuildAgent(
                config: config, context: try ZMQContext(), store: executor.store,
                sources: executor.sources, logger: logger)
            CLI.say(
                "kiln agent \(id): \((native + emulated.map { "\($0) (emulated)" }).joined(separator: ", ")), "
                    + "\(slots) slot(s), scheduler \(scheduler)")
            var server: StatusServer?
            if let http {
                server = try await StatusServer.start(
                    endpoint: http,
                    routes: [
                        "/metrics": { _ in .prometheus(await agent.metricsText()) }
                    ], logger: logger)
                CLI.say("kiln agent \(id): metrics on http://\(http.host):\(server!.port)/metrics")
            }
            await agent.run()
            await server?.stop()
        }
    }

    /// The agent's stable name, kept in STATE/agent-id.
    static func agentID(state: String) throws -> String {
        let file = "\(state)/agent-id"
        if let s = try? String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !s.isEmpty {
            return s
        }
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "agent"
        let id = "\(host)-\(UUID().uuidString.prefix(4).lowercased())"
        try id.write(toFile: file, atomically: true, encoding: .utf8)
        return id
    }
}

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage CURVE keys.",
        subcommands: [NewKey.self, Migrate.self])

    struct NewKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new",
            abstract: "Make NAME.key (secret, mode 0600) and NAME.pub; never overwrites.")

        @Argument(help: "Path prefix of the key files.")
        var name: String

        func run() async throws {
            try await CLI.main {
                let (secret, pub) = try CurveKeyPair.generate().write(prefix: name)
                CLI.say(
                    "wrote \(secret) (secret) and \(pub) (public: on the scheduler host it goes into allow/agents/, allow/clients/ or allow/admins/; a scheduler's goes to agents and clients as --scheduler-key)"
                )
            }
        }
    }

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move the *.pub files of a flat allow directory (from before roles) into agents/, clients/ and admins/.",
            discussion: """
                Every NAME.pub directly in --allow must be named once, by NAME (or NAME.pub), in one of --agents, \
                --clients and --admins (comma-separated or repeated). Nothing moves unless every file has a role. \
                The scheduler picks up the moved keys within 2 s, or at its next start.
                """)

        @Option(help: "The allow directory.") var allow: String
        @Option(parsing: .singleValue, help: "Names of agent keys (NAME for NAME.pub); comma-separated or repeated.")
        var agents: [String] = []
        @Option(parsing: .singleValue, help: "Names of client keys.") var clients: [String] = []
        @Option(parsing: .singleValue, help: "Names of admin keys.") var admins: [String] = []

        func run() async throws {
            try await CLI.main {
                func names(_ given: [String]) -> [String] {
                    given.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
                }
                let assignment: [KeyRole: [String]] = [.agent: names(agents), .client: names(clients), .admin: names(admins)]
                if assignment.values.allSatisfy(\.isEmpty) {
                    throw CLIError.badInput("kiln keys migrate: name the keys with --agents, --clients or --admins")
                }
                let moves = try AllowDirectory(path: allow).migrate(assignment)
                for (from, to) in moves { print("\(from) -> \(to)") }
                CLI.say("kiln keys migrate: \(moves.count) key(s) moved; \(allow) now has the roles layout")
            }
        }
    }
}
