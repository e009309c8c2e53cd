import Crypto
import Foundation
import Protocol
import Stages
import Synchronization

package struct UploadStats: Sendable, Equatable {
    /// Length of the compressed stream.
    package var bytes: UInt64 = 0
    /// From `run()` to `Ack`.
    package var seconds: Double = 0
    /// Chunk messages sent, re-sent ones included.
    package var chunks = 0
    /// `Resend` requests the scheduler made.
    package var resendRequests = 0
}

/// Streams a finished tree to the scheduler for one attempt: archives it
/// (pax + zstd) into a spool file on its own thread while sending the bytes
/// already written, never past the credit the scheduler granted, and keeps
/// the spool until `Ack` so any range can be sent again.
///
/// The agent loop routes this attempt's `Credit`, `Resend`, `Ack` and
/// `Cancel` in through `deliver`, at any time, also before `run()` starts.
package final class TreeUpload: Sendable {
    package let attemptID: UInt64
    package let spoolPath: String
    private let tree: String
    private let send: @Sendable (WireMessage) async throws -> Void
    private let compression: TreeArchive.Compression
    /// Test hook (`KILN_TEST_CORRUPT_CHUNK=N`): the data of the N-th chunk
    /// message is damaged once, after its sha256 was computed.
    private let corruptChunk: Int?
    private let state: Mutex<State>
    private let signal = WakeSignal()
    /// Chunk reads and hashes run here, off the cooperative threads.
    private let io: DispatchQueue

    private struct State: ~Copyable {
        var sender: StreamSender
        var acked = false
        var cancelled: String?
        var writerFailure: (any Error)?
        var resendRequests = 0
    }

    private enum Action {
        case send(StreamSender.Step)
        case wait
        case acknowledged
        case cancelled(String)
        case failed(any Error)
    }

    /// tree: a finished tree directory (read only); spoolDirectory: where the
    /// stream is kept until `Ack`.
    package init(attemptID: UInt64, tree: String, spoolDirectory: String, maxChunkBytes: Int,
                 compression: TreeArchive.Compression = .default,
                 send: @escaping @Sendable (WireMessage) async throws -> Void) {
        self.attemptID = attemptID
        self.tree = tree
        self.spoolPath = "\(spoolDirectory)/attempt-\(attemptID).tar.zst"
        self.send = send
        self.compression = compression
        self.corruptChunk = ProcessInfo.processInfo.environment["KILN_TEST_CORRUPT_CHUNK"].flatMap { Int($0) }
        self.state = Mutex(State(sender: StreamSender(attemptID: attemptID, maxChunkBytes: maxChunkBytes)))
        self.io = DispatchQueue(label: "kiln.upload.\(attemptID)")
    }

    /// Takes `Credit`, `Resend`, `Ack` and `Cancel` for this attempt; ignores the rest.
    package func deliver(_ message: WireMessage) {
        guard message.attemptID == attemptID else { return }
        let relevant = state.withLock { state -> Bool in
            switch message.envelope.body {
            case .credit(let credit): state.sender.grant(credit.bytes)
            case .resend(let resend):
                state.sender.resend(offset: resend.offset, length: resend.length)
                state.resendRequests += 1
            case .ack: state.acked = true
            case .cancel(let cancel): state.cancelled = cancel.reason.isEmpty ? "cancelled by the scheduler" : cancel.reason
            default: return false
            }
            return true
        }
        if relevant { signal.wake() }
    }

    /// Archives and sends; returns after `Ack` (the spool file is then
    /// deleted). Throws `StreamError.cancelled` on `Cancel`, or what failed
    /// locally (the tree cannot be read, the spool cannot be written, a send).
    package func run() async throws -> UploadStats {
        let started = ContinuousClock.now
        try FileManager.default.createDirectory(atPath: (spoolPath as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        let spool = try SpoolFile(path: spoolPath, create: true)
        defer { spool.remove() }
        let stop = StopFlag()
        let writer = Task { await write(into: spool, stop: stop) }
        var failure: (any Error)?
        do { try await pump(spool) } catch { failure = error }
        // Ack can come before the archive is complete (the tree was stored already).
        stop.set()
        await writer.value
        if let failure { throw failure }
        return state.withLock {
            UploadStats(bytes: $0.sender.end?.length ?? $0.sender.produced, seconds: (ContinuousClock.now - started).seconds,
                        chunks: $0.sender.chunksSent, resendRequests: $0.resendRequests)
        }
    }

    /// Sends what the sender allows until `Ack`, `Cancel` or a failure.
    private func pump(_ spool: SpoolFile) async throws {
        var corrupted = false
        var chunkIndex = 0
        while true {
            let action = state.withLock { state -> Action in
                if state.acked { return .acknowledged }
                if let reason = state.cancelled { return .cancelled(reason) }
                if let failure = state.writerFailure { return .failed(failure) }
                if let step = state.sender.next() { return .send(step) }
                return .wait
            }
            switch action {
            case .acknowledged:
                return
            case .cancelled(let reason):
                throw StreamError.cancelled(reason: reason)
            case .failed(let error):
                throw error
            case .wait:
                await signal.wait()
            case .send(let step):
                var message = try await message(for: step, from: spool)
                if case .chunk = step {
                    if chunkIndex == corruptChunk && !corrupted, let count = message.data?.count, count > 0 {
                        message.data![count / 2] ^= 0xFF
                        corrupted = true
                    }
                    chunkIndex += 1
                }
                try await send(message)
            }
        }
    }

    /// Reads and hashes a chunk on the upload's I/O queue.
    private func message(for step: StreamSender.Step, from spool: SpoolFile) async throws -> WireMessage {
        let attemptID = attemptID
        return try await withCheckedThrowingContinuation { done in
            io.async { done.resume(with: Result { try StreamSender.message(attemptID: attemptID, for: step, from: spool) }) }
        }
    }

    /// Archives the tree into the spool, telling the sender as bytes land.
    private func write(into spool: SpoolFile, stop: StopFlag) async {
        let appender = SpoolAppender(spool: spool)
        do {
            _ = try await TreeArchive.write(tree: tree, compression: compression) { [self] bytes in
                if stop.isSet { throw StreamError.cancelled(reason: "the upload stopped") }
                let produced = try appender.append(bytes)
                state.withLock { $0.sender.produced(produced) }
                signal.wake()
            }
            let (length, digest) = appender.finish()
            state.withLock { $0.sender.finished(length: length, sha256: digest) }
        } catch {
            state.withLock { $0.writerFailure = error }
        }
        signal.wake()
    }
}

private final class StopFlag: Sendable {
    private let flag = Atomic(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}

/// Appends archive output to the spool and hashes the whole stream as it
/// goes. Used only on the archive thread.
private final class SpoolAppender: @unchecked Sendable {
    let spool: SpoolFile
    var length: UInt64 = 0
    var hasher = SHA256()

    init(spool: SpoolFile) { self.spool = spool }

    func append(_ bytes: UnsafeRawBufferPointer) throws -> UInt64 {
        try spool.write(bytes, at: length)
        hasher.update(bufferPointer: bytes)
        length += UInt64(bytes.count)
        return length
    }

    func finish() -> (UInt64, [UInt8]) { (length, Array(hasher.finalize())) }
}
