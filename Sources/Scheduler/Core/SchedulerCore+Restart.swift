import Foundation

/// Restart (docs/architecture.md §5): the actor loads what the store holds
/// of unfinished builds (`SchedulerStore.loadUnfinished`, which bumps the
/// epoch); the core makes it memory again.
extension SchedulerCore {
    /// Unfinished builds, their jobs and every known agent, as the store
    /// held them. Running attempts get a fresh lease and wait for their
    /// agent's Hello (re-adopted then, requeued when the lease runs out);
    /// queued jobs are queued again; interrupted assemblies wait to run
    /// again from the stored trees. Returns how many attempts await their agents.
    mutating func restore(_ loaded: SchedulerStore.Unfinished) -> Int {
        epoch = loaded.epoch
        nextAttemptID = UInt64(loaded.maxAttempt) + 1
        for a in loaded.agents { agents[a.id] = a }
        for var b in loaded.builds {
            b.logBytes = loaded.logBytes[b.id] ?? 0
            builds[b.id] = b
        }
        let lease = now + Int64(settings.leaseMS)
        var interrupted = 0
        for job in loaded.jobs {
            let buildID = job.buildID
            guard builds[buildID] != nil else { continue }
            builds[buildID]?.jobIDs.append(job.id)
            jobs[job.id] = job
            if job.onAgent {
                switch job.state {
                case .queued:
                    enqueue(job.id)
                case .assigned, .running, .streaming:
                    // Waits for its agent to say Hello with it; requeued when the lease runs out.
                    attempts[job.attemptID] = FarmAttempt(
                        id: job.attemptID, jobID: job.id, pipelineID: job.pipelineID, agentID: job.agentID,
                        leaseUntilMS: lease,
                        startedMS: loaded.attemptStarts[Int64(job.attemptID)] ?? 0)
                    agents[job.agentID]?.attempts.insert(job.attemptID)
                    interrupted += 1
                default:
                    break
                }
            } else if job.state == .queued || job.state == .running {
                updateJob(job.id) { $0.state = .waiting }  // assembly is re-run from the stored trees
            }
        }
        return interrupted
    }

    /// After `restore` (and once the builds that no longer load are marked
    /// failed): each resumed build says so in its log and moves on.
    mutating func resume() {
        for id in builds.keys.sorted() {
            event(id, .queued, message: "scheduler restarted (epoch \(epoch)): build resumed")
            advance(id)
        }
    }
}
