import Crypto
import Foundation
import KilnTestSupport
@testable import Protocol
import Synchronization
import Testing

/// StreamSender and StreamReceiver without sockets: credit is never
/// exceeded, duplicates and reordering are harmless, corrupt or lost chunks
/// are asked for again, and a wrong stream never verifies.
@Suite struct StreamStateTests {
    static let mib = 1 << 20

    /// A spool file with `bytes` in a fresh directory.
    static func spool(_ bytes: [UInt8], create: Bool = false) throws -> SpoolFile {
        let path = "/var/tmp/kiln-stream-test-\(UUID().uuidString.prefix(8)).spool"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let file = try SpoolFile(path: path, create: create)
        // The descriptor stays usable; nothing is left behind. (SpoolFile.remove()
        // removes only files it created, and this one the test made.)
        unlink(path)
        return file
    }

    static func random(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        var generator = SplitMix64(seed: seed)
        return generator.bytes(count)
    }

    static func digest(_ bytes: some DataProtocol) -> [UInt8] { Array(SHA256.hash(data: bytes)) }

    /// Everything `sender` may send now.
    static func drain(_ sender: StreamSender, _ spool: SpoolFile) throws -> [WireMessage] {
        var out: [WireMessage] = []
        while let step = sender.next() { out.append(try sender.message(for: step, from: spool)) }
        return out
    }

    static func chunkRanges(_ messages: [WireMessage]) -> [Range<UInt64>] {
        messages.compactMap {
            guard case .streamChunk(let c) = $0.envelope.body else { return nil }
            return c.offset..<(c.offset + UInt64(c.length))
        }
    }

    // MARK: - Sender

    @Test func senderNeverPassesTheCredit() throws {
        let bytes = Self.random(5 * Self.mib + 1234)
        let spool = try Self.spool(bytes)
        let sender = StreamSender(attemptID: 7, maxChunkBytes: Self.mib)
        sender.finished(length: UInt64(bytes.count), sha256: Self.digest(bytes))
        #expect(sender.next() == nil, "no credit, nothing to send")

        sender.grant(UInt64(2 * Self.mib + Self.mib / 2))
        let first = try Self.drain(sender, spool)
        let expected: [Range<UInt64>] = [0..<(1 << 20), (1 << 20)..<(2 << 20), (2 << 20)..<(5 << 19)]
        #expect(Self.chunkRanges(first) == expected)

        sender.grant(UInt64(Self.mib))  // late, smaller duplicate: harmless
        #expect(sender.next() == nil)

        sender.grant(100 << 20)
        let rest = try Self.drain(sender, spool)
        #expect(Self.chunkRanges(rest).last?.upperBound == UInt64(bytes.count))
        guard case .streamEnd(let end) = rest.last?.envelope.body else { Issue.record("no StreamEnd"); return }
        #expect(end.totalLength == UInt64(bytes.count) && Array(end.sha256) == Self.digest(bytes) && end.format == "tar+zstd")
        #expect(sender.next() == nil, "StreamEnd goes once per pass")
        for message in first + rest {
            if case .streamChunk(let c) = message.envelope.body {
                #expect(Array(c.sha256) == Self.digest(message.data!))
                #expect(message.data! == Array(bytes[Int(c.offset)..<Int(c.offset) + Int(c.length)]))
            }
        }
    }

    @Test func senderSendsWhileTheSpoolGrows() throws {
        let bytes = Self.random(3 * Self.mib + 100)
        let spool = try Self.spool(bytes)
        let sender = StreamSender(attemptID: 1, maxChunkBytes: Self.mib)
        sender.grant(1 << 30)
        sender.produced(UInt64(Self.mib + Self.mib / 2))
        #expect(Self.chunkRanges(try Self.drain(sender, spool)) == [0..<(1 << 20)], "only full chunks while the writer works")
        sender.produced(UInt64(3 * Self.mib))
        #expect(Self.chunkRanges(try Self.drain(sender, spool)).count == 2)
        sender.finished(length: UInt64(bytes.count), sha256: Self.digest(bytes))
        let tail = try Self.drain(sender, spool)
        let last: [Range<UInt64>] = [(3 << 20)..<((3 << 20) + 100)]
        #expect(Self.chunkRanges(tail) == last)
        #expect(tail.count == 2, "the short last chunk, then StreamEnd")
    }

