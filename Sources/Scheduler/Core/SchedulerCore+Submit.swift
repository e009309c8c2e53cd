import Foundation

/// Submitting: a validated build and its jobs enter memory; the actor
/// commits them (with the first assignments) before anyone hears of them.
extension SchedulerCore {
    /// A build was submitted (validated and split into jobs, not yet
    /// committed): tree jobs whose tree is stored are cached, the others queued.
    mutating func submitted(_ build: FarmBuild, jobs newJobs: [FarmJob], notes: [String]) {
        builds[build.id] = build
        for j in newJobs { jobs[j.id] = j }
        event(build.id, .queued, message: "queued \(build.label) (\(newJobs.filter(\.onAgent).count) tree jobs)")
        for note in notes { event(build.id, .note, message: note) }
        for j in newJobs where j.onAgent {
            if j.state == .cached {
                event(build.id, .cached, job: j.id, message: "\(j.pipelineName): tree \(j.pipelineID.prefix(12)) is stored")
            } else {
                enqueue(j.id)
            }
        }
    }

    /// The submission is durable: its jobs that were cached at submit count as cache hits.
    mutating func cachedAtSubmit(_ cached: [FarmJob], arch: String, imageType: String) {
        for j in cached {
            count(.jobFinished(arch: arch, imageType: imageType, kind: "tree", outcome: "cached"))
            cacheHit(j, saved: nil)
        }
    }
}
