import CZeroMQ
import Foundation
import Synchronization
import Threads

/// One libzmq socket owned by one dedicated thread. The thread creates,
/// uses and closes the socket; it polls the socket together with an eventfd.
/// Other code sends through `send` (a locked command queue plus an eventfd
/// write) and receives through `inbound`. `close()` makes the thread close
/// the socket, fail what is still queued, finish `inbound` and exit.
///
/// Sends never block the thread: a DEALER that has no peer to take a message
/// (not connected, refused, at its high-water mark) keeps it queued until the
/// socket is writable or `sendTimeout` passes; a ROUTER fails that one send
/// (EAGAIN, or EHOSTUNREACH for an unknown identity) so one slow peer cannot
/// stall the others.
package final class ZMQSocketThread: Sendable {
    /// Inbound messages, in order. Finishes when the socket closes. What is
    /// received and not yet taken from it is bounded (`InboundLimits`).
    package let inbound: Inbound
    /// Messages dropped on the way in (too many frames or bytes, a peer's
    /// or the socket's queue full); the newest 256 are kept until read.
    package let drops: AsyncStream<InboundDrop>
    /// The bound endpoint with a wildcard port resolved, or the connect endpoint.
    package let endpoint: String
    private let shared: Shared

    private init(inbound: Inbound, drops: AsyncStream<InboundDrop>, endpoint: String, shared: Shared) {
        self.inbound = inbound
        self.drops = drops
        self.endpoint = endpoint
        self.shared = shared
    }

    /// A message the socket's thread received and dropped.
    package struct InboundDrop: Sendable, Equatable {
        /// The peer's CURVE key (Z85), else its routing identity; "peer" on a DEALER.
        package var peer: String
        /// Frames and bytes of the message.
        package var frames: Int
        package var bytes: Int
        /// Which limit it passed.
        package var reason: String
        /// Messages this socket has dropped so far, this one included: a
        /// reader that fell behind (`drops` keeps the newest 256) sees how
        /// many it missed.
        package var total: Int = 0
    }

    /// `inbound`: each message taken gives its bytes back to the budgets of
    /// its peer and of the socket.
    package struct Inbound: AsyncSequence, Sendable {
        package typealias Element = ZMQMessage
        let stream: AsyncStream<ZMQMessage>
        let budget: InboundBudget

        package struct AsyncIterator: AsyncIteratorProtocol {
            var base: AsyncStream<ZMQMessage>.AsyncIterator
            let budget: InboundBudget
            package mutating func next() async -> ZMQMessage? {
                guard let message = await base.next() else { return nil }
                budget.release(message)
                return message
            }
        }

        package func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(base: stream.makeAsyncIterator(), budget: budget)
        }
    }

    /// What the peers of one socket have received and not yet taken.
    final class InboundBudget: Sendable {
        let limits: ZMQSocketConfiguration.InboundLimits
        let perPeer: Bool
        private let queued = Mutex<(bytes: Int, peers: [String: (bytes: Int, messages: Int)])>((0, [:]))

        init(limits: ZMQSocketConfiguration.InboundLimits, perPeer: Bool) {
            self.limits = limits
            self.perPeer = perPeer
        }

        func cost(_ message: ZMQMessage) -> Int {
            message.frames.reduce(limits.messageCost) { $0 + $1.count }
        }

        /// Counts `message` in, or says which budget it would pass.
        func admit(_ message: ZMQMessage, peer: String) -> String? {
            let cost = cost(message)
            return queued.withLock { q -> String? in
                if q.bytes + cost > limits.maxQueuedBytes {
                    return "the socket's inbound queue holds \(q.bytes) bytes (limit \(limits.maxQueuedBytes))"
                }
                if perPeer {
                    let mine = q.peers[peer] ?? (0, 0)
                    if mine.bytes + cost > limits.maxQueuedBytesPerPeer || mine.messages + 1 > limits.maxQueuedMessagesPerPeer {
                        return "the peer has \(mine.messages) messages of \(mine.bytes) bytes waiting "
                            + "(limit \(limits.maxQueuedMessagesPerPeer) messages, \(limits.maxQueuedBytesPerPeer) bytes)"
                    }
                    q.peers[peer] = (mine.bytes + cost, mine.messages + 1)
                }
                q.bytes += cost
                return nil
            }
        }

        func release(_ message: ZMQMessage) {
            let cost = cost(message)
            let peer = perPeer ? Self.peer(message.userID, message.frames.first, routed: true) : ""
            queued.withLock { q in
                q.bytes -= cost
                guard perPeer, let mine = q.peers[peer] else { return }
                if mine.messages <= 1 { q.peers[peer] = nil } else { q.peers[peer] = (mine.bytes - cost, mine.messages - 1) }
            }
        }

        /// Who sent a message: its CURVE key, else (on a ROUTER) its routing identity.
        static func peer(_ userID: String?, _ first: [UInt8]?, routed: Bool) -> String {
            if let userID { return userID }
            guard routed, let first else { return "peer" }
            // Only a budget's key: a peer that chooses odd bytes shares its budget with a look-alike, no more.
            return "identity " + String(decoding: first, as: UTF8.self)
        }
    }

    /// Starts the thread, creates the socket, binds or connects it; returns
    /// once that is done (or throws what failed).
    package static func start(
        context: ZMQContext, configuration: ZMQSocketConfiguration, name: String = "kiln-zmq"
    ) async throws(ZMQError) -> ZMQSocketThread {
        let shared = Shared(wake: try EventFD.forSocket())
        let (stream, continuation) = AsyncStream<ZMQMessage>.makeStream()
        let (drops, dropped) = AsyncStream<InboundDrop>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let budget = InboundBudget(limits: configuration.inbound, perPeer: configuration.kind == .router)
        let started = await withCheckedContinuation { (ready: CheckedContinuation<Result<String, ZMQError>, Never>) in
            let loop = Loop(
                context: context, configuration: configuration, shared: shared, inbound: continuation,
                budget: budget, dropped: dropped)
            let thread = Thread { loop.run(ready: ready) }
            thread.name = name
            thread.start()
        }
        return ZMQSocketThread(
            inbound: Inbound(stream: stream, budget: budget), drops: drops, endpoint: try started.get(),
            shared: shared)
    }

    /// Queues one multipart message and returns when libzmq has taken it.
    package func send(_ frames: [[UInt8]]) async throws(ZMQError) {
        let result = await withCheckedContinuation { (done: CheckedContinuation<Result<Void, ZMQError>, Never>) in
            switch shared.enqueue((frames, done, ContinuousClock.now)) {
            case .wake: shared.wake.signal()
            case .queued: break
            case .closed:
                done.resume(returning: .failure(ZMQError(operation: "send on a closed socket", code: ETERM)))
            }
        }
        try result.get()
    }

    /// Queues one multipart message without waiting for libzmq to take it;
    /// messages posted from one task keep their order. A failed send (peer
    /// gone, queue full, socket closed) is dropped: protocols built on this
    /// repair losses themselves (absolute credit, leases, resend).
    package func post(_ frames: [[UInt8]]) {
        if shared.enqueue((frames, nil, ContinuousClock.now)) == .wake { shared.wake.signal() }
    }

    /// Closes the socket on its thread and waits until the thread has exited.
    package func close() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let finished = shared.state.withLock { state in
                if state.finished { return true }
                state.closing = true
                state.closeWaiters.append(done)
                return false
            }
            if finished { done.resume() } else { shared.wake.signal() }
        }
    }

    deinit {
        shared.state.withLock { $0.closing = true }
        shared.wake.signal()
    }
}

