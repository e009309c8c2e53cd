import SwiftProtobuf

/// `[identity] "KILN1" <Envelope> [data]` over the frames of one multipart
/// ZeroMQ message. Pure functions: no sockets, no state, and every malformed
/// input ends in a `FramingError`.
package enum Framing {
    /// The first frame of every Kiln message; the digit is the wire version.
    package static let signature: [UInt8] = Array("KILN1".utf8)

    /// What a receiver accepts. The socket's `ZMQ_MAXMSGSIZE` should be at
    /// least the larger of the two so that libzmq does not cut the peer first.
    package struct Limits: Sendable, Equatable {
        package var maxEnvelopeBytes: Int
        package var maxDataBytes: Int
        package init(maxEnvelopeBytes: Int = 16 << 20, maxDataBytes: Int = 4 << 20) {
            self.maxEnvelopeBytes = maxEnvelopeBytes
            self.maxDataBytes = maxDataBytes
        }
        package static let `default` = Limits()
        /// The largest frame either limit admits, for `ZMQ_MAXMSGSIZE`.
        package var maxFrameBytes: Int { max(maxEnvelopeBytes, maxDataBytes, signature.count) }
    }

    /// The frames for `message`, preceded by `identity` when sending on a ROUTER.
    package static func encode(_ message: WireMessage, identity: [UInt8]? = nil) throws(FramingError) -> [[UInt8]] {
        guard let body = message.envelope.body else { throw .unknownBody }
        try checkData(message.data, for: body, limits: nil)
        let bytes: [UInt8]
        do {
            bytes = try message.envelope.serializedBytes()
        } catch {
            throw .unencodable(reason: "\(error)")
        }
        var frames: [[UInt8]] = []
        frames.reserveCapacity(4)
        if let identity { frames.append(identity) }
        frames.append(signature)
        frames.append(bytes)
        if let data = message.data { frames.append(data) }
        return frames
    }

    /// Decodes frames received on a DEALER (`routed: false`) or a ROUTER
    /// (`routed: true`, the first frame is the peer's identity).
    package static func decode(
        _ frames: [[UInt8]], routed: Bool, limits: Limits = .default
    ) throws(FramingError) -> (identity: [UInt8]?, message: WireMessage) {
        let base = routed ? 1 : 0
        guard frames.count >= base + 2 else {
            throw .missingFrames(count: frames.count, expected: base + 2)
        }
        guard frames.count <= base + 3 else {
            throw .tooManyFrames(count: frames.count, expected: base + 3)
        }
        guard frames[base] == signature else {
            throw .badSignature(prefix: Array(frames[base].prefix(8)))
        }
        let bytes = frames[base + 1]
        guard bytes.count <= limits.maxEnvelopeBytes else {
            throw .envelopeTooLarge(size: bytes.count, limit: limits.maxEnvelopeBytes)
        }
        let envelope: Kiln_V1_Envelope
        do {
            envelope = try Kiln_V1_Envelope(serializedBytes: bytes)
        } catch {
            throw .undecodableEnvelope(reason: "\(error)")
        }
        guard let body = envelope.body else { throw .unknownBody }
        let data = frames.count == base + 3 ? frames[base + 2] : nil
        try checkData(data, for: body, limits: limits)
        return (routed ? frames[0] : nil, WireMessage(envelope, data: data))
    }

    private static func checkData(
        _ data: [UInt8]?, for body: Kiln_V1_Envelope.OneOf_Body, limits: Limits?
    ) throws(FramingError) {
        switch (body.declaredDataLength, data) {
        case (nil, nil):
            return
        case (nil, .some):
            throw .unexpectedData(body: body.name)
        case (.some, nil):
            throw .missingData(body: body.name)
        case (.some(let declared), .some(let data)):
            if let limits, data.count > limits.maxDataBytes {
                throw .dataTooLarge(size: data.count, limit: limits.maxDataBytes)
            }
            if declared != UInt64(data.count) {
                throw .dataLengthMismatch(body: body.name, declared: declared, actual: data.count)
            }
        }
    }
}
