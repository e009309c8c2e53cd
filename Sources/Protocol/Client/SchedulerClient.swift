import Foundation
import Synchronization

/// A CLI's connection to a scheduler's client socket: one DEALER, requests
/// matched to replies by `request_id`, so several can be in flight.
package final class SchedulerClient: Sendable {
    let socket: ZMQSocketThread
    let endpoint: String
    private let waiting = Mutex<(next: UInt64, pending: [UInt64: CheckedContinuation<WireMessage, Error>])>((1, [:]))
    private let reader: Task<Void, Never>

    private init(socket: ZMQSocketThread, endpoint: String, reader: Task<Void, Never>) {
        self.socket = socket
        self.endpoint = endpoint
        self.reader = reader
    }

    /// Connects to `endpoint` (a client endpoint, see `SchedulerEndpoint`);
    /// over TCP with CURVE keys and the scheduler's pinned public key.
    package static func connect(context: ZMQContext, endpoint: String, keys: CurveKeyPair?,
                                schedulerPublicKey: String?) async throws -> SchedulerClient {
        var configuration = ZMQSocketConfiguration(.dealer, .connect(endpoint))
        if let keys, let schedulerPublicKey {
            configuration.curve = .client(keys: keys, serverPublicKey: schedulerPublicKey)
        }
        configuration.sendTimeout = .seconds(5)
        let socket = try await ZMQSocketThread.start(context: context, configuration: configuration, name: "kiln-client")
        let box = Mutex<SchedulerClient?>(nil)
        let reader = Task {
            for await m in socket.inbound {
                guard let (_, message) = try? Framing.decode(m.frames, routed: false) else { continue }
                box.withLock { $0 }?.complete(message)
            }
            box.withLock { $0 }?.failAll(ClientError.closed)
        }
        let client = SchedulerClient(socket: socket, endpoint: endpoint, reader: reader)
        box.withLock { $0 = client }
        return client
    }

    private func complete(_ message: WireMessage) {
        let c = waiting.withLock { $0.pending.removeValue(forKey: message.envelope.requestID) }
        c?.resume(returning: message)
    }

    private func failAll(_ error: Error) {
        let all = waiting.withLock { w in
            defer { w.pending.removeAll() }
            return Array(w.pending.values)
        }
        for c in all { c.resume(throwing: error) }
    }

    /// Sends a request and returns the reply; an `ErrorReply` is thrown as
    /// `ClientError.refused`.
    package func request(_ body: Kiln_V1_Envelope.OneOf_Body, timeout: Duration = .seconds(60)) async throws -> WireMessage {
        let id = waiting.withLock { w in
            defer { w.next += 1 }
            return w.next
        }
        let frames = try Framing.encode(WireMessage(body, requestID: id))
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            if Task.isCancelled { return }
            let c = self?.waiting.withLock { $0.pending.removeValue(forKey: id) }
            c?.resume(throwing: ClientError.noAnswer(endpoint: self?.endpoint ?? "", seconds: Int(timeout.components.seconds)))
        }
        defer { timer.cancel() }
        let reply = try await withCheckedThrowingContinuation { (c: CheckedContinuation<WireMessage, Error>) in
            waiting.withLock { $0.pending[id] = c }
            Task {
                do {
                    try await socket.send(frames)
                } catch {
                    let c = waiting.withLock { $0.pending.removeValue(forKey: id) }
                    c?.resume(throwing: ClientError.unreachable(endpoint: endpoint, reason: "\(error)"))
                }
            }
        }
        if case .error(let e) = reply.envelope.body { throw ClientError.refused(code: e.code, message: e.message) }
        return reply
    }

    package func close() async {
        await socket.close()
        reader.cancel()
    }
}

/// Why a client request got no useful answer.
package enum ClientError: Error, CustomStringConvertible {
    /// The scheduler never took the request (not running, wrong endpoint, or the CURVE handshake failed).
    case unreachable(endpoint: String, reason: String)
    /// The request was sent but no reply came in time.
    case noAnswer(endpoint: String, seconds: Int)
    /// The scheduler answered with an error.
    case refused(code: Kiln_V1_ErrorCode, message: String)
    /// The connection closed while waiting.
    case closed
    /// The reply was not the expected kind.
    case unexpected(String)

    package var description: String {
        switch self {
        case .unreachable(let ep, _):
            "cannot reach the scheduler at \(ep): no answer within 5 s; check --scheduler (KILN_SCHEDULER), and over TCP "
                + "that --key (KILN_KEY) is allow-listed on the scheduler and --scheduler-key (KILN_SCHEDULER_KEY) is its public key"
        case .noAnswer(let ep, let s): "the scheduler at \(ep) did not answer within \(s) s"
        case .refused(_, let m): m
        case .closed: "the connection to the scheduler closed"
        case .unexpected(let m): "unexpected reply from the scheduler: \(m)"
        }
    }

    /// The request itself was wrong (exit code 2).
    package var isBadInput: Bool {
        if case .refused(let code, _) = self { return code == .badRequest || code == .notFound }
        return false
    }
}

/// One endpoint names a scheduler; its agents and clients use two sockets:
/// `tcp://HOST:PORT` → agents on PORT, clients on PORT+1;
/// `inproc://NAME` → `inproc://NAME-agents`, `inproc://NAME-clients`.
package enum SchedulerEndpoint {
    package static func agents(_ endpoint: String) throws(EndpointError) -> String { try derive(endpoint, 0, "agents") }
    package static func clients(_ endpoint: String) throws(EndpointError) -> String { try derive(endpoint, 1, "clients") }

    static func derive(_ endpoint: String, _ offset: Int, _ suffix: String) throws(EndpointError) -> String {
        if endpoint.hasPrefix("inproc://") { return "\(endpoint)-\(suffix)" }
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":"),
              let port = Int(endpoint[endpoint.index(after: colon)...]), port > 0, port < 65535 else {
            throw EndpointError(endpoint: endpoint)
        }
        return "\(endpoint[..<colon]):\(port + offset)"
    }
}

/// A scheduler endpoint that is neither `tcp://HOST:PORT` nor `inproc://NAME`.
package struct EndpointError: Error, CustomStringConvertible {
    package let endpoint: String
    package var description: String {
        "scheduler endpoint \"\(endpoint)\": use tcp://HOST:PORT (agents on PORT, clients on PORT+1) or inproc://NAME"
    }
}
