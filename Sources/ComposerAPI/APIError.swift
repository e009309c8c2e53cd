package import Foundation
import HTTPTypes
import Hummingbird

/// An error answer of the API, in the shape composer's clients read:
/// `{"kind": "Error", "id", "href", "code", "reason", "operation_id"}`.
/// `id` and `code` name the kind of error (stable; `GET /errors/{id}` will
/// list them); `reason` says what was wrong and how to fix it.
package struct APIError: Error, Sendable, Equatable {
    package enum Kind: Int, Sendable, CaseIterable {
        case unauthorized = 1
        case notFound = 2
        case badRequest = 3
        case bodyTooLarge = 4
        case unsupported = 5
        case internalError = 6
        case methodNotAllowed = 7
        case unavailable = 8

        var status: HTTPResponse.Status {
            switch self {
            case .unauthorized: .unauthorized
            case .notFound: .notFound
            case .badRequest, .unsupported: .badRequest
            case .bodyTooLarge: .contentTooLarge
            case .internalError: .internalServerError
            case .methodNotAllowed: .methodNotAllowed
            case .unavailable: .serviceUnavailable
            }
        }
    }

    package var kind: Kind
    package var reason: String
    /// With `methodNotAllowed`: the methods the path takes (the `Allow` header).
    var allow: [String] = []

    package init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    package var code: String { "KILN-\(kind.rawValue)" }

    /// The JSON body, with `operationID` naming the request in the log.
    func body(operationID: String) -> [UInt8] {
        let object: [String: String] = [
            "kind": "Error", "id": "\(kind.rawValue)", "href": "\(ComposerAPI.basePath)/errors/\(kind.rawValue)",
            "code": code, "reason": reason, "operation_id": operationID,
        ]
        return Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data())
    }

    func response(operationID: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        headers[.init("X-Operation-Id")!] = operationID
        if kind == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"kiln\"" }
        if !allow.isEmpty { headers[.allow] = allow.joined(separator: ", ") }
        return Response(status: kind.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body(operationID: operationID))))
    }
}
