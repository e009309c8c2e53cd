import ArgumentParser
import Foundation
import Protocol
import Scheduler

struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Watch the farm: agents, queues, running builds and throughput, refreshed in place.")

    @OptionGroup var client: ClientOptions

    @Flag(help: "Print one snapshot and exit.")
    var once = false

    @Flag(help: "Print the snapshot as JSON (the dashboard's /api/snapshot document).")
    var json = false

    @Option(help: "Seconds between refreshes.")
    var interval: Double = 2

    func run() async throws {
        try await CLI.main {
            guard interval >= 0.2, interval <= 3600 else { throw CLIError.badInput("--interval \(interval): use 0.2 to 3600 seconds") }
            try await client.with { c in
                let inPlace = isatty(STDOUT_FILENO) == 1 && !once && !json
                if inPlace { print("\u{1B}[2J", terminator: "") }  // a clean screen for the first frame
                while true {
                    let bytes = try await c.top()
                    if json {
                        print(String(decoding: bytes, as: UTF8.self))
                    } else {
                        let snapshot = try TelemetryJSON.decode(FarmSnapshot.self, from: bytes)
                        let lines = TopView.render(snapshot)
                        // Home, draw, clear what is left of the previous frame.
                        print(
                            (inPlace ? "\u{1B}[H" : "") + lines.joined(separator: inPlace ? "\u{1B}[K\n" : "\n")
                                + (inPlace ? "\u{1B}[K\n\u{1B}[J" : "\n"), terminator: "")
                    }
                    fflush(nil)
                    if once { return }
                    try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
                }
            }
        }
    }
}

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Builds per architecture and image type, success rate, build times, cache savings and the slowest stages.")

    @OptionGroup var client: ClientOptions

    @Option(help: "How far back: a number and s, m, h, d or w (e.g. 30m, 24h, 7d).")
    var since: String = "24h"

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await CLI.main {
            guard let window = Since.parse(since) else {
                throw CLIError.badInput("--since \(since): use a number and s, m, h, d or w, e.g. 30m, 24h or 7d")
            }
            try await client.with { c in
                let bytes = try await c.report(sinceUnixMS: Int64(Date().timeIntervalSince1970 * 1000) - window)
                if json { return print(String(decoding: bytes, as: UTF8.self)) }
                let report = try TelemetryJSON.decode(FarmReport.self, from: bytes)
                print(ReportView.render(report, since: since).joined(separator: "\n"))
            }
        }
    }
}

/// Text renderings of the telemetry documents.
enum TopView {
    static func render(_ s: FarmSnapshot) -> [String] {
        var out: [String] = []
        let up = Double(s.generatedUnixMs - s.scheduler.startedUnixMs) / 1000
        out.append(
            "kiln top · scheduler \(s.scheduler.version), epoch \(s.scheduler.epoch), up \(Fmt.duration(up)) · "
                + Listing.time(s.generatedUnixMs))
        out.append("")
        out.append("AGENTS (\(s.agents.filter { $0.state == "online" }.count) online of \(s.agents.count))")
        out += Fmt.table(
            ["AGENT", "ARCHES", "STATE", "SLOTS", "JOB", "STAGE", "HEARTBEAT", "FREE DISK"],
            s.agents.map { a in
                let arches = (a.arches + a.emulatedArches.map { "\($0) (emulated)" }).joined(separator: ", ")
                let job = a.jobs.map { "\($0.jobId) \($0.pipeline)" }.joined(separator: "; ")
                let stage = a.jobs.map { $0.stageCount > 0 ? "\($0.stageIndex + 1)/\($0.stageCount) \($0.stageType)" : $0.state }
                    .joined(separator: "; ")
                return [
                    a.id, arches, a.state, "\(a.slotsInUse)/\(a.slots)", job, stage, Fmt.duration(a.heartbeatAgeS) + " ago",
                    Fmt.bytes(a.freeDiskBytes),
                ]
            })
        out.append("")
        out.append("QUEUES")
        out += Fmt.table(
            ["ARCH", "WAITING", "OLDEST", "AGENTS", "SLOTS BUSY", ""],
            s.queues.map { q in
                [
                    q.arch, "\(q.depth)", q.depth > 0 ? Fmt.duration(q.oldestAgeS) : "-", "\(q.agentsOnline)", "\(q.slotsBusy)/\(q.slotsTotal)",
                    q.depth > 0 && q.agentsOnline == 0
                        ? "no agent runs \(q.arch)" : q.depth > 0 && q.slotsBusy == q.slotsTotal ? "all slots busy" : "",
                ]
            })
        out.append("")
        out.append("RUNNING BUILDS (\(s.running.count))")
        out += Fmt.table(
            ["BUILD", "STATE", "AGE", "PROGRESS", "JOBS", "LABEL", "NOW"],
            s.running.map { b in
                [b.buildId, b.state, Fmt.duration(b.ageS), Fmt.bar(b.progress), "\(b.jobsDone)/\(b.jobsTotal)", b.label, b.current]
            })
        out.append("")
        out.append("THROUGHPUT")
        let w = s.windows
        out += Fmt.table(
            [""] + w.map { "last \($0.minutes) min" },
            [
                ["builds/hour"] + w.map { Fmt.number($0.buildsPerHour) },
                ["builds ok/failed"] + w.map { "\($0.buildsSucceeded)/\($0.buildsFailed)" },
                ["jobs/minute"] + w.map { Fmt.number($0.jobsPerMinute) },
                ["MB/s streamed"] + w.map { Fmt.number($0.streamedMbPerS) },
                ["tree cache hit rate"] + w.map { $0.cacheHitRate.map { Fmt.percent($0) } ?? "-" },
            ])
        let types = Set(w.flatMap { $0.imageTypes.map(\.imageType) }).sorted()
        if !types.isEmpty {
            out.append("")
            out.append("BUILD TIME (median / p95 of succeeded builds)")
            out += Fmt.table(
                ["IMAGE TYPE"] + w.map { "last \($0.minutes) min" },
                types.map { t in
                    [t]
                        + w.map { win in
                            win.imageTypes.first { $0.imageType == t }.map {
                                "\(Fmt.duration($0.medianS)) / \(Fmt.duration($0.p95S)) (\($0.builds))"
                            } ?? "-"
                        }
                })
        }
        if !s.failures.isEmpty {
            out.append("")
            out.append("RECENT FAILURES")
            out += Fmt.table(
                ["BUILD", "FINISHED", "LABEL", "FAILURE"],
                s.failures.prefix(5).map { f in
                    [
                        f.buildId, Listing.time(f.finishedUnixMs), f.label,
                        String((f.failure.split(separator: "\n").first ?? "").prefix(100)),
                    ]
                })
        }
        return out
    }
}

