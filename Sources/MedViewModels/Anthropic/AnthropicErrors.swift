import Foundation
import MedViewCore

/// How the Anthropic API's errors map to ``ModelError``.
///
/// | HTTP status / error type | kind | retryable |
/// |---|---|---|
/// | 429 `rate_limit_error` | throttled | yes |
/// | 529 `overloaded_error`, 500 `api_error`, 504 `timeout_error`, other 5xx, 408 | unavailable | yes |
/// | 400 `invalid_request_error`, 404 `not_found_error`, 413 `request_too_large`, other 4xx | invalidRequest | no |
/// | 401 `authentication_error`, 403 `permission_error` | failed (detail says authentication) | no |
///
/// Details carry the status, the error type and the request id, never the provider's message
/// (it may quote the request) and never the key.
enum AnthropicErrors {
    /// The error for a response that carries no stream.
    static func http(_ response: HTTPErrorResponse) -> ModelError {
        struct Body: Decodable {
            struct Failure: Decodable { var type: String? }
            var error: Failure?
        }
        let type = (try? JSONDecoder().decode(Body.self, from: Data(response.body)))?.error?.type
        return ModelError.http(provider: "anthropic", status: response.status, type: type, requestId: response.requestId, keyVariable: "ANTHROPIC_API_KEY")
    }

    /// The error for an `error` event inside the stream.
    static func streamError(type raw: String?) -> ModelError {
        let type = ModelError.sanitizedToken(raw) ?? "unknown"
        let detail = "anthropic: stream error \(type)"
        switch type {
        case "rate_limit_error": return ModelError(kind: .throttled, retryable: true, detail: detail)
        case "overloaded_error", "api_error", "timeout_error": return ModelError(kind: .unavailable, retryable: true, detail: detail)
        case "invalid_request_error", "not_found_error", "request_too_large": return ModelError(kind: .invalidRequest, retryable: false, detail: detail)
        case "authentication_error", "permission_error", "billing_error": return ModelError(kind: .failed, retryable: false, detail: detail)
        default: return ModelError(kind: .failed, retryable: true, detail: detail)
        }
    }
}
