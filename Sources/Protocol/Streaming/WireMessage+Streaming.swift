import Foundation

/// The tree-stream messages, built in one place.
extension WireMessage {
    package static func credit(attemptID: UInt64, bytes: UInt64) -> WireMessage {
        var credit = Kiln_V1_Credit()
        credit.attemptID = attemptID
        credit.bytes = bytes
        return WireMessage(.credit(credit))
    }

    package static func resend(attemptID: UInt64, offset: UInt64, length: UInt64, reason: String) -> WireMessage {
        var resend = Kiln_V1_Resend()
        resend.attemptID = attemptID
        resend.offset = offset
        resend.length = length
        resend.reason = reason
        return WireMessage(.resend(resend))
    }

    package static func ack(attemptID: UInt64) -> WireMessage {
        var ack = Kiln_V1_Ack()
        ack.attemptID = attemptID
        return WireMessage(.ack(ack))
    }

    package static func cancel(attemptID: UInt64, reason: String) -> WireMessage {
        var cancel = Kiln_V1_Cancel()
        cancel.attemptID = attemptID
        cancel.reason = reason
        return WireMessage(.cancel(cancel))
    }

    package static func streamChunk(attemptID: UInt64, offset: UInt64, sha256: [UInt8], data: [UInt8]) -> WireMessage {
        var chunk = Kiln_V1_StreamChunk()
        chunk.attemptID = attemptID
        chunk.offset = offset
        chunk.sha256 = Data(sha256)
        chunk.length = UInt32(data.count)
        return WireMessage(.streamChunk(chunk), data: data)
    }

    package static func streamEnd(attemptID: UInt64, totalLength: UInt64, sha256: [UInt8], format: String) -> WireMessage {
        var end = Kiln_V1_StreamEnd()
        end.attemptID = attemptID
        end.totalLength = totalLength
        end.sha256 = Data(sha256)
        end.format = format
        return WireMessage(.streamEnd(end))
    }

    /// The attempt a job message is about; nil for messages that carry none.
    package var attemptID: UInt64? {
        switch envelope.body {
        case .streamChunk(let m): m.attemptID
        case .streamEnd(let m): m.attemptID
        case .credit(let m): m.attemptID
        case .resend(let m): m.attemptID
        case .ack(let m): m.attemptID
        case .cancel(let m): m.attemptID
        case .assign(let m): m.attemptID
        case .progress(let m): m.attemptID
        case .jobFailed(let m): m.attemptID
        default: nil
        }
    }
}