enum ReportView {
    static func render(_ r: FarmReport, since: String) -> [String] {
        var out = ["kiln report: \(Listing.time(r.sinceUnixMs)) to \(Listing.time(r.untilUnixMs)) (last \(since))", ""]
        out.append("BUILDS")
        let rows = r.groups + (r.groups.count > 1 ? [r.totals] : [])
        out += Fmt.table(
            ["ARCH", "IMAGE TYPE", "BUILDS", "OK", "FAILED", "CANCELLED", "SUCCESS", "MEDIAN", "P95"],
            rows.map { g in
                [
                    g.arch, g.imageType, "\(g.builds)", "\(g.succeeded)", "\(g.failed)", "\(g.cancelled)",
                    g.successRate.map { Fmt.percent($0) } ?? "-", g.medianS.map { Fmt.duration($0) } ?? "-", g.p95S.map { Fmt.duration($0) } ?? "-",
                ]
            })
        if r.groups.isEmpty { out.append("(no build finished in this window)") }
        out.append("")
        let c = r.cache
        out.append(
            "TREE CACHE: \(c.treeCacheHits) of \(c.treeJobs) tree job(s) served from the store"
                + (c.hitRate.map { " (\(Fmt.percent($0)))" } ?? "") + "; saved \(Fmt.duration(c.savedSeconds)) of agent time and "
                + "\(Fmt.bytes(c.savedBytes)) of streaming; \(Fmt.bytes(c.streamedBytes)) streamed")
        if !r.queueWait.isEmpty {
            out.append("")
            out.append("QUEUE WAIT (submit or requeue → assignment)")
            out += Fmt.table(
                ["ARCH", "ATTEMPTS", "MEDIAN", "P95"],
                r.queueWait.map {
                    [$0.arch, "\($0.attempts)", Fmt.duration($0.medianS), Fmt.duration($0.p95S)]
                })
        }
        if !r.slowestStages.isEmpty {
            out.append("")
            out.append("SLOWEST STAGES (by total time)")
            out += Fmt.table(
                ["STAGE", "WHERE", "RUNS", "TOTAL", "MEDIAN", "P95", "MAX"],
                r.slowestStages.map {
                    [
                        $0.stage, $0.mode, "\($0.runs)", Fmt.duration($0.totalS), Fmt.duration($0.medianS), Fmt.duration($0.p95S),
                        Fmt.duration($0.maxS),
                    ]
                })
        }
        return out
    }
}

/// Human formatting for the telemetry views.
enum Fmt {
    static func table(_ header: [String], _ rows: [[String]]) -> [String] {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        return all.map { r in
            var line = r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
            while line.last == " " { line.removeLast() }
            return line
        }
    }

    static func duration(_ s: Double) -> String {
        if s < 1 { return String(format: "%.2f s", s) }
        if s < 10 { return String(format: "%.1f s", s) }
        if s < 120 { return String(format: "%.0f s", s) }
        if s < 7200 { return String(format: "%dm %02ds", Int(s) / 60, Int(s) % 60) }
        return String(format: "%dh %02dm", Int(s) / 3600, Int(s) % 3600 / 60)
    }

    static func bytes(_ b: UInt64) -> String {
        let x = Double(b)
        if x >= 1e9 { return String(format: "%.1f GB", x / 1e9) }
        if x >= 1e6 { return String(format: "%.1f MB", x / 1e6) }
        if x >= 1e3 { return String(format: "%.1f kB", x / 1e3) }
        return "\(b) B"
    }

    static func number(_ x: Double) -> String { x == 0 ? "0" : x < 10 ? String(format: "%.2f", x) : String(format: "%.1f", x) }

    static func percent(_ x: Double) -> String { String(format: "%.0f%%", x * 100) }

    static func bar(_ p: Double, width: Int = 10) -> String {
        let filled = Int((max(0, min(1, p)) * Double(width)).rounded())
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            + percent(p)
    }
}
