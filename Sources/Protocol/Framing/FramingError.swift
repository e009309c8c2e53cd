/// Why a multipart ZeroMQ message is not a valid Kiln message. The receiver
/// drops the message, counts it and may answer `Disconnect`; it never crashes.
package enum FramingError: Error, Equatable, CustomStringConvertible {
    /// Fewer frames than `[identity] "KILN1" <Envelope>` needs.
    case missingFrames(count: Int, expected: Int)
    /// More frames than the body allows.
    case tooManyFrames(count: Int, expected: Int)
    /// The signature frame is not "KILN1" (another protocol, or another version).
    case badSignature(prefix: [UInt8])
    /// The envelope frame is larger than the receiver accepts.
    case envelopeTooLarge(size: Int, limit: Int)
    /// The envelope frame is not a protobuf `kiln.v1.Envelope`.
    case undecodableEnvelope(reason: String)
    /// The envelope has no body this version knows (empty, or from a newer peer).
    case unknownBody
    /// The body carries its payload in a data frame, and there is none.
    case missingData(body: String)
    /// A data frame follows a body that does not carry one.
    case unexpectedData(body: String)
    /// The data frame is larger than the receiver accepts.
    case dataTooLarge(size: Int, limit: Int)
    /// The body's `length` field disagrees with the data frame's size.
    case dataLengthMismatch(body: String, declared: UInt64, actual: Int)
    /// The envelope could not be serialized (sending side).
    case unencodable(reason: String)

    package var description: String {
        switch self {
        case .missingFrames(let count, let expected):
            "message has \(count) frame(s), expected at least \(expected): [identity] \"KILN1\" <Envelope> [data]"
        case .tooManyFrames(let count, let expected):
            "message has \(count) frames, expected at most \(expected)"
        case .badSignature(let prefix):
            "first frame is not the \"KILN1\" signature (starts with \(prefix.map { String($0, radix: 16) })); is the peer a Kiln of the same protocol version?"
        case .envelopeTooLarge(let size, let limit):
            "envelope of \(size) bytes exceeds the limit of \(limit) bytes"
        case .undecodableEnvelope(let reason):
            "envelope is not a kiln.v1.Envelope: \(reason)"
        case .unknownBody:
            "envelope has no body this version understands (empty, or sent by a newer Kiln)"
        case .missingData(let body):
            "\(body) must be followed by a data frame, and none came"
        case .unexpectedData(let body):
            "\(body) carries no data frame, but one came"
        case .dataTooLarge(let size, let limit):
            "data frame of \(size) bytes exceeds the limit of \(limit) bytes"
        case .dataLengthMismatch(let body, let declared, let actual):
            "\(body).length says \(declared) bytes, the data frame has \(actual)"
        case .unencodable(let reason):
            "envelope could not be serialized: \(reason)"
        }
    }
}
