import Foundation
import Protocol

extension FarmScheduler {
    /// The Prometheus exposition: counters and histograms as recorded, the
    /// gauges (queues, agents, slots, builds in progress) read now. Only the
    /// gauges are read on the actor; the text is written off it.
    nonisolated package func metricsText() async -> [UInt8] {
        guard let metrics else { return Array("# telemetry is off\n".utf8) }
        await publishGauges(metrics)
        return metrics.emit()
    }

    private func publishGauges(_ metrics: FarmMetrics) {
        let t = now
        var arches = Set(FarmMetrics.knownArches)
        arches.formUnion(core.queues.keys.map(FarmMetrics.arch))
        for arch in arches.sorted() {
            // Counted in place: a queue can hold tens of thousands of jobs during a burst.
            var waiting = 0
            var oldest = Int64.max
            for id in core.queues[arch] ?? [] {
                guard let state = core.jobs[id]?.state, state == .queued else { continue }
                waiting += 1
                if let q = core.jobs[id]?.queuedMS, q > 0, q < oldest { oldest = q }
            }
            metrics.gauge("kiln_queue_depth", [("arch", arch)], Double(waiting))
            metrics.gauge("kiln_queue_oldest_age_seconds", [("arch", arch)], oldest == .max ? 0 : Double(max(0, t - oldest)) / 1000)
            for mode in ["native", "emulated"] {
                for state in ["online", "offline"] {
                    let n = core.agents.values.filter {
                        ($0.online == (state == "online")) && (mode == "native" ? $0.arches : $0.emulated).contains(arch)
                    }.count
                    metrics.gauge("kiln_agents", [("arch", arch), ("mode", mode), ("state", state)], Double(n))
                }
            }
        }
        var slots = 0, busy = 0
        for a in core.agents.values where a.online {
            slots += a.slots
            busy += a.attempts.count
        }
        metrics.gauge("kiln_slots", [], Double(slots))
        metrics.gauge("kiln_slots_busy", [], Double(busy))
        var queued = 0, running = 0
        for b in core.builds.values {
            if b.state == .queued { queued += 1 } else if b.state == .running { running += 1 }
        }
        metrics.gauge("kiln_builds_in_progress", [("state", "queued")], Double(queued))
        metrics.gauge("kiln_builds_in_progress", [("state", "running")], Double(running))
        metrics.gauge("kiln_assemblies_running", [], Double(core.assembliesRunning))
        metrics.gauge("kiln_scheduler_start_time_seconds", [], Double(startedMS) / 1000)
        metrics.publish(sources: sources.stats.current)
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
            // A reply may stop short of the limit (at 4 MiB of text): go on until nothing comes.
            if r.events.isEmpty || r.finished { break }
            after = r.nextSequence
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
