import Foundation
import Logging
import Manifest
import Protocol
import Stages

/// One attempt on an agent: runs the pipeline with the engine (reporting
/// stage progress and log tails), then streams the tree back.
struct JobRunner: Sendable, ExecutionObserver {
    let agent: BuildAgent
    let assign: Kiln_V1_Assign
    /// Stage progress, in the order the executor reports it.
    let progress: OrderedPoster

    init(agent: BuildAgent, assign: Kiln_V1_Assign) {
        self.agent = agent
        self.assign = assign
        progress = OrderedPoster { message in await agent.post(message) }
    }

    var attemptID: UInt64 { assign.attemptID }
    var emulated: Bool { !agent.config.arches.contains(assign.arch) }
    var logDirectory: String { "\(agent.config.logsDirectory)/\(assign.buildID)-\(assign.attemptID)" }

    func run() async {
        defer { Task { await agent.finished(attemptID) } }
        let t0 = ContinuousClock.now
        func count(_ outcome: String, bytes: UInt64 = 0) {
            let ms = Int64((ContinuousClock.now - t0).seconds * 1000)
            agent.metrics.jobFinished(arch: assign.arch, emulated: emulated, outcome: outcome, ms: ms, streamedBytes: bytes)
        }
        let config = agent.config
        // The tree stays in the agent's store until it is uploaded (the
        // executor leases it only while it runs).
        let lease = agent.store.pin([assign.pipelineID])
        defer { lease.release() }
        var executor = Executor(
            registry: agent.registry, store: agent.store, sources: agent.sources,
            logger: agent.logger, observer: self, logDirectory: logDirectory)
        // From the scheduler, so bounded: a week at most.
        if assign.stageTimeoutMs > 0 { executor.stageTimeout = .milliseconds(Int64(min(assign.stageTimeoutMs, 7 * 86_400_000))) }
        do throws(any Error) {
            let manifest = try BuildManifest.decode(assign.manifestJson, file: "manifest of build \(assign.buildID)")
            guard manifest.pipeline(named: assign.export) != nil else {
                count("failed")
                return await agent.fail(attemptID, reason: "the manifest has no pipeline \(assign.export)", infrastructure: false)
            }
            if let delay = Self.testStageDelay { try await Task.sleep(for: delay) }
            let result: Executor.Result
            do {
                result = try await executor.run(manifest, exports: [assign.export])
            } catch {
                await progress.finish()
                throw error
            }
            // Every stage's progress is out before the tree or the failure.
            await progress.finish()
            try Task.checkCancellation()
            guard let tree = result.exports[assign.export] else { return }
            if config.sharesStoreWithScheduler {
                count("succeeded")
                return await agent.complete(attemptID, with: .streamEnd(attemptID: attemptID, totalLength: 0, sha256: [], format: "store"))
            }
            let a = agent
            let upload = TreeUpload(
                attemptID: attemptID, tree: tree, spoolDirectory: config.spoolDirectory,
                maxChunkBytes: Int(assign.maxChunkBytes == 0 ? 1 << 20 : assign.maxChunkBytes)
            ) { m in
                await a.post(m)
            }
            guard await agent.attach(attemptID, upload) else { return }
            let stats = try await upload.run()
            count("succeeded", bytes: stats.bytes)
            agent.logger.info(
                "tree of \(assign.pipelineName) acknowledged (\(stats.bytes) bytes)",
                metadata: ["attempt.id": "\(attemptID)"])
        } catch is CancellationError {
            return count("cancelled")
        } catch let ExecutorError.stageFailed(pipeline, index, count, type, reason, log) {
            if Task.isCancelled { return }
            agent.metrics.jobFinished(arch: assign.arch, emulated: emulated, outcome: "failed", ms: 0, streamedBytes: 0)
            await agent.fail(
                attemptID, reason: "\(pipeline) stage \(index + 1)/\(count): \(reason)", infrastructure: false,
                stageType: type, stageIndex: index, logTail: Self.tail(log, lines: 30))
        } catch let error as ExecutorError {
            guard case .stageTimedOut(_, let index, _, let type, _, let log) = error else {
                count("failed")
                return await agent.fail(attemptID, reason: "\(error)", infrastructure: false)
            }
            if Task.isCancelled { return }
            agent.metrics.jobFinished(arch: assign.arch, emulated: emulated, outcome: "failed", ms: 0, streamedBytes: 0)
            await agent.fail(
                attemptID, reason: error.timeoutReason, infrastructure: false,
                stageType: type, stageIndex: index, logTail: Self.tail(log, lines: 30))
        } catch let error as ManifestError {
            count("failed")
            await agent.fail(attemptID, reason: "\(error)", infrastructure: false)
        } catch {
            if Task.isCancelled { return count("cancelled") }
            count("infrastructure")
            await agent.fail(attemptID, reason: "\(error)", infrastructure: true)
        }
    }

    func event(_ event: ExecutionEvent) {
        var p = Kiln_V1_Progress()
        p.attemptID = attemptID
        switch event {
        case .stageStarted(let pipeline, let index, let count, let type):
            p.pipelineName = pipeline
            p.stageIndex = UInt32(index)
            p.stageCount = UInt32(count)
            p.stageType = type
            p.state = .started
        case .stageFinished(let pipeline, let index, let count, let type, let seconds):
            agent.metrics.stageFinished(type: type, arch: assign.arch, emulated: emulated, seconds: seconds)
            p.pipelineName = pipeline
            p.stageIndex = UInt32(index)
            p.stageCount = UInt32(count)
            p.stageType = type
            p.state = .finished
            p.logLines = Self.tail("\(logDirectory)/\(pipeline).\(index + 1).\(type).log", lines: 10)
        case .pipelineCached(let name):
            agent.metrics.pipelineCached()
            p.pipelineName = name
            p.state = .cached
        default:
            return
        }
        progress.send(WireMessage(.progress(p)))
    }

    static func tail(_ path: String, lines: Int) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").suffix(lines).map { String($0.prefix(500)) }
    }

    /// Test hook (fault tests): wait this long before running the pipeline,
    /// so a test can kill the agent in the middle of a job.
    static let testStageDelay: Duration? = ProcessInfo.processInfo.environment["KILN_TEST_JOB_DELAY_MS"]
        .flatMap(Int.init).map { .milliseconds($0) }
}
