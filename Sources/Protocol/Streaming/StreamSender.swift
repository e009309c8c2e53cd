import Crypto

/// The agent's side of one tree stream, without sockets: given the credit
/// the scheduler granted, the ranges it asked for again and how much of the
/// spool file the archive writer has produced so far, it decides what to
/// send next and builds that message from the spool file.
///
/// Not thread safe; the owner serialises calls (`TreeUpload` holds it in a
/// mutex). `next()` only decides and records; `message(for:)` reads and
/// hashes without touching the state, so it may run outside the owner's lock.
///
/// Rules:
/// - A chunk never reaches past the credit (an absolute offset; the largest
///   seen counts, so duplicated or reordered `Credit`s are harmless).
/// - Chunks are at most `maxChunkBytes`; while the writer is still
///   producing, only full chunks are sent.
/// - `Resend(offset, length)` re-sends that range first; `length` 0 means
///   everything from `offset` to the end, followed by `StreamEnd` again.
///   `Resend(0, 0)` comes from a new receiver (a restarted scheduler): the
///   whole stream again, and the credit starts over from that receiver's
///   next `Credit`.
/// - `StreamEnd` follows the last chunk of a pass (and each pass a
///   `Resend(…, 0)` starts).
package final class StreamSender {
    package enum Step: Equatable, Sendable {
        case chunk(offset: UInt64, length: Int)
        case end(totalLength: UInt64, sha256: [UInt8])
    }

    /// `StreamEnd.format` of a pax tar compressed with zstd, the only format.
    package static let format = "tar+zstd"

    package let attemptID: UInt64
    package let maxChunkBytes: Int

    package private(set) var credit: UInt64 = 0
    package private(set) var produced: UInt64 = 0
    /// Total length and digest once the writer has finished.
    package private(set) var end: (length: UInt64, sha256: [UInt8])?
    /// Next offset of the sequential pass.
    private var cursor: UInt64 = 0
    /// Ranges asked for again, below the cursor, in the order asked.
    private var resends: [Range<UInt64>] = []
    private var endPending = true
    /// Chunks handed out so far (including re-sent ones).
    package private(set) var chunksSent = 0

    /// The spool comes with each `message(for:from:)`, so that credit and
    /// resend requests can be taken before the spool file exists.
    package init(attemptID: UInt64, maxChunkBytes: Int) {
        self.attemptID = attemptID
        self.maxChunkBytes = max(1, maxChunkBytes)
    }

    package func grant(_ bytes: UInt64) {
        credit = max(credit, bytes)
    }

    /// The writer has put `bytes` bytes into the spool.
    package func produced(_ bytes: UInt64) {
        produced = max(produced, bytes)
    }

    /// The writer is done: the stream is `length` bytes with this digest.
    package func finished(length: UInt64, sha256: [UInt8]) {
        produced = max(produced, length)
        end = (length, sha256)
    }

    package func resend(offset: UInt64, length: UInt64) {
        if length == 0 {
            if offset == 0 { credit = 0 }
            cursor = min(cursor, offset)
            resends = resends.map { $0.clamped(to: 0..<cursor) }.filter { !$0.isEmpty }
            endPending = true
            return
        }
        let (stop, overflow) = offset.addingReportingOverflow(length)
        let range = offset..<(overflow ? UInt64.max : stop)
        // What lies at or beyond the cursor goes out with the pass anyway.
        let below = range.clamped(to: 0..<cursor)
        if !below.isEmpty { resends.append(below) }
    }

    /// What may be sent now (and records it as sent), or nil: wait for credit,
    /// for the writer, or for a resend request.
    package func next() -> Step? {
        while let range = resends.first {
            guard range.lowerBound < credit else { return nil }
            let length = Int(min(UInt64(maxChunkBytes), range.upperBound - range.lowerBound, credit - range.lowerBound))
            let rest = (range.lowerBound + UInt64(length))..<range.upperBound
            if rest.isEmpty { resends.removeFirst() } else { resends[0] = rest }
            chunksSent += 1
            return .chunk(offset: range.lowerBound, length: length)
        }
        let available = min(credit, produced)
        if cursor < available {
            let length = Int(min(UInt64(maxChunkBytes), available - cursor))
            // A short chunk only at the credit's edge or the stream's end.
            let limitedByWriter = produced < credit && end == nil
            if length == maxChunkBytes || !limitedByWriter {
                defer { cursor += UInt64(length) }
                chunksSent += 1
                return .chunk(offset: cursor, length: length)
            }
            return nil
        }
        if let end, endPending, cursor >= end.length {
            endPending = false
            return .end(totalLength: end.length, sha256: end.sha256)
        }
        return nil
    }

    /// The message for `step`, with the chunk's bytes read from `spool`.
    package func message(for step: Step, from spool: SpoolFile) throws(StreamError) -> WireMessage {
        try Self.message(attemptID: attemptID, for: step, from: spool)
    }

    /// The same, without the sender (it reads no state), for use off the owner's lock.
    package static func message(attemptID: UInt64, for step: Step, from spool: SpoolFile) throws(StreamError) -> WireMessage {
        switch step {
        case .chunk(let offset, let length):
            let data = try spool.read(length, at: offset)
            return .streamChunk(attemptID: attemptID, offset: offset, sha256: Array(SHA256.hash(data: data)), data: data)
        case .end(let length, let sha256):
            return .streamEnd(attemptID: attemptID, totalLength: length, sha256: sha256, format: Self.format)
        }
    }
}