extension ZMQSocketThread {
    typealias Pending = (
        frames: [[UInt8]], done: CheckedContinuation<Result<Void, ZMQError>, Never>?, queued: ContinuousClock.Instant
    )

    final class Shared: Sendable {
        struct State {
            var commands: [Pending] = []
            var closing = false
            var finished = false
            var closeWaiters: [CheckedContinuation<Void, Never>] = []
        }
        let state = Mutex(State())
        let wake: EventFD
        init(wake: EventFD) { self.wake = wake }

        enum Enqueued { case wake, queued, closed }

        /// Queues a send. Only the first command into an empty queue wakes
        /// the thread (it takes the whole queue when it wakes): one eventfd
        /// write per burst, not per message.
        func enqueue(_ command: Pending) -> Enqueued {
            state.withLock { state in
                guard !state.closing else { return .closed }
                state.commands.append(command)
                return state.commands.count == 1 ? .wake : .queued
            }
        }
    }

    /// Runs on the socket's own thread; nothing else touches the socket.
    final class Loop: @unchecked Sendable {
        let context: ZMQContext
        let configuration: ZMQSocketConfiguration
        let shared: Shared
        let inbound: AsyncStream<ZMQMessage>.Continuation
        let budget: InboundBudget
        let dropped: AsyncStream<InboundDrop>.Continuation
        /// Messages dropped so far (this thread's alone).
        private var dropTotal = 0

        init(
            context: ZMQContext, configuration: ZMQSocketConfiguration, shared: Shared,
            inbound: AsyncStream<ZMQMessage>.Continuation, budget: InboundBudget,
            dropped: AsyncStream<InboundDrop>.Continuation
        ) {
            self.context = context
            self.configuration = configuration
            self.shared = shared
            self.inbound = inbound
            self.budget = budget
            self.dropped = dropped
        }

        func run(ready: CheckedContinuation<Result<String, ZMQError>, Never>) {
            guard let handle = zmq_socket(context.handle, configuration.socketType) else {
                finish(socket: nil, pending: [])
                ready.resume(returning: .failure(ZMQError(operation: "zmq_socket", code: zmq_errno())))
                return
            }
            let socket = ZMQRawSocket(handle)
            do throws(ZMQError) {
                try configuration.apply(to: socket)
                switch configuration.attachment {
                case .bind(let endpoint):
                    try check(zmq_bind(handle, endpoint), "zmq_bind(\(endpoint))")
                    ready.resume(returning: .success(try socket.lastEndpoint()))
                case .connect(let endpoint):
                    try check(zmq_connect(handle, endpoint), "zmq_connect(\(endpoint))")
                    ready.resume(returning: .success(endpoint))
                }
            } catch {
                finish(socket: handle, pending: [])
                ready.resume(returning: .failure(error))
                return
            }
            finish(socket: handle, pending: serve(socket))
        }

