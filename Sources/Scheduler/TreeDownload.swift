import Foundation
import Logging
import Protocol
import Stages
import Synchronization
import Threads

package struct DownloadStats: Sendable, Equatable {
    /// Length of the verified compressed stream.
    package var compressedBytes: UInt64 = 0
    /// Bytes of file contents extracted.
    package var treeBytes: UInt64 = 0
    /// Entries extracted.
    package var entries = 0
    /// From `start` until the tree was stored and `Ack` sent.
    package var seconds: Double = 0
    /// `Resend`s asked for (corrupt or missing chunks, stalls, restart).
    package var resends = 0
}

/// Receives one attempt's tree: verifies chunks and writes them into a spool
/// (memory, then a file in the store's tmp directory), and only when the
/// whole stream checks out (length and sha256) commits the extracted tree as
/// `pipelineID` and acknowledges. Memory stays flat: the agent may send only
/// `window` bytes past the verified prefix, and bytes beyond a small limit go
/// to disk.
///
/// All of it runs on the download's `WorkLane`. A stream that is verified
/// before `inlineLimit` bytes arrived (most trees of a busy farm: small or
/// no-op jobs) is extracted, stored and acknowledged right there, with no
/// other thread involved; a bigger one is extracted while it is still
/// arriving, by libarchive on a thread of its own reading the verified prefix.
///
/// On failure or `cancel()` the agent gets `Cancel`, the work directory and
/// spool are removed, and the outcome is the error saying why.
package final class TreeDownload: Sendable {
    package let attemptID: UInt64
    package let pipelineID: String
    private let store: TreeStore
    private let commands: CommandRunner
    /// Hands a message to the agent without waiting (in order).
    private let post: @Sendable (WireMessage) -> Void
    /// Called once the outcome is known and the last message was posted.
    private let closeOutbox: @Sendable () -> Void
    private let receiver: StreamReceiver
    private let work: String
    private let lane: WorkLane
    private let state = Mutex(State())
    /// How long without progress before asking the agent to send again.
    private let stallInterval: Duration
    /// Bytes of chunks waiting for the lane; beyond this they are dropped
    /// (an honest agent never gets near it: it holds only `window` of credit).
    private let queueLimit: Int
    /// What the stream and its tree may cost (checked as they arrive).
    private let limits: StreamLimits
    /// Flushes the tree before it is committed and acknowledged.
    private let sync: TreeSync
    /// Verified bytes after which extraction starts while the rest arrives.
    package static let inlineLimit: UInt64 = 1 << 20

    private enum Extraction {
        case notStarted
        case running
        case done(Result<TreeArchive.ExtractStats, any Error>)
    }

    private struct State {
        var started: ContinuousClock.Instant?
        var extraction = Extraction.notStarted
        /// Why the extraction failed while the stream was still fine (it is the cause then).
        var extractionFailure: (any Error)?
        /// Verified length at the last stall check, and when it last grew.
        var progress: (length: UInt64, at: ContinuousClock.Instant)?
        var queued = 0
        var cancelled = false
        var concluding = false
        var outcome: Result<DownloadStats, any Error>?
        var waiters: [@Sendable (Result<DownloadStats, any Error>) -> Void] = []
    }

    /// Extracts into a work directory of `store` and commits it as
    /// `pipelineID` (`TreeStore.commitMoving`) only after the whole stream is
    /// verified. window: credit ahead of the verified prefix (e.g. 8 MiB).
    /// post: hands a message to the agent without blocking, in order.
    package init(
        attemptID: UInt64, pipelineID: String, store: TreeStore, window: UInt64,
        maxChunkBytes: Int = Framing.Limits.default.maxDataBytes, stallInterval: Duration = .seconds(10),
        limits: StreamLimits = .default, sync: TreeSync = .system,
        commands: CommandRunner? = nil,
        post: @escaping @Sendable (WireMessage) -> Void,
        closeOutbox: @escaping @Sendable () -> Void = {}
    ) throws {
        self.attemptID = attemptID
        self.pipelineID = pipelineID
        self.store = store
        self.post = post
        self.closeOutbox = closeOutbox
        self.stallInterval = stallInterval
        self.limits = limits
        self.sync = sync
        self.commands = commands ?? CommandRunner(logPath: "/dev/null", logger: Logger(label: "kiln.tree-download"))
        work = store.newWorkPath()  // made by whoever extracts, not here on the caller's thread
        let spoolPath = store.temporaryPath("stream", suffix: "-attempt\(attemptID).tar.zst")
        let storeRoot = store.root, reserve = limits.freeSpaceReserve, hold = limits.holdCreditBelowFree
        var holdCredit: (@Sendable () -> Bool)?
        if hold > 0 { holdCredit = { StreamLimits.holdsCredit(storeRoot, below: hold) } }
        receiver = StreamReceiver(
            attemptID: attemptID, spool: try SpoolFile(path: spoolPath, create: true, memoryLimit: 256 << 10),
            window: window, maxChunkBytes: maxChunkBytes, maxBytes: limits.maxCompressedBytes,
            admitCredit: { StreamLimits.checkFreeSpace(storeRoot, reserve: reserve, wanted: $0) },
            holdCredit: holdCredit)
        queueLimit = Int(clamping: 2 * window) + 2 * maxChunkBytes
        lane = WorkLane.forDownload(attemptID)
    }

    /// The same with a sender that may wait (a socket's `send`): messages
    /// go out in order from a task of the download's own.
    package convenience init(
        attemptID: UInt64, pipelineID: String, store: TreeStore, window: UInt64,
        maxChunkBytes: Int = Framing.Limits.default.maxDataBytes, stallInterval: Duration = .seconds(10),
        limits: StreamLimits = .default, sync: TreeSync = .system,
        commands: CommandRunner? = nil,
        send: @escaping @Sendable (WireMessage) async throws -> Void
    ) throws {
        let (outgoing, outbox) = AsyncStream<WireMessage>.makeStream()
        try self.init(
            attemptID: attemptID, pipelineID: pipelineID, store: store, window: window, maxChunkBytes: maxChunkBytes,
            stallInterval: stallInterval, limits: limits, sync: sync, commands: commands,
            post: { outbox.yield($0) }, closeOutbox: { outbox.finish() })
        Task {
            for await message in outgoing { try? await send(message) }
        }
    }

    /// Sends the first `Credit` (with `restart`, first `Resend(0, 0)`: an
    /// attempt re-adopted after a scheduler restart); from now on chunks are taken.
    package func start(restart: Bool) {
        state.withLock { state in
            guard state.started == nil else { return }
            state.started = .now
            // Queued under the lock: any chunk admitted after this is queued behind it.
            lane.async { [self] in
                for message in receiver.start(restart: restart) { post(message) }
                self.state.withLock { $0.progress = (receiver.verifiedLength, .now) }
                StallWatch.shared.add(self)
                settle()
            }
        }
    }

    /// `StreamChunk` (+data) and `StreamEnd` for this attempt, in arrival
    /// order. Never blocks and never traps on bad input.
    package func deliver(_ message: WireMessage) {
        guard message.attemptID == attemptID else { return }
        switch message.envelope.body {
        case .streamChunk, .streamEnd: break
        default: return
        }
        let size = message.data?.count ?? 0
        let admitted = state.withLock { state -> Bool in
            guard state.started != nil, !state.cancelled, state.outcome == nil, state.queued + size <= queueLimit else { return false }
            state.queued += size
            return true
        }
        guard admitted else { return }
        lane.async { [self] in
            let replies = receiver.receive(message)
            state.withLock { $0.queued -= size }
            for reply in replies { post(reply) }
            settle()
        }
    }

    /// Calls `body` with the outcome once it is known (at once if it is):
    /// the stats when the tree is in the store and `Ack` was sent, else why
    /// not (the stream's `StreamError`, the extraction's `TreeArchiveError`,
    /// `StreamError.cancelled`). `body` runs on whichever thread concluded.
    package func whenFinished(_ body: @escaping @Sendable (Result<DownloadStats, any Error>) -> Void) {
        let outcome = state.withLock { state -> Result<DownloadStats, any Error>? in
            if let outcome = state.outcome { return outcome }
            state.waiters.append(body)
            return nil
        }
        if let outcome { body(outcome) }
    }

    /// Waits for the outcome (`whenFinished`); needs `start` (or `cancel`).
    package func result() async throws -> DownloadStats {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<DownloadStats, any Error>) in
            whenFinished { done.resume(with: $0) }
        }
    }

    /// Stops the download: the agent gets `Cancel`, the outcome is `StreamError.cancelled`.
    package func cancel() {
        let first = state.withLock { state in
            defer { state.cancelled = true }
            return !state.cancelled && state.outcome == nil
        }
        guard first else { return }
        receiver.fail(.cancelled(reason: "cancelled by the scheduler"))
        lane.async { [self] in settle() }
    }

    // MARK: - On the lane

    /// Moves the download on after anything happened: starts a concurrent
    /// extraction once the stream outgrows `inlineLimit`; once the stream is
    /// verified, extracts it here (if nobody did), stores it and acknowledges;
    /// once it failed (and no extraction still reads it), cleans up.
    private func settle() {
        let (extraction, idle) = state.withLock { ($0.extraction, !$0.concluding) }
        guard idle else { return }
        switch receiver.outcome {
        case .receiving:
            if case .notStarted = extraction, receiver.verifiedLength >= Self.inlineLimit { startExtraction() }
        case .verified(let length):
            let extracted: Result<TreeArchive.ExtractStats, any Error>
            switch extraction {
            case .running: return  // its end settles again
            case .done(let result):
                guard beginConcluding() else { return }
                extracted = result
            case .notStarted:
                guard beginConcluding() else { return }
                let receiver = receiver
                let limits = limits.archive
                extracted = Result {
                    try TreeArchive.extractOnThisThread(into: work, creating: true, limits: limits) { try receiver.read(into: $0) }
                }
                state.withLock { $0.extraction = .done(extracted) }
            }
            store(extracted, length: length)
        case .failed(let cause):
            if case .running = extraction { return }  // it sees the failure in its next read
            guard beginConcluding() else { return }
            fail(state.withLock { $0.extractionFailure } ?? cause)
        }
    }

    /// The stream outgrew the inline limit: extract while the rest arrives.
    private func startExtraction() {
        state.withLock { $0.extraction = .running }
        let (receiver, work, lane, limits) = (receiver, work, lane, limits.archive)
        Task { [self] in
            let extracted: Result<TreeArchive.ExtractStats, any Error>
            do {
                extracted = .success(
                    try await TreeArchive.extract(into: work, creating: true, limits: limits) {
                        try receiver.read(into: $0)
                    })
            } catch {
                extracted = .failure(error)
            }
            lane.async { [self] in
                if case .failure(let error) = extracted, receiver.outcome == .receiving {
                    // The stream was fine: the extraction's failure is the cause.
                    state.withLock { $0.extractionFailure = error }
                    receiver.fail(.cancelled(reason: "extraction failed: \(error)"))
                }
                state.withLock { $0.extraction = .done(extracted) }
                settle()
            }
        }
    }

    /// Marks the download as concluding (nothing else settles it); false when it already was.
    private func beginConcluding() -> Bool {
        state.withLock { state in
            defer { state.concluding = true }
            return !state.concluding
        }
    }

    /// The stream is verified and extracted (or the extraction failed): commits and acknowledges.
    private func store(_ extracted: Result<TreeArchive.ExtractStats, any Error>, length: UInt64) {
        let stats: TreeArchive.ExtractStats
        switch extracted {
        case .failure(let error): return fail(error)
        case .success(let s): stats = s
        }
        // Durable before the agent hears Ack and deletes its copy: the files
        // before the rename (the store never holds a tree a crash could
        // leave half-written), then the rename itself. Both sync the store's
        // root: the work directory is on its filesystem (the rename needs
        // that), and one path lets every download share a syncfs.
        sync.flush(store.root) { [self] synced in
            lane.async { [self] in
                if case .failure(let error) = synced { return fail(error) }
                let kept: Bool
                do {
                    kept = try store.commitMoving(work, as: pipelineID)
                } catch {
                    return fail(error)
                }
                guard kept else { return acknowledge(stats, length: length, kept: false) }
                sync.flush(store.root) { [self] synced in
                    lane.async { [self] in
                        if case .failure(let error) = synced { return fail(error) }
                        acknowledge(stats, length: length, kept: true)
                    }
                }
            }
        }
    }

    /// The tree is in the store and on disk (or someone else's copy is): tells the agent and concludes.
    private func acknowledge(_ stats: TreeArchive.ExtractStats, length: UInt64, kept: Bool) {
        StallWatch.shared.remove(self)
        receiver.spool.remove()
        post(.ack(attemptID: attemptID))
        let started = state.withLock { $0.started } ?? .now
        let outcome = DownloadStats(
            compressedBytes: length, treeBytes: stats.treeBytes, entries: stats.entries,
            seconds: (ContinuousClock.now - started).seconds, resends: receiver.counters.resends)
        if kept {
            finish(.success(outcome))
        } else {
            // Someone else stored it first: theirs stays, this copy goes.
            removeWork { self.finish(.success(outcome)) }
        }
    }

    /// Ends the download with `error`: removes the spool and the work
    /// directory and tells the agent.
    private func fail(_ error: any Error) {
        StallWatch.shared.remove(self)
        receiver.spool.remove()
        post(.cancel(attemptID: attemptID, reason: "the scheduler could not store the tree: \(error)"))
        let extracted: Bool = state.withLock { if case .notStarted = $0.extraction { false } else { true } }
        if extracted {
            removeWork { self.finish(.failure(error)) }
        } else {
            finish(.failure(error))
        }
    }

    /// Removes the work directory (off the lane: it may be a whole tree), then runs `then`.
    private func removeWork(then: @escaping @Sendable () -> Void) {
        let (store, work, commands) = (store, work, commands)
        Task {
            try? await store.remove(work, commands: commands)
            then()
        }
    }

    private func finish(_ outcome: Result<DownloadStats, any Error>) {
        let waiters = state.withLock { state -> [@Sendable (Result<DownloadStats, any Error>) -> Void] in
            guard state.outcome == nil else { return [] }
            state.outcome = outcome
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        closeOutbox()
        for waiter in waiters { waiter(outcome) }
    }

    /// Called about once a second by `StallWatch`: after `stallInterval`
    /// without progress, asks the agent to send again from the verified
    /// prefix (repairs lost chunks, a lost `StreamEnd` or a lost credit).
    /// Returns false once the stream is decided (nothing more to watch).
    fileprivate func checkStall(now: ContinuousClock.Instant) -> Bool {
        guard receiver.outcome == .receiving else { return false }
        let length = receiver.verifiedLength
        let stalled = state.withLock { state -> Bool in
            guard let p = state.progress, p.length == length else {
                state.progress = (length, now)
                return false
            }
            guard now - p.at >= stallInterval else { return false }
            state.progress = (length, now)
            return true
        }
        if stalled {
            lane.async { [self] in for message in receiver.stalled() { post(message) } }
        }
        return true
    }
}

/// One clock for the stall checks of every download in the process, rather
/// than a sleeping task (and a timer armed and cancelled) per download.
private final class StallWatch: Sendable {
    static let shared = StallWatch()
    private let watched = Mutex<(downloads: [ObjectIdentifier: TreeDownload], running: Bool)>(([:], false))

    func add(_ download: TreeDownload) {
        let start = watched.withLock { w -> Bool in
            w.downloads[ObjectIdentifier(download)] = download
            defer { w.running = true }
            return !w.running
        }
        if start { Task.detached { await self.run() } }
    }

    func remove(_ download: TreeDownload) {
        _ = watched.withLock { $0.downloads.removeValue(forKey: ObjectIdentifier(download)) }
    }

    /// Ticks while anything is watched, then stops (and restarts with the next `add`).
    private func run() async {
        while true {
            try? await Task.sleep(for: .seconds(1))
            let downloads = watched.withLock { w -> [TreeDownload]? in
                if w.downloads.isEmpty {
                    w.running = false
                    return nil
                }
                return Array(w.downloads.values)
            }
            guard let downloads else { return }
            let now = ContinuousClock.now
            for d in downloads where !d.checkStall(now: now) { remove(d) }
        }
    }
}
