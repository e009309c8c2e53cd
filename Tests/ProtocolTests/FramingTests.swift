import Foundation
import KilnTestSupport
import Protocol
import Testing

/// The framing is the first thing a peer's bytes meet: any input must end in
/// a decoded message or a `FramingError`, never a crash.
struct FramingTests {
    static func hello() -> WireMessage {
        var hello = Kiln_V1_Hello()
        hello.agentID = "agent-1"
        hello.arches = ["x86_64"]
        hello.emulatedArches = ["aarch64"]
        hello.slots = 2
        hello.freeDisk = 50 << 30
        hello.version = "0.1.0"
        hello.runningAttemptIds = [7, 9]
        return WireMessage(.hello(hello))
    }

    static func chunk(_ data: [UInt8], offset: UInt64 = 0) -> WireMessage {
        var chunk = Kiln_V1_StreamChunk()
        chunk.attemptID = 42
        chunk.offset = offset
        chunk.length = UInt32(data.count)
        chunk.sha256 = Data(repeating: 0xAB, count: 32)
        return WireMessage(.streamChunk(chunk), data: data)
    }

    @Test func roundTripOnDealerAndRouter() throws {
        let assign: WireMessage = {
            var assign = Kiln_V1_Assign()
            assign.attemptID = 3
            assign.jobID = "job-1"
            assign.buildID = "build-1"
            assign.pipelineName = "os"
            assign.export = "os"
            assign.manifestJson = Data(#"{"version":"2","pipelines":[]}"#.utf8)
            return WireMessage(.assign(assign), requestID: 0)
        }()
        for message in [Self.hello(), Self.chunk(Array(0..<200)), Self.chunk([]), assign] {
            let plain = try Framing.encode(message)
            #expect(plain.first == Framing.signature)
            #expect(try Framing.decode(plain, routed: false).message == message)

            let routed = try Framing.encode(message, identity: [0, 1, 2, 3])
            let decoded = try Framing.decode(routed, routed: true)
            #expect(decoded.identity == [0, 1, 2, 3])
            #expect(decoded.message == message)
        }
    }

    @Test func malformedMessagesAreTypedErrors() throws {
        let hello = try Framing.encode(Self.hello())
        let chunk = try Framing.encode(Self.chunk([1, 2, 3]))
        let cases: [([[UInt8]], Bool, FramingError)] = [
            ([], false, .missingFrames(count: 0, expected: 2)),
            ([Framing.signature], false, .missingFrames(count: 1, expected: 2)),
            (hello, true, .missingFrames(count: 2, expected: 3)),
            ([Array("KILN2".utf8), hello[1]], false, .badSignature(prefix: Array("KILN2".utf8))),
            ([Array("HTTP/1.1 200 OK".utf8), hello[1]], false, .badSignature(prefix: Array("HTTP/1.1".utf8))),
            (hello + [[9]], false, .unexpectedData(body: "Hello")),
            (Array(chunk.prefix(2)), false, .missingData(body: "StreamChunk")),
            ([chunk[0], chunk[1], [1, 2]], false, .dataLengthMismatch(body: "StreamChunk", declared: 3, actual: 2)),
            (chunk + [[1]], false, .tooManyFrames(count: 4, expected: 3)),
            ([Framing.signature, []], false, .unknownBody),
        ]
        for (frames, routed, expected) in cases {
            #expect(throws: expected) { try Framing.decode(frames, routed: routed) }
        }
        #expect(throws: FramingError.self) { try Framing.decode([Framing.signature, [0xFF, 0xFF, 0xFF]], routed: false) }
        // Encoding refuses what decoding would refuse.
        #expect(throws: FramingError.missingData(body: "StreamChunk")) {
            try Framing.encode(WireMessage(Self.chunk([1]).envelope))
        }
        #expect(throws: FramingError.unexpectedData(body: "Hello")) {
            try Framing.encode(WireMessage(Self.hello().envelope, data: [1]))
        }
        #expect(throws: FramingError.unknownBody) { try Framing.encode(WireMessage(Kiln_V1_Envelope())) }
    }

    @Test func oversizedFramesAreRefused() throws {
        let limits = Framing.Limits(maxEnvelopeBytes: 64, maxDataBytes: 1024)
        var big = Self.hello()
        if case .hello(var hello) = big.envelope.body {
            hello.arches = Array(repeating: "x86_64", count: 50)
            big.envelope.body = .hello(hello)
        }
        let frames = try Framing.encode(big)
        #expect(throws: FramingError.envelopeTooLarge(size: frames[1].count, limit: 64)) {
            try Framing.decode(frames, routed: false, limits: limits)
        }
        let chunk = try Framing.encode(Self.chunk([UInt8](repeating: 7, count: 2048)))
        #expect(throws: FramingError.dataTooLarge(size: 2048, limit: 1024)) {
            try Framing.decode(chunk, routed: false, limits: limits)
        }
    }

    @Test func everyTruncationOfAnEnvelopeIsHandled() throws {
        let frames = try Framing.encode(Self.hello())
        for length in 0..<frames[1].count {
            let truncated = [frames[0], Array(frames[1].prefix(length))]
            // Protobuf may decode a prefix that ends on a field boundary;
            // anything else must be a FramingError.
            do {
                _ = try Framing.decode(truncated, routed: false)
            } catch {
                _ = error.description
            }
        }
    }

    @Test func randomInputNeverCrashes() throws {
        var rng = SplitMix64(seed: 0x4B494C4E)
        let valid = try Framing.encode(Self.chunk(Array(0..<64)))
        var decoded = 0, refused = 0
        for _ in 0..<20_000 {
            var frames: [[UInt8]]
            switch rng.next() % 3 {
            case 0:  // pure noise
                frames = (0..<Int(rng.next() % 5)).map { _ in rng.bytes(Int(rng.next() % 96)) }
            case 1:  // the signature, then noise
                frames = [Framing.signature] + (0..<Int(rng.next() % 3)).map { _ in rng.bytes(Int(rng.next() % 96)) }
            default:  // a valid message with flipped, dropped or appended bytes
                frames = valid
                let index = Int(rng.next() % UInt64(frames.count))
                var frame = frames[index]
                if !frame.isEmpty {
                    for _ in 0..<(1 + rng.next() % 4) {
                        frame[Int(rng.next() % UInt64(frame.count))] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
                    }
                }
                if rng.next() % 2 == 0 { frame = Array(frame.prefix(Int(rng.next() % UInt64(frame.count + 1)))) }
                frames[index] = frame
            }
            let routed = rng.next() % 2 == 0
            do {
                let (identity, message) = try Framing.decode(frames, routed: routed)
                // Whatever decodes must encode and decode to the same thing.
                let again = try Framing.decode(try Framing.encode(message, identity: identity), routed: routed)
                #expect(again.message == message)
                decoded += 1
            } catch {
                refused += 1
            }
        }
        #expect(refused > 10_000, "most random inputs are refused (\(decoded) decoded)")
    }
}
