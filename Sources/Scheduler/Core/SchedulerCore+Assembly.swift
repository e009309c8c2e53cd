import Foundation

/// Assembly: a build whose trees are all stored waits for one of the
/// scheduler's `assemblyConcurrency` places; the actor runs it.
extension SchedulerCore {
    /// Starts queued assemblies while there are places (and new work may start).
    mutating func startAssemblies() {
        while outside.startsWork, assembliesRunning < settings.assemblyConcurrency, !assemblyQueue.isEmpty {
            let jobID = assemblyQueue.removeFirst()
            guard let job = jobs[jobID], let build = builds[job.buildID], job.state == .queued else { continue }
            // A tree that is no longer in the store (removed by hand, or by
            // `kiln store forget`) is built again, and the build says so.
            let missing = build.jobIDs.compactMap { jobs[$0] }.filter { $0.onAgent && !outside.hasTree($0.pipelineID) }
            if !missing.isEmpty {
                for m in missing {
                    updateJob(m.id) { $0.state = .queued }
                    event(
                        build.id, .requeued, job: m.id,
                        message: "\(m.pipelineName): tree \(m.pipelineID.prefix(12)) is no longer in the store; building it again")
                    enqueue(m.id)
                }
                updateJob(jobID) { $0.state = .waiting }
                emit(.dispatchSoon)
                continue
            }
            assembliesRunning += 1
            updateJob(jobID) { $0.state = .running }
            event(build.id, .stageStarted, job: jobID, message: "assembling \(build.exports.joined(separator: ", ")) on the scheduler")
            emit(.startAssembly(jobID: jobID, build: build))
        }
    }

    /// An assembly ended (what it made, or why it failed, follows): its place is free.
    mutating func assemblyEnded() {
        assembliesRunning -= 1
    }

    /// A stage of a running assembly started.
    mutating func assemblyStageStarted(_ buildID: String, _ jobID: String, pipeline: String, index: Int, count: Int, type: String) {
        updateJob(jobID) {
            $0.stageIndex = UInt32(index)
            $0.stageCount = UInt32(count)
            $0.stageType = type
        }
        event(buildID, .stageStarted, job: jobID, message: "\(pipeline) stage \(index + 1)/\(count) \(type) started")
    }

    /// A stage of a running assembly finished after `seconds`.
    mutating func assemblyStageFinished(
        _ buildID: String, _ jobID: String, pipeline: String, index: Int, count: Int, type: String, seconds: Double
    ) {
        stageRan(
            buildID: buildID, jobID: jobID, attemptID: 0, index: UInt32(index), type: type, mode: "scheduler",
            ms: Int64(seconds * 1000))
        event(
            buildID, .stageFinished, job: jobID,
            message: "\(pipeline) stage \(index + 1)/\(count) \(type) finished in \(Self.decimal(seconds)) s")
    }

    /// The assembly's artifacts are recorded (`message` names them): the job succeeded.
    mutating func assembled(_ buildID: String, _ jobID: String, message: String) {
        event(buildID, .assembled, job: jobID, message: message)
        updateJob(jobID) { $0.state = .succeeded }
        advance(buildID)
    }

    /// The assembly failed: so does its build.
    mutating func assemblyFailed(_ buildID: String, _ jobID: String, reason: String, logTail: [String]) {
        let text = "assembly: \(reason)" + (logTail.isEmpty ? "" : "\n" + logTail.joined(separator: "\n"))
        updateJob(jobID) {
            $0.state = .failed
            $0.failure = text
        }
        event(buildID, .failed, job: jobID, message: text, logLines: logTail)
        advance(buildID)
    }
}
