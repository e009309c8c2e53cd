import HTTPServing
import Protocol
import Stages

/// The scheduler's metrics, recorded through swift-metrics into a Prometheus
/// registry of its own (not the global `MetricsSystem`: several schedulers
/// may live in one process, as in tests). docs/operating.md lists every
/// series. Label values are bounded: architectures, image types, outcomes
/// and stage types the scheduler knows; anything else is "other".
package final class FarmMetrics: Sendable {
    let recorder = MetricsRecorder()
    private let stageTypes: Set<String>
    private let imageTypes: Set<String>

    package init(registry stages: StageRegistry = .standard, imageTypes: Set<String> = []) {
        stageTypes = Set(stages.entries.keys)
        self.imageTypes = imageTypes
    }

    // MARK: - Label values

    static let knownArches = Set(["x86_64", "aarch64"])

    /// A label value for an image type a client sent.
    func imageTypeLabel(_ s: String) -> String { s.isEmpty ? "none" : imageTypes.contains(s) ? s : "other" }
    static func arch(_ s: String) -> String { knownArches.contains(s) ? s : "other" }
    func stage(_ s: String) -> String { stageTypes.contains(s) ? s : "other" }

    // MARK: - Recording

    private func count(_ name: String, _ dimensions: [(String, String)], by n: Int64 = 1) {
        recorder.count(name, dimensions, by: n)
    }

    private func time(_ name: String, _ dimensions: [(String, String)], ms: Int64) {
        recorder.time(name, dimensions, ms: ms)
    }

    func gauge(_ name: String, _ dimensions: [(String, String)], _ value: Double) {
        recorder.gauge(name, dimensions, value)
    }

    func buildSubmitted(arch: String, imageType: String) {
        count("kiln_builds_submitted_total", [("arch", Self.arch(arch)), ("image_type", imageTypeLabel(imageType))])
    }

    func buildFinished(arch: String, imageType: String, outcome: String, ms: Int64) {
        let dims = [("arch", Self.arch(arch)), ("image_type", imageTypeLabel(imageType))]
        count("kiln_builds_total", dims + [("outcome", outcome)])
        if outcome == "succeeded" { time("kiln_build_duration_seconds", dims, ms: ms) }
    }

    /// A job ended: kind "tree" (on an agent) or "assembly" (on the scheduler).
    func jobFinished(arch: String, imageType: String, kind: String, outcome: String) {
        count(
            "kiln_jobs_total",
            [
                ("arch", Self.arch(arch)), ("image_type", imageTypeLabel(imageType)),
                ("kind", kind), ("outcome", outcome),
            ])
    }

    /// An attempt of a tree job ended on an agent.
    func attemptFinished(arch: String, emulated: Bool, outcome: String, ms: Int64?) {
        let dims = [("arch", Self.arch(arch)), ("mode", emulated ? "emulated" : "native")]
        count("kiln_job_attempts_total", dims + [("outcome", outcome)])
        if outcome == "succeeded", let ms { time("kiln_job_duration_seconds", dims, ms: ms) }
    }

    func queueWait(arch: String, ms: Int64) {
        time("kiln_job_queue_wait_seconds", [("arch", Self.arch(arch))], ms: ms)
    }

    /// mode: "native" or "emulated" (on an agent), "scheduler" (assembly).
    func stageFinished(type: String, arch: String, mode: String, ms: Int64) {
        time("kiln_stage_duration_seconds", [("stage", stage(type)), ("arch", Self.arch(arch)), ("mode", mode)], ms: ms)
    }

    func streamed(arch: String, bytes: UInt64) {
        count("kiln_streamed_bytes_total", [("arch", Self.arch(arch))], by: Int64(clamping: bytes))
    }

    func treeCache(hit: Bool, arch: String) {
        count(hit ? "kiln_tree_cache_hits_total" : "kiln_tree_cache_misses_total", [("arch", Self.arch(arch))])
    }

    /// What a tree-cache hit saved: the stream and build time of the job that made the tree.
    func treeCacheSaved(bytes: UInt64, ms: Int64) {
        count("kiln_tree_cache_saved_bytes_total", [], by: Int64(clamping: bytes))
        recorder.add("kiln_tree_cache_saved_seconds_total", [], Double(max(0, ms)) / 1000)
    }

    func assemblyFinished(imageType: String, outcome: String, ms: Int64) {
        let dims = [("image_type", imageTypeLabel(imageType))]
        count("kiln_assemblies_total", dims + [("outcome", outcome)])
        if outcome == "succeeded" { time("kiln_assembly_duration_seconds", dims, ms: ms) }
    }

    func dropped() { count("kiln_dropped_messages_total", []) }

    /// The scheduler's own source cache (assembly), as running totals.
    func publish(sources now: SourceCacheStats.Totals) {
        recorder.total("kiln_source_cache_hits_total", Int64(now.hits))
        recorder.total("kiln_source_cache_misses_total", Int64(now.misses))
        recorder.total("kiln_source_cache_fetched_bytes_total", Int64(clamping: now.fetchedBytes))
    }

    /// The exposition text.
    package func emit() -> [UInt8] { recorder.emit() }
}
