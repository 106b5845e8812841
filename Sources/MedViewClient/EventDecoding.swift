import Foundation
import MedViewProtocol

/// Reads server events defensively: anything that is not a well-formed event becomes a typed
/// error for the caller to drop, never a crash. An `error` event with a code this client does not
/// know (a newer server) is kept, as `internal`, so that its `id` and `seq` still settle commands
/// and end streams.
enum EventDecoding {
    /// The fields every `error` event has, with the code as plain text.
    private struct LooseError: Decodable {
        var type: String
        var code: String
        var message: String?
        var retryable: Bool?
        var id: String?
        var streamId: String?
        var seq: Int?
        var retryAfter: Int?
    }

    static func decode(_ data: Data) throws(MedViewClientError) -> ServerEvent {
        do {
            return try ServerEvent.decode(data)
        } catch {
            if let loose = try? JSONDecoder().decode(LooseError.self, from: data), loose.type == "error" {
                return .error(ErrorEvent(
                    code: ErrorCode(rawValue: loose.code) ?? .internalError,
                    message: loose.message ?? "The server reported an error.",
                    retryable: loose.retryable ?? false,
                    id: loose.id, streamId: loose.streamId, seq: loose.seq, retryAfter: loose.retryAfter
                ))
            }
            throw .invalidResponse("an event that could not be read")
        }
    }

    static func decode(_ text: String) throws(MedViewClientError) -> ServerEvent {
        try decode(Data(text.utf8))
    }

    /// The typed error of an HTTP error body (`{"error": {code, message, retryable}}`), or a
    /// generic one built from the status when the body is not one.
    static func httpError(status: Int, body: Data) -> MedViewClientError {
        struct Body: Decodable {
            struct Inner: Decodable {
                var code: String
                var message: String?
                var retryable: Bool?
            }
            var error: Inner
        }
        if let body = try? JSONDecoder().decode(Body.self, from: body) {
            let code = ErrorCode(rawValue: body.error.code) ?? .internalError
            return .server(code: code, message: body.error.message ?? "HTTP \(status)", retryable: body.error.retryable ?? code.retryable)
        }
        return .invalidResponse("HTTP status \(status)")
    }
}
