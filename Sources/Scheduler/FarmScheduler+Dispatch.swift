import Foundation
import Protocol
import Stages

extension FarmScheduler {
    /// Coalesces dispatch requests: one pass runs for any number of triggers.
    func scheduleDispatch() {
        guard !dispatchPending else { return }
        dispatchPending = true
        Task { await self.dispatch() }
    }

    /// Assigns queued tree jobs to agents with a free slot for their
    /// architecture (the core chooses): all assignments of one pass are
    /// committed in one transaction, and only then are the `Assign`s sent.
    func dispatch() async {
        dispatchPending = false
        // Nothing new starts while the disk is low; queued jobs wait (`checkDisk`).
        guard db.readOnly == nil, lowDisk == nil else { return }
        var selection = SchedulerCore.Selection()
        act {
            selection = $0.selectAssignments()
            $0.treesFound(selection.stored)
        }
        let assigned = selection.assigned
        guard !assigned.isEmpty else { return }
        let started = now
        do {
            try await records.insertAttempts(assigned, startedMS: started)
        } catch {
            let reason = "\(error)"
            act { $0.assignmentsFailed(assigned, reason: reason) }
            return
        }
        sendAssignments(assigned)
    }

    /// Sends the `Assign`s of committed assignments and starts their
    /// downloads, one at a time (a download that cannot start fails its
    /// attempt before the next `Assign` leaves).
    func sendAssignments(_ assigned: [SchedulerCore.Assignment]) {
        for a in assigned { act { $0.assignmentCommitted(a) } }
    }

    /// Starts receiving the attempt's tree (not for agents that share the store).
    func startDownload(_ attemptID: UInt64, restart: Bool) {
        guard let a = core.attempts[attemptID], let job = core.jobs[a.jobID], let agent = core.agents[a.agentID],
            !config.sharedStoreAgents.contains(a.agentID), let outbox
        else { return }
        downloads[attemptID]?.cancel()
        let identity = agent.identity
        // Below --min-free-gib a stream waits for credit instead of failing.
        var limits = config.streamLimits
        limits.holdCreditBelowFree = config.minFreeBytes
        let download: TreeDownload
        do {
            download = try TreeDownload(
                attemptID: attemptID, pipelineID: job.pipelineID, store: store,
                window: config.streamWindow, limits: limits, post: { message in outbox.agent(identity, message) })
        } catch {
            let failure = AttemptFailure(reason: "cannot receive the tree: \(error)", infrastructure: true)
            act { $0.attemptFailed(attemptID, failure) }
            return
        }
        downloads[attemptID] = download
        // Outcomes reach the actor in batches, like agent messages.
        let finished = finishedDownloads
        download.whenFinished { [weak download] outcome in
            guard let download else { return }
            if finished.append(FinishedDownload(attemptID: attemptID, download: download, outcome: outcome)) {
                Task { await self.drain(finished) }
            }
        }
        download.start(restart: restart)
    }

    /// A download's outcome on its way to the actor.
    struct FinishedDownload: Sendable {
        var attemptID: UInt64
        var download: TreeDownload
        var outcome: Result<DownloadStats, any Error>
    }

    /// Handles the downloads that finished until none is left.
    func drain(_ inbox: Inbox<FinishedDownload>) {
        drain(inbox) { scheduler, item in
            switch item.outcome {
            case .success(let stats): scheduler.streamFinished(item.attemptID, download: item.download, stats: stats)
            case .failure(let error): scheduler.streamFailed(item.attemptID, download: item.download, error: error)
            }
        }
    }

    func streamFinished(_ attemptID: UInt64, download: TreeDownload, stats: DownloadStats) {
        guard downloads[attemptID] === download else { return }
        act { $0.treeReceived(attemptID, compressedBytes: stats.compressedBytes, seconds: stats.seconds, resends: stats.resends) }
    }

    func streamFailed(_ attemptID: UInt64, download: TreeDownload, error: Error) {
        guard downloads[attemptID] === download else { return }
        let failure = AttemptFailure(reason: "tree stream failed: \(error)", infrastructure: true)
        act { $0.attemptFailed(attemptID, failure) }
    }
}
