import Foundation
import Hummingbird
import MedViewCore
import MedViewProtocol

/// A typed error at the HTTP edge: rendered as `{"error": {"code", "message", "retryable"}}` with the code's status.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var code: ErrorCode
    public var message: String
    /// Whole seconds to wait before retrying: the `Retry-After` header and the body's `retryAfter`.
    public var retryAfter: Int?

    public init(_ code: ErrorCode, _ message: String, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    package init(_ error: ChatError) {
        self.init(error.code, error.message, retryAfter: error.retryAfter)
    }

    public var status: HTTPResponse.Status { .init(code: code.httpStatus) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"]
        if code == .unauthorized || code == .tokenExpired {
            headers[.wwwAuthenticate] = code == .tokenExpired ? "Bearer error=\"invalid_token\", error_description=\"expired\"" : "Bearer"
        }
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(data: errorBody)))
    }

    package var errorBody: Data {
        JSONHelpers.encode(ErrorBody(error: .init(code: code, message: message, retryable: code.retryable, retryAfter: retryAfter)))
    }

    struct ErrorBody: Encodable {
        struct Inner: Encodable {
            var code: ErrorCode
            var message: String
            var retryable: Bool
            var retryAfter: Int?
        }
        var error: Inner
    }
}

enum JSONHelpers {
    static func encode(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        // Only plain value types reach here.
        return try! encoder.encode(value)
    }

    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(data: encode(value)))
        )
    }
}
