import Crypto
import Foundation
import Manifest

/// The scheduler's side of one tree stream, without sockets: it checks each
/// chunk's sha256, writes good chunks at their offsets into a spool file
/// (duplicates are harmless), tracks the verified prefix (the bytes from 0
/// up to the first gap), grants credit a window ahead of it, asks for bad
/// or missing ranges again, and at the end checks the total length and the
/// whole stream's sha256. Memory stays flat: bytes go to the file, and
/// chunks beyond the granted credit are dropped.
///
/// `start`, `receive` and `stalled` are called by one thread at a time (the
/// download's verifier) and return the replies to send. `read` (a blocking
/// reader over the verified prefix, for the concurrent extractor) and
/// `fail` may be called from any thread.
package final class StreamReceiver: @unchecked Sendable {
    package enum Outcome: Equatable, Sendable {
        case receiving
        case verified(length: UInt64)
        case failed(StreamError)
    }

    package struct Counters: Equatable, Sendable {
        /// Chunks written into the spool.
        package var chunks = 0
        /// Chunks that were already in the verified prefix.
        package var duplicates = 0
        /// Chunks whose sha256 did not match (each answered with a `Resend`).
        package var corrupt = 0
        /// Malformed messages, chunks beyond the credit or the end, other attempts.
        package var rejected = 0
        /// `Resend`s asked for (corrupt chunks, gaps, stalls, restarts).
        package var resends = 0
    }

    package let attemptID: UInt64
    package let window: UInt64
    package let maxChunkBytes: Int
    package let spool: SpoolFile
    /// The longest stream taken; a chunk or `StreamEnd` past it fails the stream.
    package let maxBytes: UInt64
    /// Asked before credit grows (with the bytes the sender may then send
    /// beyond what is verified); an error fails the stream instead (no space).
    private let admitCredit: (@Sendable (UInt64) -> StreamError?)?
    /// While this says true, credit does not grow (the sender waits, the
    /// stream does not fail); `stalled` asks again, so it grows once it
    /// says false (the scheduler's disk below --min-free-gib, and back).
    private let holdCredit: (@Sendable () -> Bool)?

    // Owned by the verifier thread.
    private var hasher = SHA256()
    private var prefix: UInt64 = 0
    /// Verified ranges beyond the prefix: sorted, disjoint, not touching it.
    private var stored: [Range<UInt64>] = []
    private var granted: UInt64 = 0
    private var announced: (length: UInt64, sha256: [UInt8])?
    private var requestedGap: UInt64?

    // Shared, under `condition`.
    private let condition = NSCondition()
    private var published: UInt64 = 0
    private var state = Outcome.receiving
    private var tally = Counters()
    private var readOffset: UInt64 = 0

    package init(attemptID: UInt64, spool: SpoolFile, window: UInt64, maxChunkBytes: Int, maxBytes: UInt64 = .max,
                 admitCredit: (@Sendable (UInt64) -> StreamError?)? = nil, holdCredit: (@Sendable () -> Bool)? = nil) {
        self.attemptID = attemptID
        self.spool = spool
        self.maxBytes = maxBytes
        self.admitCredit = admitCredit
        self.holdCredit = holdCredit
        self.window = max(1, window)
        self.maxChunkBytes = maxChunkBytes
    }

    package var outcome: Outcome { locked { state } }
    package var counters: Counters { locked { tally } }
    /// Length of the verified prefix.
    package var verifiedLength: UInt64 { locked { published } }
    /// The largest credit granted so far.
    package var creditGranted: UInt64 { granted }

    /// The first messages: `Credit` for the window, preceded by `Resend(0, 0)`
    /// for an attempt re-adopted after a scheduler restart (the agent sends
    /// the whole stream again, to this new receiver).
    package func start(restart: Bool) -> [WireMessage] {
        if holdCredit?() != true {
            if let refused = admitCredit?(window) {
                fail(refused)
                return []
            }
            granted = max(granted, prefix + window)
        }
        guard restart else { return [credit()] }
        count { $0.resends += 1 }
        return [.resend(attemptID: attemptID, offset: 0, length: 0, reason: "the scheduler restarted; send the whole stream again"),
                credit()]
    }

    /// Takes a `StreamChunk` or `StreamEnd` for this attempt; returns the
    /// replies (`Credit`, `Resend`). Anything malformed is dropped and counted.
    package func receive(_ message: WireMessage) -> [WireMessage] {
        guard outcome == .receiving else { return [] }
        switch message.envelope.body {
        case .streamChunk(let chunk) where chunk.attemptID == attemptID:
            return receive(chunk, data: message.data ?? [])
        case .streamEnd(let end) where end.attemptID == attemptID:
            return receive(end)
        default:
            count { $0.rejected += 1 }
            return []
        }
    }

    /// Nothing arrived for a while: ask for everything from the prefix on
    /// (which repairs lost chunks and a lost `StreamEnd`) and repeat the credit.
    package func stalled() -> [WireMessage] {
        guard outcome == .receiving else { return [] }
        // Credit held back (no space) grows here once it may.
        if holdCredit?() != true, granted < prefix + window {
            if let refused = admitCredit?(window) {
                fail(refused)
                return []
            }
            granted = prefix + window
        }
        requestedGap = prefix
        count { $0.resends += 1 }
        return [.resend(attemptID: attemptID, offset: prefix, length: 0, reason: "no progress; send again from here"), credit()]
    }

    /// Ends the stream with `error` (cancel, extraction failed); wakes the reader.
    package func fail(_ error: StreamError) {
        finish(.failed(error))
    }

    /// Blocks until verified bytes past what was read are there; copies them
    /// into `buffer`. 0 once the whole stream is read and verified; throws
    /// when the stream failed.
    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(StreamError) -> Int {
        condition.lock()
        while true {
            if case .failed(let error) = state {
                condition.unlock()
                throw error
            }
            if readOffset < published { break }
            if case .verified = state {
                condition.unlock()
                return 0
            }
            condition.wait()
        }
        let at = readOffset, count = Int(min(UInt64(buffer.count), published - readOffset))
        condition.unlock()
        let got = try spool.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<count]), at: at)
        locked { readOffset += UInt64(got) }
        return got
    }

    // MARK: - Chunks and the end

    private func receive(_ chunk: Kiln_V1_StreamChunk, data: [UInt8]) -> [WireMessage] {
        let (stop, overflow) = chunk.offset.addingReportingOverflow(UInt64(data.count))
        guard data.count == Int(chunk.length), !data.isEmpty, data.count <= maxChunkBytes, !overflow,
              stop <= granted, stop <= announced?.length ?? .max else {
            count { $0.rejected += 1 }
            return []
        }
        guard stop <= maxBytes else {
            fail(.overLimit(limit: "compressed bytes (stream-max-compressed-gib, \(maxBytes) bytes)",
                            detail: "a chunk reaches byte \(stop)"))
            return []
        }
        if stop <= prefix {
            count { $0.duplicates += 1 }
            return []
        }
        guard chunk.sha256 == Data(SHA256.hash(data: data)) else {
            count { $0.corrupt += 1; $0.resends += 1 }
            // Chunks after it, already on the way, need not ask for this gap again.
            if chunk.offset <= prefix { requestedGap = prefix }
            return [.resend(attemptID: attemptID, offset: chunk.offset, length: UInt64(data.count),
                            reason: "sha256 of the chunk at \(chunk.offset) does not match")]
        }
        do throws(StreamError) {
            try spool.write(data, at: chunk.offset)
            count { $0.chunks += 1 }
            let before = prefix
            if chunk.offset <= prefix {
                data.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[Int(prefix - chunk.offset)...])) }
                prefix = stop
            } else {
                insert(chunk.offset..<stop)
            }
            try absorbStored()
            var replies: [WireMessage] = []
            if prefix > before {
                requestedGap = nil
                if holdCredit?() != true {
                    if let refused = admitCredit?(window) { throw refused }
                    granted = max(granted, prefix + window)
                }
                publish()
                replies.append(credit())
            } else if requestedGap != prefix, let next = stored.first {
                // Bytes are missing before this chunk (lost on the way): ask once per gap.
                requestedGap = prefix
                count { $0.resends += 1 }
                replies.append(.resend(attemptID: attemptID, offset: prefix, length: next.lowerBound - prefix,
                                       reason: "bytes from \(prefix) never arrived"))
            }
            try checkEnd()
            return replies
        } catch {
            fail(error)
            return []
        }
    }

    private func receive(_ end: Kiln_V1_StreamEnd) -> [WireMessage] {
        guard end.sha256.count == 32 else {
            count { $0.rejected += 1 }
            return []
        }
        guard end.format == StreamSender.format else {
            fail(.unsupportedFormat(end.format))
            return []
        }
        guard end.totalLength <= maxBytes else {
            fail(.overLimit(limit: "compressed bytes (stream-max-compressed-gib, \(maxBytes) bytes)",
                            detail: "StreamEnd announces \(end.totalLength) bytes"))
            return []
        }
        if let announced {
            guard announced.length == end.totalLength && announced.sha256 == Array(end.sha256) else {
                fail(.conflictingEnd(first: announced.length, second: end.totalLength))
                return []
            }
        } else {
            announced = (end.totalLength, Array(end.sha256))
        }
        do throws(StreamError) {
            try checkEnd()
        } catch {
            fail(error)
            return []
        }
        guard outcome == .receiving, requestedGap != prefix else { return [] }
        // The end came but bytes before it did not: ask for the rest again.
        requestedGap = prefix
        count { $0.resends += 1 }
        return [.resend(attemptID: attemptID, offset: prefix, length: 0, reason: "the stream ended with bytes from \(prefix) missing"),
                credit()]
    }

    /// Verifies the whole stream once the prefix reaches the announced end.
    private func checkEnd() throws(StreamError) {
        guard let announced else { return }
        let received = max(prefix, stored.last?.upperBound ?? 0)
        if received > announced.length {
            throw .lengthMismatch(declared: announced.length, received: received)
        }
        guard prefix == announced.length else { return }
        let digest = Array(hasher.finalize())
        guard digest == announced.sha256 else {
            throw .digestMismatch(expected: Hex.encode(announced.sha256), computed: Hex.encode(digest), length: prefix)
        }
        finish(.verified(length: prefix))
    }

    // MARK: - Ranges

    private func insert(_ range: Range<UInt64>) {
        var merged = range
        stored.removeAll { other in
            guard other.overlaps(merged) || other.upperBound == merged.lowerBound || merged.upperBound == other.lowerBound else { return false }
            merged = min(other.lowerBound, merged.lowerBound)..<max(other.upperBound, merged.upperBound)
            return true
        }
        let at = stored.firstIndex { $0.lowerBound > merged.lowerBound } ?? stored.endIndex
        stored.insert(merged, at: at)
    }

    /// Moves stored ranges that now touch the prefix into it, hashing their
    /// bytes back from the spool.
    private func absorbStored() throws(StreamError) {
        while let first = stored.first, first.lowerBound <= prefix {
            stored.removeFirst()
            guard first.upperBound > prefix else { continue }
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while prefix < first.upperBound {
                let want = Int(min(UInt64(buffer.count), first.upperBound - prefix))
                let at = prefix
                let got = try buffer.withUnsafeMutableBytes { bytes in
                    Result { () throws(StreamError) in
                        try spool.read(into: UnsafeMutableRawBufferPointer(rebasing: bytes[..<want]), at: at)
                    }
                }.get()
                guard got == want else {
                    throw .spool(path: spool.path, operation: "read back \(want) bytes at \(prefix)", reason: "short read")
                }
                buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[..<got])) }
                prefix += UInt64(got)
            }
        }
    }

    // MARK: - Shared state

    private func credit() -> WireMessage { .credit(attemptID: attemptID, bytes: granted) }

    private func publish() {
        condition.lock()
        published = prefix
        condition.broadcast()
        condition.unlock()
    }

    private func finish(_ outcome: Outcome) {
        condition.lock()
        if state == .receiving {
            state = outcome
            if case .verified = outcome { published = prefix }
        }
        condition.broadcast()
        condition.unlock()
    }

    private func count(_ update: (inout Counters) -> Void) {
        locked { update(&tally) }
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body()
    }
}
