import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// Where a status server listens: `HOST:PORT`, `:PORT` (loopback) or
/// `http://HOST:PORT/`. Port 0 picks a free port (`StatusServer.port` says which).
package struct HTTPEndpoint: Sendable, Equatable, CustomStringConvertible {
    package var host: String
    package var port: Int

    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `text`; the error names `option` and the accepted forms.
    package init(parsing text: String, option: String) throws(HTTPEndpointError) {
        var s = Substring(text)
        if s.hasPrefix("http://") { s = s.dropFirst(7) }
        while s.hasSuffix("/") { s = s.dropLast() }
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port) else {
            throw HTTPEndpointError(option: option, value: text)
        }
        var host = String(s[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.init(host: host.isEmpty ? "127.0.0.1" : host, port: port)
    }

    /// True when only this machine can reach it.
    package var isLoopback: Bool { host == "127.0.0.1" || host == "::1" || host == "localhost" }

    package var description: String { host.contains(":") ? "http://[\(host)]:\(port)/" : "http://\(host):\(port)/" }
}

package struct HTTPEndpointError: Error, CustomStringConvertible {
    package var option: String
    package var value: String
    package var description: String {
        "\(option) \(value): not an HTTP endpoint; use HOST:PORT (e.g. 127.0.0.1:9464) or :PORT for loopback"
    }
}

/// One answer of a status server.
package struct StatusResponse: Sendable {
    package var status: Int
    package var contentType: String
    package var body: [UInt8]

    package init(status: Int = 200, contentType: String, body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    package static func text(_ s: String, status: Int = 200) -> StatusResponse {
        StatusResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array(s.utf8))
    }

    /// Prometheus text exposition format 0.0.4.
    package static func prometheus(_ body: [UInt8]) -> StatusResponse {
        StatusResponse(contentType: "text/plain; version=0.0.4; charset=utf-8", body: body)
    }
}

/// A small read-only HTTP server (GET only) for `/metrics`, the dashboard
/// and its JSON: the paths and what answers them are the caller's.
/// Unknown paths get 404; a handler never sees a request body.
///
/// A peer cannot hold the daemon's file descriptors: a connection must send a
/// whole request head within `requestTimeout` of connecting or of its last
/// answer (slow headers and idle keep-alive connections are closed alike), and
/// at most `maxConnections` are open at once; the next ones wait in the
/// listen backlog until one closes.
package final class StatusServer: Sendable {
    /// Answers a GET of one path; `query` holds the URL's query parameters.
    package typealias Handler = @Sendable (_ query: [String: String]) async -> StatusResponse

    /// The port it listens on (the chosen one when asked for port 0).
    package let port: Int
    package let endpoint: HTTPEndpoint
    private let task: Task<Void, Never>

    private init(endpoint: HTTPEndpoint, port: Int, task: Task<Void, Never>) {
        self.endpoint = endpoint
        self.port = port
        self.task = task
    }

    /// Binds and starts serving; throws when the address cannot be bound.
    package static func start(
        endpoint: HTTPEndpoint, routes: [String: Handler], logger: Logger,
        requestTimeout: Duration = .seconds(10), maxConnections: Int = 256
    ) async throws -> StatusServer {
        let router = Router()
        for (path, handler) in routes {
            router.get(RouterPath(path)) { request, _ -> Response in
                var query: [String: String] = [:]
                for (k, v) in request.uri.queryParameters { query[String(k)] = String(v) }
                let r = await handler(query)
                var headers = HTTPFields()
                headers[.contentType] = r.contentType
                headers[.cacheControl] = "no-store"
                return Response(
                    status: .init(code: r.status), headers: headers,
                    body: .init(byteBuffer: ByteBuffer(bytes: r.body)))
            }
        }
        return try await start(
            endpoint: endpoint, router: router, logger: logger, requestTimeout: requestTimeout,
            maxConnections: maxConnections)
    }

    /// Binds and starts serving `router` (any methods, bodies, middleware:
    /// the HTTP API's), with the same deadlines and connection limit.
    package static func start(
        endpoint: HTTPEndpoint, router: Router<BasicRequestContext>, logger: Logger,
        requestTimeout: Duration = .seconds(10), maxConnections: Int = 256
    ) async throws -> StatusServer {
        var quiet = logger
        // Its errors reach the caller through `run()`; its own logging (a cancelled
        // server logs "Waiting on child channel: CancellationError") is noise here.
        quiet.logLevel = .critical
        // Running, or the reason it could not start: whichever comes first.
        let (outcomes, sink) = AsyncStream<Result<Int, any Error>>.makeStream(bufferingPolicy: .bufferingNewest(4))
        // HTTPConnectionStateHandler's idle timer runs from the connection's
        // start (and from each answer) until a request head has been decoded,
        // so it is the header deadline as well as the idle one.
        let timeout = TimeAmount.nanoseconds(
            Int64(requestTimeout.components.seconds) * 1_000_000_000
                + requestTimeout.components.attoseconds / 1_000_000_000)
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: timeout)),
            configuration: .init(
                address: .hostname(endpoint.host, port: endpoint.port), serverName: "kiln",
                availableConnectionsDelegate: MaximumAvailableConnections(max(1, maxConnections), logger: quiet)),
            onServerRunning: { channel in sink.yield(.success(channel.localAddress?.port ?? endpoint.port)) },
            logger: quiet)
        let task = Task {
            do {
                try await app.run()
                sink.yield(.failure(StatusServerError.stopped(endpoint)))
            } catch {
                sink.yield(.failure(StatusServerError.cannotListen(endpoint, "\(error)")))
            }
        }
        var iterator = outcomes.makeAsyncIterator()
        switch await iterator.next() ?? .failure(StatusServerError.stopped(endpoint)) {
        case .success(let port):
            return StatusServer(endpoint: endpoint, port: port, task: task)
        case .failure(let error):
            task.cancel()
            throw error
        }
    }

    /// Stops serving and waits until the port is closed.
    package func stop() async {
        task.cancel()
        await task.value
    }
}

package enum StatusServerError: Error, CustomStringConvertible {
    case cannotListen(HTTPEndpoint, String)
    case stopped(HTTPEndpoint)

    package var description: String {
        switch self {
        case .cannotListen(let e, let why): "cannot serve HTTP on \(e.host):\(e.port): \(why)"
        case .stopped(let e): "the HTTP server on \(e.host):\(e.port) stopped before it was running"
        }
    }
}