    @Test func senderHonoursResends() throws {
        let bytes = Self.random(3 * Self.mib)
        let spool = try Self.spool(bytes)
        let sender = StreamSender(attemptID: 1, maxChunkBytes: Self.mib)
        sender.finished(length: UInt64(bytes.count), sha256: Self.digest(bytes))
        sender.grant(3 << 20)
        #expect(try Self.drain(sender, spool).count == 4)

        sender.resend(offset: 1 << 20, length: 100)
        #expect(Self.chunkRanges(try Self.drain(sender, spool)) == [(1 << 20)..<(1 << 20) + 100], "a range: just that, no StreamEnd")

        sender.resend(offset: UInt64(bytes.count), length: 0)
        let endOnly = try Self.drain(sender, spool)
        #expect(endOnly.count == 1 && endOnly.first?.envelope.streamEnd.totalLength == UInt64(bytes.count))

        sender.resend(offset: .max - 5, length: .max)  // nonsense from a peer: ignored, no crash
        #expect(sender.next() == nil)

        sender.resend(offset: 0, length: 0)  // a restarted scheduler: everything again, credit from scratch
        #expect(sender.next() == nil)
        sender.grant(2 << 20)
        let again: [Range<UInt64>] = [0..<(1 << 20), (1 << 20)..<(2 << 20)]
        #expect(Self.chunkRanges(try Self.drain(sender, spool)) == again)
        sender.grant(3 << 20)
        #expect(try Self.drain(sender, spool).count == 2, "last chunk and StreamEnd again")
    }

    // MARK: - Receiver

    /// The chunks and end of `bytes` as a sender would send them.
    static func stream(_ bytes: [UInt8], chunk: Int = mib, attempt: UInt64 = 9) throws -> (chunks: [WireMessage], end: WireMessage) {
        let file = try spool(bytes)
        let sender = StreamSender(attemptID: attempt, maxChunkBytes: chunk)
        sender.finished(length: UInt64(bytes.count), sha256: digest(bytes))
        sender.grant(.max)
        let all = try drain(sender, file)
        return (Array(all.dropLast()), all.last!)
    }

    static func receiver(window: UInt64 = 3 << 20, attempt: UInt64 = 9) throws -> StreamReceiver {
        StreamReceiver(attemptID: attempt, spool: try spool([], create: true), window: window, maxChunkBytes: mib)
    }

