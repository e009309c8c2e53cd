import CZeroMQ
import Foundation
import Synchronization
import Threads

/// The ZeroMQ authentication handler (ZAP, RFC 27) of one context: a REP
/// socket on `inproc://zeromq.zap.01`, on its own thread, that admits a CURVE
/// client only when its public key is on the allow-list and the request is
/// for `domain`. Everything else is refused: other mechanisms, other
/// domains, malformed requests. Refusals are reported on `refusals`.
///
/// Start it before binding any CURVE server socket of the same context, and
/// give those sockets the same ZAP domain (`ZMQSocketConfiguration.Curve.server`
/// also sets `ZMQ_ZAP_ENFORCE_DOMAIN`, so without a handler no one is admitted).
/// The admitted key becomes the message's "User-Id" (`ZMQMessage.userID`).
package final class ZAPHandler: Sendable {
    package static let endpoint = "inproc://zeromq.zap.01"

    package let domain: String
    /// Refused connections, newest kept when nobody reads.
    package let refusals: AsyncStream<ZAPRefusal>
    private let allowed: Mutex<Set<String>>
    private let wake: EventFD
    private let state = Mutex<(closing: Bool, finished: Bool, waiters: [CheckedContinuation<Void, Never>])>(
        (false, false, []))

    private init(domain: String, allowed: Set<String>, wake: EventFD, refusals: AsyncStream<ZAPRefusal>) {
        self.domain = domain
        self.allowed = Mutex(allowed)
        self.wake = wake
        self.refusals = refusals
    }

    /// Binds the handler in `context` and returns once it is bound.
    package static func start(
        context: ZMQContext, domain: String, allowedKeys: Set<String>
    ) async throws(ZMQError) -> ZAPHandler {
        let (stream, continuation) = AsyncStream<ZAPRefusal>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let handler = ZAPHandler(domain: domain, allowed: allowedKeys, wake: try EventFD.forSocket(), refusals: stream)
        let started = await withCheckedContinuation { (ready: CheckedContinuation<Result<Void, ZMQError>, Never>) in
            let thread = Thread { [handler] in handler.run(context: context, ready: ready, refusals: continuation) }
            thread.name = "kiln-zap"
            thread.start()
        }
        try started.get()
        return handler
    }

    /// Replaces the allow-list (Z85 public keys); applies to new connections.
    package func setAllowedKeys(_ keys: Set<String>) {
        allowed.withLock { $0 = keys }
    }

    /// Stops the handler; from then on every CURVE client of the context is refused.
    package func close() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let finished = state.withLock { state in
                if state.finished { return true }
                state.closing = true
                state.waiters.append(done)
                return false
            }
            if finished { done.resume() } else { wake.signal() }
        }
    }

    private func run(
        context: ZMQContext, ready: CheckedContinuation<Result<Void, ZMQError>, Never>,
        refusals: AsyncStream<ZAPRefusal>.Continuation
    ) {
        var socketHandle = zmq_socket(context.handle, ZMQ_REP)
        do throws(ZMQError) {
            guard let handle = socketHandle else { throw ZMQError(operation: "zmq_socket(ZMQ_REP)", code: zmq_errno()) }
            try ZMQRawSocket(handle).set(ZMQ_LINGER, Int32(0), "ZMQ_LINGER")
            try check(zmq_bind(handle, Self.endpoint), "zmq_bind(\(Self.endpoint)); is another ZAP handler running in this context?")
            ready.resume(returning: .success(()))
            serve(ZMQRawSocket(handle), refusals: refusals)
        } catch {
            ready.resume(returning: .failure(error))
        }
        if let handle = socketHandle { zmq_close(handle) }
        socketHandle = nil
        refusals.finish()
        let waiters = state.withLock { state in
            state.finished = true
            state.closing = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private func serve(_ socket: ZMQRawSocket, refusals: AsyncStream<ZAPRefusal>.Continuation) {
        while true {
            var items = [
                zmq_pollitem_t(socket: socket.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0),
                zmq_pollitem_t(socket: nil, fd: wake.fd, events: Int16(ZMQ_POLLIN), revents: 0),
            ]
            if zmq_poll(&items, 2, -1) == -1 {
                if zmq_errno() == EINTR { continue }
                return
            }
            if items[1].revents != 0 {
                wake.drain()
                if state.withLock({ $0.closing }) { return }
            }
            guard items[0].revents != 0 else { continue }
            do throws(ZMQError) {
                guard let request = try socket.receive(flags: ZMQ_DONTWAIT) else { continue }
                let (reply, refusal) = answer(request.frames)
                if let refusal { refusals.yield(refusal) }
                try socket.send(reply, flags: 0)
            } catch {
                // A REP socket that failed mid-exchange cannot recover its
                // state; stop, so that every client is refused from now on.
                return
            }
        }
    }

    /// The reply frames for one ZAP request, and the refusal to report if any.
    func answer(_ frames: [[UInt8]]) -> (reply: [[UInt8]], refusal: ZAPRefusal?) {
        func text(_ index: Int) -> String {
            index < frames.count ? String(decoding: frames[index], as: UTF8.self) : ""
        }
        let requestID = frames.count > 1 ? frames[1] : []
        func reply(_ code: String, _ status: String, user: String = "") -> [[UInt8]] {
            [Array("1.0".utf8), requestID, Array(code.utf8), Array(status.utf8), Array(user.utf8), []]
        }
        let domain = text(2), address = text(3), mechanism = text(5)
        var key = ""
        if mechanism == "CURVE", frames.count == 7, frames[6].count == 32 {
            var z85 = [CChar](repeating: 0, count: 41)
            if frames[6].withUnsafeBufferPointer({ zmq_z85_encode(&z85, $0.baseAddress, 32) }) != nil {
                key = String(cString: z85)
            }
        }
        let reason: String
        if frames.count < 6 || text(0) != "1.0" {
            reason = "malformed ZAP request"
        } else if domain != self.domain {
            reason = "ZAP domain \"\(domain)\" is not \"\(self.domain)\""
        } else if mechanism != "CURVE" {
            reason = "mechanism \(mechanism) is not allowed; Kiln requires CURVE"
        } else if key.isEmpty {
            reason = "malformed CURVE credentials"
        } else if !allowed.withLock({ $0.contains(key) }) {
            reason =
                "public key is not on the allow list; its .pub belongs in the scheduler's allow/agents/, "
                + "allow/clients/ or allow/admins/"
        } else {
            return (reply("200", "OK", user: key), nil)
        }
        let refusal = ZAPRefusal(publicKey: key, address: address, mechanism: mechanism, domain: domain, reason: reason)
        return (reply("400", reason), refusal)
    }
}
