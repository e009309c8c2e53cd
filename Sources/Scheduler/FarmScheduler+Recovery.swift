import Foundation
import Manifest
import Protocol

extension FarmScheduler {
    /// Restart (docs/architecture.md §5): bumps the epoch, reloads unfinished builds,
    /// gives running attempts a fresh lease so that reconnecting agents can
    /// re-adopt them, requeues queued jobs and re-runs interrupted assemblies.
    func recover() async throws {
        let loaded = try await records.loadUnfinished(registry: registry)
        epoch = loaded.epoch
        core.nextAttemptID = UInt64(loaded.maxAttempt) + 1
        for a in loaded.agents { core.agents[a.id] = a }
        for var b in loaded.builds {
            b.logBytes = loaded.logBytes[b.id] ?? 0
            treeLeases[b.id] = store.pin(b.ids)
            core.builds[b.id] = b
        }
        let failedToLoad = loaded.failed
        let lease = now + Int64(config.leaseMS)
        var interrupted = 0
        for job in loaded.jobs {
            let buildID = job.buildID
            guard core.builds[buildID] != nil else { continue }
            core.builds[buildID]?.jobIDs.append(job.id)
            core.jobs[job.id] = job
            if job.onAgent {
                switch job.state {
                case .queued:
                    act { $0.enqueue(job.id) }
                case .assigned, .running, .streaming:
                    // Waits for its agent to say Hello with it; requeued when the lease runs out.
                    core.attempts[job.attemptID] = FarmAttempt(
                        id: job.attemptID, jobID: job.id, pipelineID: job.pipelineID, agentID: job.agentID,
                        leaseUntilMS: lease,
                        startedMS: loaded.attemptStarts[Int64(job.attemptID)] ?? 0)
                    core.agents[job.agentID]?.attempts.insert(job.attemptID)
                    interrupted += 1
                default:
                    break
                }
            } else if job.state == .queued || job.state == .running {
                act { $0.updateJob(job.id) { $0.state = .waiting } }  // assembly is re-run from the stored trees
            }
        }
        for (id, reason) in failedToLoad {
            try await records.failBuild(id, reason: reason)
        }
        if !core.builds.isEmpty {
            logger.info(
                "recovered \(core.builds.count) unfinished build(s), \(interrupted) attempt(s) awaiting their agents",
                metadata: ["scheduler.epoch": "\(epoch)"])
        }
        for id in core.builds.keys.sorted() {
            let epoch = self.epoch
            act {
                $0.event(id, .queued, message: "scheduler restarted (epoch \(epoch)): build resumed")
                $0.advance(id)
            }
        }
    }

    static func list(_ text: String?, separator: Character = ",") -> [String] {
        (text ?? "").split(separator: separator).map(String.init)
    }
}