    static func readAll(_ receiver: StreamReceiver) throws -> [UInt8] {
        var out: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 300_000)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try receiver.read(into: $0) }
            if n == 0 { return out }
            out += buffer[..<n]
        }
    }

    @Test func receiverAssemblesReorderedAndDuplicatedChunks() throws {
        let bytes = Self.random(5 * Self.mib + 7)
        let (chunks, end) = try Self.stream(bytes)
        let receiver = try Self.receiver()
        #expect(receiver.start(restart: false) == [.credit(attemptID: 9, bytes: 3 << 20)])

        let gap = receiver.receive(chunks[1])
        #expect(gap == [.resend(attemptID: 9, offset: 0, length: 1 << 20, reason: "bytes from 0 never arrived")])
        #expect(receiver.receive(chunks[2]).isEmpty, "one request per gap")
        #expect(receiver.receive(chunks[0]) == [.credit(attemptID: 9, bytes: (3 << 20) + (3 << 20))])
        #expect(receiver.verifiedLength == 3 << 20)
        #expect(receiver.receive(chunks[0]).isEmpty && receiver.receive(chunks[1]).isEmpty)
        for chunk in chunks[3...] { _ = receiver.receive(chunk) }
        #expect(receiver.outcome == .receiving, "no verdict before StreamEnd")
        #expect(receiver.receive(end).isEmpty)
        #expect(receiver.outcome == .verified(length: UInt64(bytes.count)))
        #expect(try Self.readAll(receiver) == bytes)
        #expect(receiver.counters.duplicates == 2 && receiver.counters.chunks == 6)
    }

    @Test func corruptChunkIsAskedForAgain() throws {
        let bytes = Self.random(2 * Self.mib)
        let (chunks, end) = try Self.stream(bytes)
        let receiver = try Self.receiver()
        _ = receiver.start(restart: false)
        var bad = chunks[0]
        bad.data![12345] ^= 0x40
        let replies = receiver.receive(bad)
        #expect(replies.count == 1 && replies.first?.envelope.resend.offset == 0 && replies.first?.envelope.resend.length == 1 << 20)
        #expect(receiver.verifiedLength == 0 && receiver.counters.corrupt == 1)
        for message in chunks + [end] { _ = receiver.receive(message) }
        #expect(receiver.outcome == .verified(length: UInt64(bytes.count)))
        #expect(try Self.readAll(receiver) == bytes)
    }

    @Test func wrongWholeStreamDigestFails() throws {
        let bytes = Self.random(Self.mib + 10)
        var (chunks, end) = try Self.stream(bytes)
        end.envelope.streamEnd.sha256 = Data(Self.digest([1, 2, 3]))
        let receiver = try Self.receiver()
        _ = receiver.start(restart: false)
        for message in chunks + [end] { _ = receiver.receive(message) }
        guard case .failed(.digestMismatch(_, _, let length)) = receiver.outcome else {
            Issue.record("expected a digest mismatch, got \(receiver.outcome)")
            return
        }
        #expect(length == UInt64(bytes.count))
        #expect(throws: StreamError.self) { _ = try Self.readAll(receiver) }
    }

    @Test func wrongLengthOrFormatFails() throws {
        let bytes = Self.random(2 * Self.mib)
        let (chunks, end) = try Self.stream(bytes)
        var short = end
        short.envelope.streamEnd.totalLength = UInt64(Self.mib)
        let first = try Self.receiver()
        _ = first.start(restart: false)
        for message in chunks + [short] { _ = first.receive(message) }
        #expect(first.outcome == .failed(.lengthMismatch(declared: 1 << 20, received: 2 << 20)))

        var other = end
        other.envelope.streamEnd.format = "tar+xz"
        let second = try Self.receiver()
        _ = second.start(restart: false)
        _ = second.receive(other)
        #expect(second.outcome == .failed(.unsupportedFormat("tar+xz")))
    }

    @Test func chunksBeyondTheCreditAreDropped() throws {
        let bytes = Self.random(4 * Self.mib)
        let (chunks, _) = try Self.stream(bytes)
        let receiver = try Self.receiver(window: 2 << 20)
        _ = receiver.start(restart: false)
        #expect(receiver.receive(chunks[2]).isEmpty)
        #expect(receiver.counters.rejected == 1 && receiver.counters.chunks == 0)
    }

    @Test func restartAsksForEverything() throws {
        let receiver = try Self.receiver()
        #expect(receiver.start(restart: true) == [
            .resend(attemptID: 9, offset: 0, length: 0, reason: "the scheduler restarted; send the whole stream again"),
            .credit(attemptID: 9, bytes: 3 << 20),
        ])
    }

    @Test func badInputIsDroppedNotFatal() throws {
        let receiver = try Self.receiver()
        _ = receiver.start(restart: false)
        var generator = SplitMix64(seed: 99)
        let pool = Self.random(Self.mib + 1, seed: 99)
        for i in 0..<3000 {
            var chunk = Kiln_V1_StreamChunk()
            chunk.attemptID = [9, 8, 0, .max].randomElement(using: &generator)!
            chunk.offset = [0, 1, .max, .max - 3, UInt64.random(in: 0...(8 << 20), using: &generator)].randomElement(using: &generator)!
            let size = [0, 1, 17, Self.mib, Self.mib + 1].randomElement(using: &generator)!
            let data = Array(pool.prefix(size))
            chunk.length = i % 3 == 0 ? UInt32(size) : UInt32.random(in: 0...UInt32.max, using: &generator)
            chunk.sha256 = i % 5 == 0 ? Data(Self.digest(data)) : Data((0..<Int.random(in: 0...40, using: &generator)).map { _ in UInt8(0) })
            _ = receiver.receive(WireMessage(.streamChunk(chunk), data: i % 7 == 0 ? nil : data))
            var end = Kiln_V1_StreamEnd()
            end.attemptID = 8
            end.totalLength = .max
            _ = receiver.receive(WireMessage(.streamEnd(end)))
            _ = receiver.receive(.credit(attemptID: 9, bytes: 1))
        }
        // Reaching this line is the point: nothing trapped.
        #expect(receiver.counters.rejected > 0)
    }

    // MARK: - Both sides

    /// Sender and receiver over an in-memory link that reorders, duplicates,
    /// corrupts and drops: the receiver ends verified with the same bytes,
    /// and no chunk ever went past the credit granted when it was sent.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func senderAndReceiverConvergeOverAnUnreliableLink(seed: UInt64) throws {
        var generator = SplitMix64(seed: seed)
        let bytes = Self.random(6 * Self.mib + Int(seed) * 1000, seed: seed)
        let spool = try Self.spool(bytes)
        let sender = StreamSender(attemptID: 3, maxChunkBytes: 256 << 10)
        let receiver = StreamReceiver(attemptID: 3, spool: try Self.spool([], create: true), window: 1 << 20, maxChunkBytes: 256 << 10)
        var toReceiver: [WireMessage] = [], toSender = receiver.start(restart: seed == 3)
        var produced = 0
        var rounds = 0
        while receiver.outcome == .receiving {
            rounds += 1
            #expect(rounds < 20_000, "converges")
            if rounds >= 20_000 { return }
            // The writer makes progress.
            if produced < bytes.count {
                produced = min(bytes.count, produced + Int.random(in: 0...(700 << 10), using: &generator))
                sender.produced(UInt64(produced))
                if produced == bytes.count { sender.finished(length: UInt64(bytes.count), sha256: Self.digest(bytes)) }
            }
            for message in toSender.shuffled(using: &generator) {
                switch message.envelope.body {
                case .credit(let c): sender.grant(c.bytes)
                case .resend(let r): sender.resend(offset: r.offset, length: r.length)
                default: break
                }
            }
            toSender = []
            while let step = sender.next() {
                var message = try sender.message(for: step, from: spool)
                if case .chunk(let offset, let length) = step {
                    #expect(offset + UInt64(length) <= receiver.creditGranted, "credit never exceeded")
                    let dice = Int.random(in: 0..<100, using: &generator)
                    if dice < 5 { continue }                      // lost
                    if dice < 10 { message.data![0] ^= 1 }        // corrupted
                    if dice < 15 { toReceiver.append(message) }   // duplicated
                }
                toReceiver.append(message)
            }
            // Deliver part of what is in flight, in a shuffled order.
            toReceiver.shuffle(using: &generator)
            let now = Int.random(in: 0...toReceiver.count, using: &generator)
            for message in toReceiver.prefix(now) { toSender += receiver.receive(message) }
            toReceiver.removeFirst(now)
            if now == 0 && toReceiver.isEmpty && rounds % 10 == 0 { toSender += receiver.stalled() }
        }
        #expect(receiver.outcome == .verified(length: UInt64(bytes.count)))
        #expect(try Self.readAll(receiver) == bytes)
    }

    @Test func readerBlocksUntilVerifiedBytesArrive() async throws {
        let bytes = Self.random(4 * Self.mib + 3)
        let (chunks, end) = try Self.stream(bytes)
        let receiver = try Self.receiver(window: 8 << 20)
        _ = receiver.start(restart: false)
        let got = Mutex<[UInt8]?>(nil)
        let reader = Thread { got.withLock { $0 = try? Self.readAll(receiver) } }
        reader.start()
        for message in chunks.reversed() + [end] {
            try await Task.sleep(for: .milliseconds(20))
            _ = receiver.receive(message)
        }
        for _ in 0..<500 where got.withLock({ $0 == nil }) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(got.withLock { $0 } == bytes)
    }

    @Test func failWakesTheReader() async throws {
        let receiver = try Self.receiver()
        _ = receiver.start(restart: false)
        let result = Mutex<StreamError?>(nil)
        let reader = Thread {
            do { _ = try Self.readAll(receiver) } catch { result.withLock { $0 = error as? StreamError } }
        }
        reader.start()
        try await Task.sleep(for: .milliseconds(50))
        receiver.fail(.cancelled(reason: "test"))
        for _ in 0..<200 where result.withLock({ $0 == nil }) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(result.withLock { $0 } == .cancelled(reason: "test"))
    }

    // MARK: - Limits

    /// A stream longer than the receiver's `maxBytes` fails as soon as its
    /// `StreamEnd` says so or a chunk reaches past it, naming the limit.
    @Test func streamPastItsLengthLimitFails() throws {
        let bytes = Self.random(3 * Self.mib)
        let sender = StreamSender(attemptID: 9, maxChunkBytes: Self.mib)
        sender.finished(length: UInt64(bytes.count), sha256: Self.digest(bytes))
        sender.grant(.max)
        let messages = try Self.drain(sender, try Self.spool(bytes))
        for announcedFirst in [false, true] {
            let receiver = StreamReceiver(attemptID: 9, spool: try Self.spool([], create: true), window: 8 * UInt64(Self.mib),
                                          maxChunkBytes: Self.mib, maxBytes: 2 * UInt64(Self.mib))
            _ = receiver.start(restart: false)
            let ordered = announcedFirst ? [messages.last!] + messages.dropLast() : messages
            for m in ordered { _ = receiver.receive(m) }
            guard case .failed(.overLimit(let limit, _)) = receiver.outcome else {
                Issue.record("not refused: \(receiver.outcome)")
                continue
            }
            #expect(limit.contains("stream-max-compressed-gib"))
            #expect(receiver.verifiedLength <= 2 * UInt64(Self.mib))
        }
    }

    /// Credit is asked for before it grows; a refusal (no free space) fails
    /// the stream instead of granting it.
    /// Below the scheduler's --min-free-gib credit is held, not refused:
    /// the stream stays alive without growing, and goes on (at the next
    /// stall check) once space returns.
    @Test func creditIsHeldWhileSpaceIsLowAndGrowsWhenItReturns() throws {
        let bytes = Self.random(4 * Self.mib)
        let (chunks, end) = try Self.stream(bytes)
        let low = Mutex(false)
        let receiver = StreamReceiver(attemptID: 9, spool: try Self.spool([], create: true), window: 2 << 20, maxChunkBytes: Self.mib,
                                      holdCredit: { low.withLock { $0 } })
        #expect(receiver.start(restart: false) == [.credit(attemptID: 9, bytes: 2 << 20)])
        low.withLock { $0 = true }
        #expect(receiver.receive(chunks[0]) == [.credit(attemptID: 9, bytes: 2 << 20)], "no more credit than before")
        #expect(receiver.receive(chunks[1]) == [.credit(attemptID: 9, bytes: 2 << 20)])
        #expect(receiver.receive(chunks[2]).isEmpty && receiver.counters.rejected == 1, "the sender had no credit for it")
        #expect(receiver.stalled().last == .credit(attemptID: 9, bytes: 2 << 20), "still held")
        #expect(receiver.outcome == .receiving, "waiting, not failed")

        low.withLock { $0 = false }
        #expect(receiver.stalled().last == .credit(attemptID: 9, bytes: 4 << 20), "space is back: the window is granted again")
        for chunk in chunks[2...] { _ = receiver.receive(chunk) }
        _ = receiver.receive(end)
        #expect(receiver.outcome == .verified(length: UInt64(bytes.count)))
        #expect(try Self.readAll(receiver) == bytes)
    }

    @Test func creditIsRefusedWithoutSpace() throws {
        let granted = Mutex<[UInt64]>([])
        let receiver = StreamReceiver(attemptID: 3, spool: try Self.spool([], create: true), window: 1024, maxChunkBytes: 1024,
                                      admitCredit: { wanted in
                                          granted.withLock { $0.append(wanted) }
                                          return .overLimit(limit: "free space", detail: "none left")
                                      })
        #expect(receiver.start(restart: false).isEmpty, "no Credit")
        #expect(receiver.outcome == .failed(.overLimit(limit: "free space", detail: "none left")))
        #expect(granted.withLock { $0 } == [1024])
    }
}
