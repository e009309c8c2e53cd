/// A tree stream failed. Each case carries what a person needs to act.
package enum StreamError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Reading or writing the stream's spool file failed.
    case spool(path: String, operation: String, reason: String)
    /// `StreamEnd` announced a format this version cannot read.
    case unsupportedFormat(String)
    /// The stream's length is not what `StreamEnd` announced.
    case lengthMismatch(declared: UInt64, received: UInt64)
    /// Every chunk checked out but the whole stream's sha256 does not.
    case digestMismatch(expected: String, computed: String, length: UInt64)
    /// A second `StreamEnd` contradicts the first: the sender changed the stream.
    case conflictingEnd(first: UInt64, second: UInt64)
    /// The stream passes a limit of the receiver (its length, the free space
    /// it needs); `limit` names it and its configuration key.
    case overLimit(limit: String, detail: String)
    /// The other side or the caller cancelled the stream.
    case cancelled(reason: String)

    package var description: String {
        switch self {
        case .spool(let path, let operation, let reason):
            "tree stream spool \(path): \(operation) failed: \(reason)"
        case .unsupportedFormat(let format):
            "tree stream format \"\(format)\" is not supported (expected \"tar+zstd\"); agent and scheduler versions differ"
        case .lengthMismatch(let declared, let received):
            "tree stream ended at \(declared) bytes but \(received) bytes arrived; the stream is broken, retry the job"
        case .digestMismatch(let expected, let computed, let length):
            "tree stream of \(length) bytes has sha256 \(computed), the agent announced \(expected); the stream was corrupted, retry the job"
        case .conflictingEnd(let first, let second):
            "tree stream announced two different ends (\(first) and \(second) bytes); the agent restarted the stream, retry the job"
        case .overLimit(let limit, let detail):
            "tree stream refused: it passes the limit on \(limit): \(detail)"
        case .cancelled(let reason):
            "tree stream cancelled: \(reason)"
        }
    }
}
