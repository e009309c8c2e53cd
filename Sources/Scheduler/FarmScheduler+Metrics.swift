import Foundation
import GRDB
import Protocol

extension FarmScheduler {
    /// The Prometheus exposition: counters and histograms as recorded, the
    /// gauges (queues, agents, slots, builds in progress) read now.
    package func metricsText() -> [UInt8] {
        guard let metrics else { return Array("# telemetry is off\n".utf8) }
        let t = now
        var arches = Set(FarmMetrics.knownArches)
        arches.formUnion(queues.keys.map(FarmMetrics.arch))
        for arch in arches.sorted() {
            let waiting = (queues[arch] ?? []).compactMap { jobs[$0] }.filter { $0.state == .queued }
            metrics.gauge("kiln_queue_depth", [("arch", arch)], Double(waiting.count))
            let oldest = waiting.map(\.queuedMS).filter { $0 > 0 }.min()
            metrics.gauge("kiln_queue_oldest_age_seconds", [("arch", arch)], oldest.map { Double(max(0, t - $0)) / 1000 } ?? 0)
            for mode in ["native", "emulated"] {
                for state in ["online", "offline"] {
                    let n = agents.values.filter {
                        ($0.online == (state == "online")) && (mode == "native" ? $0.arches : $0.emulated).contains(arch)
                    }.count
                    metrics.gauge("kiln_agents", [("arch", arch), ("mode", mode), ("state", state)], Double(n))
                }
            }
        }
        let online = agents.values.filter(\.online)
        metrics.gauge("kiln_slots", [], Double(online.reduce(0) { $0 + $1.slots }))
        metrics.gauge("kiln_slots_busy", [], Double(online.reduce(0) { $0 + $1.attempts.count }))
        metrics.gauge("kiln_builds_in_progress", [("state", "queued")], Double(builds.values.filter { $0.state == .queued }.count))
        metrics.gauge("kiln_builds_in_progress", [("state", "running")], Double(builds.values.filter { $0.state == .running }.count))
        metrics.gauge("kiln_assemblies_running", [], Double(assembliesRunning))
        metrics.gauge("kiln_scheduler_start_time_seconds", [], Double(startedMS) / 1000)
        metrics.publish(sources: sources.stats.current)
        return metrics.emit()
    }

    /// A build's events as plain text (the dashboard links failures here).
    package func logText(buildID: String) async throws -> String {
        var lines: [String] = []
        var after: UInt64 = 0
        while true {
            let r = try await logs(buildID: buildID, after: after, limit: 5000)
            for e in r.events {
                let time = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(e.unixMs) / 1000))
                lines.append("\(time) \(e.message)")
                lines.append(contentsOf: e.logLines.map { "    \($0)" })
            }
            if r.events.isEmpty || r.finished || r.events.count < 5000 { break }
            after = r.nextSequence
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
