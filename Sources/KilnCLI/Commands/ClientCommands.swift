import ArgumentParser
import Foundation
import Images
import Manifest
import Protocol
import Scheduler
import Stages
import SwiftProtobuf

struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Submit a blueprint to a scheduler; prints the build ID (or waits with --wait).")

    @OptionGroup var image: ImageOptions
    @OptionGroup var client: ClientOptions

    @Flag(help: "Wait for the build to finish and exit with its outcome.")
    var wait = false

    @Option(name: .shortAndLong, help: "With --wait: where to write the image.")
    var output: String?

    @Flag(name: .shortAndLong, help: "Show log lines while waiting.")
    var verbose = false

    @Flag(
        help:
            "The file is a manifest (from `kiln manifest`, reviewed or edited), not a blueprint; --type names the pipeline to export and --arch is required."
    )
    var manifest = false

    @Option(
        help: "How long one stage of this build may run (90s, 30m, 2h); default: the scheduler's --stage-timeout, at most its --attempt-deadline.")
    var stageTimeout: String?

    func run() async throws {
        try await CLI.main {
            if output != nil && !wait { throw CLIError.badInput("-o/--output needs --wait (or use `kiln fetch BUILD -o PATH`)") }
            let stageMS = try stageTimeout.map { try CLI.durationMS($0, option: "--stage-timeout") } ?? 0
            let (json, arch, distro, type, notes) = try await prepare()
            try await client.with { c in
                let label = "\((image.blueprint as NSString).lastPathComponent) \(distro) \(arch) \(type.rawValue)"
                let r = try await c.submit(
                    manifestJSON: json, exports: [type.exportPipeline], arch: arch,
                    label: label, distro: distro, imageType: type.rawValue, notes: notes,
                    stageTimeoutMS: UInt64(stageMS))
                CLI.say("submitted \(label): \(r.jobs) job(s), \(r.cachedJobs) cached")
                guard wait else {
                    print(r.buildID)
                    return
                }
                let status = try await c.wait(r.buildID, printer: BuildEventPrinter(verbose: verbose))
                guard status.state == .succeeded else {
                    throw BuildOutcomeError(buildID: r.buildID, state: status.state, failure: status.failure)
                }
                if let output {
                    for p in try await c.fetchAll(status, to: output) { CLI.say("wrote \(p)") }
                }
                print(r.buildID)
            }
        }
    }
}

