import Foundation
import Logging
import Protocol
import Stages
import Synchronization

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
/// file in the store's tmp directory, extracts the verified prefix while the
/// rest is still arriving (libarchive on its own thread), and only when the
/// whole stream checks out (length and sha256) commits the extracted tree as
/// `pipelineID` and acknowledges. Memory stays flat: the agent may send only
/// `window` bytes past the verified prefix, and bytes go to disk.
///
/// On failure or `cancel()` the agent gets `Cancel`, the work directory and
/// spool are removed, and `result()` throws why.
package final class TreeDownload: Sendable {
    package let attemptID: UInt64
    package let pipelineID: String
    private let store: TreeStore
    private let commands: CommandRunner
    private let send: @Sendable (WireMessage) async throws -> Void
    private let receiver: StreamReceiver
    private let work: String
    /// Verifies and writes chunks in arrival order (`StreamReceiver` wants one caller at a time).
    private let verifier: DispatchQueue
    private let outbox: AsyncStream<WireMessage>.Continuation
    private let outgoing: AsyncStream<WireMessage>
    private let state = Mutex(State())
    /// How long without progress before asking the agent to send again.
    private let stallInterval: Duration
    /// Bytes of chunks waiting for the verifier; beyond this they are dropped
    /// (an honest agent never gets near it: it holds only `window` of credit).
    private let queueLimit: Int

    private struct State {
        var started: ContinuousClock.Instant?
        var extraction: Task<TreeArchive.ExtractStats, any Error>?
        /// Verified length at the last stall check, and when it last grew.
        var progress: (length: UInt64, at: ContinuousClock.Instant)?
        var queued = 0
        var cancelled = false
        var waitingForVerdict: [CheckedContinuation<Void, Never>] = []
        var resultTaken = false
    }

    /// Extracts into a work directory of `store` and commits it as
    /// `pipelineID` (`TreeStore.commit(…, move: true)`) only after the whole
    /// stream is verified. window: credit ahead of the verified prefix (e.g. 8 MiB).
    package init(attemptID: UInt64, pipelineID: String, store: TreeStore, window: UInt64,
                 maxChunkBytes: Int = Framing.Limits.default.maxDataBytes, stallInterval: Duration = .seconds(10),
                 commands: CommandRunner? = nil,
                 send: @escaping @Sendable (WireMessage) async throws -> Void) throws {
        self.attemptID = attemptID
        self.pipelineID = pipelineID
        self.store = store
        self.send = send
        self.stallInterval = stallInterval
        self.commands = commands ?? CommandRunner(logPath: "/dev/null", logger: Logger(label: "kiln.tree-download"))
        work = store.newWorkPath()  // made by the extraction thread, not here on the caller's
        let spoolPath = "\(store.root)/tmp/stream-\(attemptID)-\(UUID().uuidString.prefix(8).lowercased()).tar.zst"
        receiver = StreamReceiver(attemptID: attemptID, spool: try SpoolFile(path: spoolPath, create: true, memoryLimit: 256 << 10),
                                  window: window, maxChunkBytes: maxChunkBytes)
        queueLimit = Int(clamping: 2 * window) + 2 * maxChunkBytes
        verifier = DispatchQueue(label: "kiln.download.\(attemptID)")
        (outgoing, outbox) = AsyncStream<WireMessage>.makeStream()
    }

    /// Sends the first `Credit` (with `restart`, first `Resend(0, 0)`: an
    /// attempt re-adopted after a scheduler restart) and starts extracting.
    package func start(restart: Bool) async {
        let first: Bool = state.withLock { state in
            guard state.started == nil else { return false }
            state.started = .now
            let receiver = receiver
            state.extraction = Task {
                try await TreeArchive.extract(into: work, creating: true) { buffer in try receiver.read(into: buffer) }
            }
            return true
        }
        guard first else { return }
        let opening = await onVerifier { $0.start(restart: restart) }
        for message in opening { try? await send(message) }
        Task { [self] in
            for await message in outgoing { try? await send(message) }
        }
        state.withLock { $0.progress = (receiver.verifiedLength, .now) }
        StallWatch.shared.add(self)
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
            guard state.started != nil, !state.cancelled, state.queued + size <= queueLimit else { return false }
            state.queued += size
            return true
        }
        guard admitted else { return }
        verifier.async { [self] in
            let replies = receiver.receive(message)
            state.withLock { $0.queued -= size }
            for reply in replies { outbox.yield(reply) }
            if receiver.outcome != .receiving { verdictReached() }
        }
    }

    /// Returns when the tree is in the store and `Ack` was sent; throws why
    /// it failed (the stream's `StreamError`, the extraction's
    /// `TreeArchiveError`, `StreamError.cancelled`).
    package func result() async throws -> DownloadStats {
        defer { StallWatch.shared.remove(self) }
        let (extraction, started) = state.withLock { state in
            defer { state.resultTaken = true }
            return (state.resultTaken ? nil : state.extraction, state.started)
        }
        guard let extraction, let started else {
            throw StreamError.cancelled(reason: "result() needs start() first and can be awaited once")
        }
        do {
            let extracted: TreeArchive.ExtractStats
            do {
                extracted = try await extraction.value
            } catch {
                // The stream's own failure is the cause when it broke the extraction.
                if case .failed(let cause) = receiver.outcome { throw cause }
                receiver.fail(.cancelled(reason: "extraction failed: \(error)"))
                throw error
            }
            await waitForVerdict()
            switch receiver.outcome {
            case .failed(let cause): throw cause
            case .receiving: throw StreamError.cancelled(reason: "no verdict")  // not reached: waitForVerdict
            case .verified(let length):
                // mkdir + rename off the cooperative threads: they wait for the filesystem's journal.
                let (store, work, pipelineID) = (store, work, pipelineID)
                if try await onVerifier({ _ in try store.commitMoving(work, as: pipelineID) }) == false {
                    try? await store.remove(work, commands: commands)  // someone else stored it first
                }
                receiver.spool.remove()
                try await send(.ack(attemptID: attemptID))
                outbox.finish()
                return DownloadStats(compressedBytes: length, treeBytes: extracted.treeBytes, entries: extracted.entries,
                                     seconds: (ContinuousClock.now - started).seconds, resends: receiver.counters.resends)
            }
        } catch {
            receiver.spool.remove()
            outbox.yield(.cancel(attemptID: attemptID, reason: "the scheduler could not store the tree: \(error)"))
            outbox.finish()
            try? await store.remove(work, commands: commands)
            throw error
        }
    }

    /// Stops the download: the agent gets `Cancel`, `result()` throws `StreamError.cancelled`.
    package func cancel() {
        let first = state.withLock { state in
            defer { state.cancelled = true }
            return !state.cancelled
        }
        guard first else { return }
        receiver.fail(.cancelled(reason: "cancelled by the scheduler"))
        verdictReached()
    }

    // MARK: -

    /// Runs `body` on the verifier queue (never on a cooperative thread);
    /// throws what `body` throws, nothing when it cannot.
    private func onVerifier<T: Sendable, E: Error>(
        _ body: @escaping @Sendable (StreamReceiver) throws(E) -> T
    ) async throws(E) -> T {
        let result = await withCheckedContinuation { (done: CheckedContinuation<Result<T, E>, Never>) in
            verifier.async { [receiver] in
                do throws(E) { done.resume(returning: .success(try body(receiver))) } catch { done.resume(returning: .failure(error)) }
            }
        }
        return try result.get()
    }

    private func verdictReached() {
        let waiters = state.withLock { state in
            defer { state.waitingForVerdict.removeAll() }
            return state.waitingForVerdict
        }
        for waiter in waiters { waiter.resume() }
    }

    private func waitForVerdict() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let decided = state.withLock { state -> Bool in
                if receiver.outcome != .receiving { return true }
                state.waitingForVerdict.append(continuation)
                return false
            }
            if decided { continuation.resume() }
        }
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
            verifier.async { [self] in for message in receiver.stalled() { outbox.yield(message) } }
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
                if w.downloads.isEmpty { w.running = false; return nil }
                return Array(w.downloads.values)
            }
            guard let downloads else { return }
            let now = ContinuousClock.now
            for d in downloads where !d.checkStall(now: now) { remove(d) }
        }
    }
}