        /// Polls until closing; returns the sends still queued.
        private func serve(_ socket: ZMQRawSocket) -> [Pending] {
            var pending: [Pending] = []
            var waitingForOut = false
            while true {
                var items = [
                    zmq_pollitem_t(
                        socket: socket.handle, fd: 0,
                        events: Int16(ZMQ_POLLIN | (waitingForOut ? ZMQ_POLLOUT : 0)), revents: 0),
                    zmq_pollitem_t(socket: nil, fd: shared.wake.fd, events: Int16(ZMQ_POLLIN), revents: 0),
                ]
                if zmq_poll(&items, 2, pollTimeout(waitingForOut ? pending.first?.queued : nil)) == -1 {
                    if zmq_errno() == EINTR { continue }
                    return pending  // ETERM: the context is going away
                }
                if items[1].revents != 0 {
                    shared.wake.drain()
                    let (commands, closing) = shared.state.withLock { state in
                        defer { state.commands.removeAll() }
                        return (state.commands, state.closing)
                    }
                    pending.append(contentsOf: commands)
                    if closing { return pending }
                }
                expire(&pending)
                waitingForOut = flush(socket, &pending)
                if items[0].revents & Int16(ZMQ_POLLIN) != 0 {
                    receiveAvailable(socket)
                }
            }
        }

        /// Milliseconds until the oldest waiting send times out; -1: no limit.
        private func pollTimeout(_ oldest: ContinuousClock.Instant?) -> Int {
            guard let oldest, let limit = configuration.sendTimeout else { return -1 }
            let left = (oldest + limit) - ContinuousClock.now
            return max(0, Int(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000) + 1)
        }

        /// Fails the sends that have waited longer than `sendTimeout`.
        private func expire(_ pending: inout [Pending]) {
            guard let limit = configuration.sendTimeout else { return }
            let now = ContinuousClock.now
            while let first = pending.first, first.queued + limit <= now {
                pending.removeFirst()
                first.done?.resume(
                    returning: .failure(
                        ZMQError(
                            operation: "zmq_send: no peer took the message within \(limit)", code: EAGAIN)))
            }
        }

        /// Sends queued messages; returns true when the DEALER must wait for POLLOUT.
        private func flush(_ socket: ZMQRawSocket, _ pending: inout [Pending]) -> Bool {
            var sent = 0
            defer { pending.removeFirst(sent) }
            while sent < pending.count {
                let item = pending[sent]
                do throws(ZMQError) {
                    try socket.send(item.frames, flags: ZMQ_DONTWAIT)
                    item.done?.resume(returning: .success(()))
                } catch {
                    if error.code == EAGAIN && configuration.kind == .dealer { return true }
                    item.done?.resume(returning: .failure(error))
                }
                sent += 1
            }
            return false
        }

        /// Drains what is waiting, at most a batch at a time so sends
        /// interleave. A message past a limit is dropped here, before it is
        /// copied (frames, bytes) or queued (budgets), and reported.
        private func receiveAvailable(_ socket: ZMQRawSocket) {
            let limits = configuration.inbound, routed = configuration.kind == .router
            for _ in 0..<256 {
                do throws(ZMQError) {
                    switch try socket.receive(flags: ZMQ_DONTWAIT, maxFrames: limits.maxFrames, maxBytes: limits.maxMessageBytes) {
                    case nil:
                        return
                    case .refused(let first, let userID, let frames, let bytes, let reason)?:
                        dropTotal += 1
                        dropped.yield(
                            InboundDrop(
                                peer: InboundBudget.peer(userID, first, routed: routed),
                                frames: frames, bytes: bytes, reason: reason, total: dropTotal))
                    case .message(let message)?:
                        let peer = InboundBudget.peer(message.userID, message.frames.first, routed: routed)
                        if let reason = budget.admit(message, peer: peer) {
                            dropTotal += 1
                            dropped.yield(
                                InboundDrop(
                                    peer: peer, frames: message.frames.count,
                                    bytes: message.frames.reduce(0) { $0 + $1.count }, reason: reason,
                                    total: dropTotal))
                        } else {
                            inbound.yield(message)
                        }
                    }
                } catch {
                    return
                }
            }
        }

        private func finish(socket: UnsafeMutableRawPointer?, pending: [Pending]) {
            if let socket { zmq_close(socket) }
            let (commands, waiters) = shared.state.withLock { state in
                state.closing = true
                state.finished = true
                defer {
                    state.commands.removeAll()
                    state.closeWaiters.removeAll()
                }
                return (state.commands, state.closeWaiters)
            }
            for item in pending + commands {
                item.done?.resume(returning: .failure(ZMQError(operation: "send on a closed socket", code: ETERM)))
            }
            inbound.finish()
            dropped.finish()
            for waiter in waiters { waiter.resume() }
        }
    }
}