extension SubmitCommand {
    /// The manifest to submit: generated from the blueprint, or read from
    /// the file with --manifest (validated here, so mistakes exit with 2).
    func prepare() async throws -> (json: [UInt8], arch: String, distro: String, type: ImageType, notes: [String]) {
        guard manifest else {
            let request = try image.request()
            let g = try await ManifestGenerator(resolver: image.resolver()).generate(for: request)
            for note in g.notes { CLI.say("kiln: note: \(AgentText.printable(note))") }
            return ([UInt8](g.manifest.encoded(pretty: false)), request.architecture.rawValue, request.distro.name, request.imageType, g.notes)
        }
        guard let archName = image.arch, let arch = Architecture(name: archName) else {
            throw CLIError.badInput("--arch: a manifest does not say its architecture; pass --arch x86_64 or --arch aarch64")
        }
        let type = try ImageType.named(image.type)
        guard let data = FileManager.default.contents(atPath: image.blueprint) else {
            throw CLIError.badInput("\(image.blueprint): cannot read the manifest")
        }
        let m = try BuildManifest.decode(data, file: image.blueprint)
        try m.validate(stages: StageRegistry.standard)
        guard m.pipeline(named: type.exportPipeline) != nil else {
            throw CLIError.badInput(
                "\(image.blueprint): no pipeline \"\(type.exportPipeline)\" to export for --type \(type.rawValue); "
                    + "its pipelines are \(m.pipelines.map(\.name).joined(separator: ", "))")
        }
        let distro = try image.distro.map { try Distro.named($0).name } ?? ""
        return ([UInt8](data), arch.rawValue, distro, type, [])
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show recent builds, or one build in detail.")

    @Argument(help: "A build ID; without it, the most recent builds.")
    var build: String?

    @OptionGroup var client: ClientOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await CLI.main {
            try await client.with { c in
                let builds = try await c.status(build ?? "")
                if json { return try Listing.printJSON(builds) }
                if build == nil {
                    Listing.table(
                        ["BUILD", "STATE", "ARCH", "CREATED", "LABEL"],
                        builds.map {
                            [$0.buildID, Listing.name($0.state), $0.arch, Listing.time($0.createdUnixMs), $0.label]
                        })
                    return
                }
                for b in builds {
                    print("build \(b.buildID): \(Listing.name(b.state))  \(b.label)")
                    print("created \(Listing.time(b.createdUnixMs))" + (b.finishedUnixMs > 0 ? ", finished \(Listing.time(b.finishedUnixMs))" : ""))
                    Listing.table(
                        ["JOB", "PIPELINE", "WHERE", "STATE", "ATTEMPTS", "AGENT", "STAGE"],
                        b.jobs.map { j in
                            [
                                j.jobID, j.pipelineName, j.onAgent ? "agent" : "scheduler", Listing.name(j.state), "\(j.attempts)", j.agentID,
                                j.stageCount > 0 ? "\(j.stageIndex + 1)/\(j.stageCount) \(j.stageType)" : "",
                            ]
                        })
                    if !b.artifacts.isEmpty { print("artifacts: \(b.artifacts.joined(separator: ", "))") }
                    if b.artifactsExpiredUnixMs > 0 {
                        print("artifacts: removed \(Listing.time(b.artifactsExpiredUnixMs)) (the scheduler's --keep-artifacts)")
                    }
                    if !b.failure.isEmpty { print("failure: \(b.failure)") }
                }
            }
        }
    }
}

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Show a build's events and stage log lines.")

    @Argument(help: "The build ID.")
    var build: String

    @Flag(name: .shortAndLong, help: "Follow until the build finishes.")
    var follow = false

    @OptionGroup var client: ClientOptions

    @Flag(help: "Print one JSON object per event.")
    var json = false

    func run() async throws {
        try await CLI.main {
            try await client.with { c in
                try await c.logs(build, follow: follow) { e in
                    if json {
                        print((try? e.jsonString()) ?? "{}")
                        return
                    }
                    let agent = e.agentID.isEmpty ? "" : " [\(TerminalText.safe(e.agentID))]"
                    if !e.message.isEmpty { print("\(Listing.time(e.unixMs))\(agent) \(TerminalText.safe(e.message))") }
                    for l in e.logLines { print("    \(TerminalText.safe(l))") }
                }
            }
        }
    }
}

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a build.")

    @Argument(help: "The build ID.")
    var build: String

    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await CLI.main {
            try await client.with { c in
                let state = try await c.cancel(build)
                print("\(build): \(Listing.name(state))")
            }
        }
    }
}

struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete a finished build: its artifacts, events, logs and record (cancel a running one first).")

    @Argument(help: "The build ID.")
    var build: String

    @OptionGroup var client: ClientOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await CLI.main {
            try await client.with { c in
                let r = try await c.delete(build)
                if json { return try Listing.printJSON([r]) }
                print(
                    "\(r.buildID): deleted (\(r.artifacts) artifact(s), \(String(format: "%.1f MB", Double(r.artifactBytes) / 1e6)), "
                        + "\(r.events) event(s))")
            }
        }
    }
}

struct FetchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fetch", abstract: "Download a finished build's image(s).")

    @Argument(help: "The build ID.")
    var build: String

    @Option(name: .shortAndLong, help: "Output file (one artifact) or directory (several).")
    var output: String

    @Option(help: "Only this artifact (names as `kiln status BUILD` lists them).")
    var artifact: String?

    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await CLI.main {
            try await client.with { c in
                guard let status = try await c.status(build).first else { throw CLIError.badInput("no build \(build)") }
                guard status.state == .succeeded else {
                    throw CLIError.badInput("build \(build) is \(Listing.name(status.state)); only a succeeded build has images to fetch")
                }
                if status.artifactsExpiredUnixMs > 0 {
                    throw CLIError.badInput(
                        "build \(build)'s artifacts were removed \(Listing.time(status.artifactsExpiredUnixMs)) "
                            + "(the scheduler keeps them for its --keep-artifacts); submit the build again for new ones")
                }
                for p in try await c.fetchAll(status, to: output, only: artifact) { CLI.say("wrote \(p)") }
            }
        }
    }
}

