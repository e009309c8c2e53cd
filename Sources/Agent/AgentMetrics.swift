import HTTPServing
import Protocol
import Stages

/// An agent's own metrics (`kiln agent --metrics EP` serves them at
/// `/metrics`); docs/operating.md lists the series. Labels: architecture,
/// mode (native or emulated through qemu-user), outcome, stage type.
package final class AgentMetrics: Sendable {
    let recorder = MetricsRecorder()
    private let stageTypes: Set<String>

    init(registry: StageRegistry) {
        stageTypes = Set(registry.entries.keys)
    }

    static func dimensions(arch: String, emulated: Bool) -> [(String, String)] {
        [("arch", ["x86_64", "aarch64"].contains(arch) ? arch : "other"), ("mode", emulated ? "emulated" : "native")]
    }

    func stageFinished(type: String, arch: String, emulated: Bool, seconds: Double) {
        recorder.time(
            "kiln_agent_stage_duration_seconds",
            [("stage", stageTypes.contains(type) ? type : "other")] + Self.dimensions(arch: arch, emulated: emulated),
            ms: Int64(seconds * 1000))
    }

    /// outcome: succeeded, failed (a stage failed), infrastructure, cancelled.
    func jobFinished(arch: String, emulated: Bool, outcome: String, ms: Int64, streamedBytes: UInt64) {
        let dims = Self.dimensions(arch: arch, emulated: emulated)
        recorder.count("kiln_agent_jobs_total", dims + [("outcome", outcome)])
        if outcome == "succeeded" { recorder.time("kiln_agent_job_duration_seconds", dims, ms: ms) }
        recorder.count("kiln_agent_streamed_bytes_total", by: Int64(clamping: streamedBytes))
    }

    func pipelineCached() { recorder.count("kiln_agent_pipelines_cached_total") }
}

extension BuildAgent {
    /// The exposition text, gauges read now.
    package func metricsText() -> [UInt8] {
        let r = metrics.recorder
        r.gauge("kiln_agent_slots", [], Double(config.slots))
        r.gauge("kiln_agent_slots_busy", [], Double(jobs.count))
        r.gauge("kiln_agent_free_disk_bytes", [], Double(HostArchitectures.freeDisk(store.root)))
        r.gauge("kiln_agent_connected", [], welcomed ? 1 : 0)
        for a in config.arches { r.gauge("kiln_agent_arch", [("arch", a), ("mode", "native")], 1) }
        for a in config.emulatedArches { r.gauge("kiln_agent_arch", [("arch", a), ("mode", "emulated")], 1) }
        let s = sources.stats.current
        r.total("kiln_agent_source_cache_hits_total", Int64(s.hits))
        r.total("kiln_agent_source_cache_misses_total", Int64(s.misses))
        r.total("kiln_agent_source_cache_fetched_bytes_total", Int64(clamping: s.fetchedBytes))
        return r.emit()
    }
}
