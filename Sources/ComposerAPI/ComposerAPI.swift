package import Foundation
import HTTPServing
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import OpenAPIHummingbird
package import OpenAPIRuntime
package import Protocol
package import Scheduler

/// The scheduler's HTTP API (`kiln scheduler --api HOST:PORT`): osbuild-
/// composer's Cloud API v2 paths under `basePath`, as openapi.yaml (the
/// source of truth) declares them. Every request needs a bearer token from
/// the allow directory (`kiln tokens new`); every failure is an `APIError`.
package enum ComposerAPI {
    package static let basePath = "/api/image-builder-composer/v2"
    /// Largest request body taken (a blueprint with its files fits well inside).
    package static let maxBodyBytes = 4 << 20

    /// Who made the request being handled (set by `BearerAuthentication`).
    @TaskLocal package static var caller: TokenGrant?
    /// The request's operation ID, for error bodies and the log.
    @TaskLocal static var operationID = ""

    /// Binds `endpoint` and serves the API until `stop()`.
    package static func start(
        endpoint: HTTPEndpoint, tokens: BearerTokens, handlers: some APIProtocol, logger: Logger
    ) async throws -> StatusServer {
        let router = Router()
        router.middlewares.add(ErrorAnswers(logger: logger))
        router.middlewares.add(BearerAuthentication(tokens: tokens))
        try handlers.registerHandlers(on: router, serverURL: URL(string: basePath)!)
        return try await StatusServer.start(endpoint: endpoint, router: router, logger: logger)
    }
}

/// Outermost: gives every request an operation ID, turns whatever was thrown
/// (an unknown path, a body that does not decode, a handler's `APIError`)
/// into an error body, and logs server faults. Never lets a 500 out without
/// its reason in the log.
struct ErrorAnswers: RouterMiddleware {
    typealias Context = BasicRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let operationID = Self.newOperationID()
        return await ComposerAPI.$operationID.withValue(operationID) {
            do {
                if let length = request.headers[.contentLength].flatMap(Int.init), length > ComposerAPI.maxBodyBytes {
                    throw APIError(.bodyTooLarge, "the request body is \(length) bytes; at most \(ComposerAPI.maxBodyBytes) are taken")
                }
                var response = try await next(request, context)
                response.headers[.init("X-Operation-Id")!] = operationID
                return response
            } catch {
                let answer = Self.apiError(error, request: request)
                if answer.kind == .internalError {
                    logger.error("API \(request.method) \(request.uri.path) [\(operationID)]: \(String(reflecting: error))")
                }
                return answer.response(operationID: operationID)
            }
        }
    }

    static func apiError(_ error: any Error, request: Request) -> APIError {
        if let e = error as? APIError { return e }
        if let e = error as? SchedulerError {
            switch e {
            case .badRequest(let m): return APIError(.badRequest, m)
            case .notFound(let m): return APIError(.notFound, m)
            case .unavailable(let m): return APIError(.unavailable, m)
            }
        }
        if let e = error as? ReadOnlyDatabase {
            return APIError(.unavailable, "the scheduler takes no new work until it is restarted: \(e)")
        }
        if error is NIOTooManyBytesError {
            return APIError(.bodyTooLarge, "the request body is larger than the \(ComposerAPI.maxBodyBytes) bytes taken")
        }
        if let e = error as? ServerError {
            if let inner = e.underlyingError as? APIError { return inner }
            if let decoding = e.underlyingError as? DecodingError { return APIError(.badRequest, Self.describe(decoding)) }
            return APIError(.badRequest, "\(e.operationID): \(e.causeDescription)")
        }
        if let e = error as? HTTPError {
            switch e.status {
            case .notFound:
                let allowed = OperationPaths.methods(for: request.uri.path)
                if !allowed.isEmpty {
                    var e = APIError(
                        .methodNotAllowed, "\(request.method) \(request.uri.path): this path takes \(allowed.joined(separator: ", "))")
                    e.allow = allowed
                    return e
                }
                return APIError(
                    .notFound,
                    "no such operation: \(request.method) \(request.uri.path); the API is under \(ComposerAPI.basePath)/ "
                        + "and GET \(ComposerAPI.basePath)/openapi lists its operations")
            case .contentTooLarge:
                return APIError(.bodyTooLarge, "the request body is larger than the \(ComposerAPI.maxBodyBytes) bytes taken")
            default:
                return APIError(e.status.code < 500 ? .badRequest : .internalError, e.body ?? "\(e.status)")
            }
        }
        return APIError(.internalError, "internal error; the scheduler's log has it under this operation_id")
    }

    /// A decoding failure as the field path and what was wrong with it.
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.isEmpty ? "the body" : String(text.drop { $0 == "." })
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])): required, missing"
        case .dataCorrupted(let context):
            let field = path(context.codingPath)
            if let marker = context.debugDescription.range(of: "from invalid String value ") {
                let value = context.debugDescription[marker.upperBound...]
                let allowed = context.codingPath.last.flatMap { acceptedValues[$0.stringValue] }.map { "; use \($0)" } ?? ""
                return "\(field): \"\(value.prefix(64))\" is not a value this API takes\(allowed)"
            }
            return "\(field): \(context.debugDescription)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "the body: \(error)"
        }
    }

    /// What an enumerated field takes, for its error.
    static let acceptedValues = [
        "distribution": "debian-12 or debian-13 (bookworm, trixie); GET /distributions lists them",
        "architecture": "x86_64 or aarch64",
    ]

    static func newOperationID() -> String {
        var rng = SystemRandomNumberGenerator()
        return String(UInt64.random(in: 0...UInt64.max, using: &rng), radix: 16)
    }
}

/// Every path needs `Authorization: Bearer TOKEN` with a token the allow
/// directory holds now; the caller is known to the handlers as `ComposerAPI.caller`.
struct BearerAuthentication: RouterMiddleware {
    typealias Context = BasicRequestContext
    let tokens: BearerTokens

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw APIError(.unauthorized, "no token: send Authorization: Bearer TOKEN (kiln tokens new NAME --role client --allow DIR makes one)")
        }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw APIError(.unauthorized, "the Authorization header is not Bearer TOKEN")
        }
        guard let grant = tokens.grant(forToken: parts[1].trimmingCharacters(in: .whitespaces)) else {
            throw APIError(.unauthorized, "the token is not (or no longer) allowed on this scheduler")
        }
        // Only now, for a caller the allow directory knows, is a body read
        // (a chunked one has no length to look at: it is cut off at the limit).
        var request = request
        _ = try await request.collectBody(upTo: ComposerAPI.maxBodyBytes)
        return try await ComposerAPI.$caller.withValue(grant) { try await next(request, context) }
    }
}

extension TokenGrant {
    /// The owner filter for reads: nil for an admin (every compose), else the token's identity.
    var owner: String? { role == .admin ? nil : identity }
}