struct AgentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents", abstract: "The scheduler's agents.",
        subcommands: [
            AgentsListCommand.self, AgentsReleaseCommand.self,
            AgentsDrainCommand<Drain>.self, AgentsDrainCommand<Undrain>.self,
        ],
        defaultSubcommand: AgentsListCommand.self)
}

struct AgentsListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the scheduler's agents.")

    @OptionGroup var client: ClientOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await CLI.main {
            try await client.with { c in
                let agents = try await c.agents()
                if json { return try Listing.printJSON(agents) }
                Listing.table(
                    ["AGENT", "ARCHES", "STATE", "SLOTS", "JOBS", "LAST HEARTBEAT", "FREE DISK"],
                    agents.map { a in
                        let arches = a.arches + a.emulatedArches.map { "\($0) (emulated)" }
                        let state = Listing.name(a.state) + (a.drained ? ", drained" : "") + (a.notTakingJobs.isEmpty ? "" : ", low on disk")
                        return [
                            a.agentID, arches.joined(separator: ", "), state, "\(a.slotsInUse)/\(a.slots)",
                            a.jobs.map { "\($0.jobID) \($0.pipelineName)" }.joined(separator: "; "),
                            Listing.age(a.lastHeartbeatUnixMs), String(format: "%.1f GB", Double(a.freeDisk) / 1e9),
                        ]
                    })
            }
        }
    }
}

/// `kiln agents drain ID` and `kiln agents undrain ID`: one command, an
/// admin's request to the scheduler (`DrainRequest`); `Direction` says which.
struct AgentsDrainCommand<Direction: DrainDirection>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        Direction.drained
            ? CommandConfiguration(
                commandName: "drain",
                abstract: """
                    Assign no new job to an agent; the jobs it runs finish there. Kept across restarts. Needs an admin key.
                    """)
            : CommandConfiguration(commandName: "undrain", abstract: "Give a drained agent new jobs again. Needs an admin key.")
    }

    @Argument(help: "The agent id (as `kiln agents` shows it).")
    var id: String

    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await CLI.main {
            try await client.with { c in
                let r = try await c.drain(id, drained: Direction.drained)
                let name = "kiln agents \(Direction.drained ? "drain" : "undrain")"
                let id = TerminalText.safe(r.agent.agentID), agent = "agent \(id)"
                if Direction.drained {
                    let running = r.agent.slotsInUse == 0 ? "" : "; the \(r.agent.slotsInUse) job(s) it runs finish there"
                    CLI.say(
                        "\(name): \(agent) \(r.wasDrained ? "was already drained" : "is drained"): it is assigned no new job"
                            + "\(running); `kiln agents undrain \(id)` gives it work again")
                } else {
                    CLI.say("\(name): \(agent) \(r.wasDrained ? "is undrained: it is assigned jobs again" : "was not drained")")
                }
            }
        }
    }
}

/// Which way `AgentsDrainCommand` goes.
protocol DrainDirection {
    static var drained: Bool { get }
}

enum Drain: DrainDirection {
    static var drained: Bool { true }
}

enum Undrain: DrainDirection {
    static var drained: Bool { false }
}

/// Table and JSON output for the listing commands.
enum Listing {
    static func table(_ header: [String], _ rows: [[String]]) {
        let all = ([header] + rows).map { $0.map(TerminalText.safe) }
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        for r in all {
            print(
                r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                    .joined(separator: "  "))
        }
    }

    static func printJSON<M: SwiftProtobuf.Message>(_ items: [M]) throws {
        let parts = try items.map { try $0.jsonString() }
        print("[" + parts.joined(separator: ",\n") + "]")
    }

    /// `BUILD_STATE_SUCCEEDED` → `succeeded`.
    static func name<E: RawRepresentable>(_ value: E) -> String {
        let s = "\(value)"
        return s.hasPrefix("UNRECOGNIZED") ? "unknown" : s
    }

    static func time(_ unixMS: Int64) -> String {
        guard unixMS > 0 else { return "-" }
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return f.string(from: Date(timeIntervalSince1970: Double(unixMS) / 1000))
    }

    static func age(_ unixMS: Int64) -> String {
        guard unixMS > 0 else { return "never" }
        let s = max(0, Date().timeIntervalSince1970 - Double(unixMS) / 1000)
        return s < 120 ? String(format: "%.0f s ago", s) : String(format: "%.0f min ago", s / 60)
    }
}
