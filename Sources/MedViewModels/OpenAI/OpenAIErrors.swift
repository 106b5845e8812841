import Foundation
import MedViewCore

/// How OpenAI-compatible servers' errors map to ``ModelError``.
///
/// | HTTP status / error | kind | retryable |
/// |---|---|---|
/// | 429 (rate limit) | throttled | yes |
/// | 429 with code `insufficient_quota` | failed | no |
/// | 5xx, 408 | unavailable | yes |
/// | 401, 403 | failed (detail says authentication) | no |
/// | 400, 404, 413, 422, other 4xx | invalidRequest | no |
/// | in the stream: type/code naming a rate limit | throttled | yes |
/// | in the stream: invalid request / bad request / 4xx code | invalidRequest | no |
/// | in the stream: anything else (server error, overload) | unavailable | yes |
///
/// Error bodies are `{"error": {"message", "type", "code"}}` (OpenAI, Ollama, llama.cpp) or vLLM's
/// top-level `{"object": "error", "type", "code"}`. Details carry status, type and code, never the
/// server's message (it may quote the request) and never the key.
enum OpenAIErrors {
    /// The error for a response that carries no stream.
    static func http(_ response: HTTPErrorResponse) -> ModelError {
        struct Body: Decodable {
            var error: OpenAIStreamDecoder.Failure?
            var type: String?
            var code: LooseString?
        }
        let parsed = try? JSONDecoder().decode(Body.self, from: Data(response.body))
        let code = parsed?.error?.code?.value ?? parsed?.code?.value
        var error = ModelError.http(provider: "openai", status: response.status, type: parsed?.error?.type ?? parsed?.type, code: code, requestId: response.requestId, keyVariable: "OPENAI_API_KEY")
        if response.status == 429 && ModelError.sanitizedToken(code) == "insufficient_quota" {
            error.kind = .failed
            error.retryable = false
        }
        return error
    }

    /// The error for an error object inside the stream.
    static func streamError(type rawType: String?, code rawCode: String?) -> ModelError {
        let type = ModelError.sanitizedToken(rawType)
        let code = ModelError.sanitizedToken(rawCode)
        var detail = "openai: stream error"
        if let type { detail += " \(type)" }
        if let code { detail += " code \(code)" }
        let words = [type, code].compactMap { $0?.lowercased() }
        if words.contains(where: { $0.contains("rate_limit") || $0.contains("ratelimit") || $0 == "429" }) {
            return ModelError(kind: .throttled, retryable: true, detail: detail)
        }
        if words.contains(where: { $0.contains("invalid_request") || $0.contains("badrequest") || $0.contains("bad_request") || $0 == "400" || $0 == "404" || $0 == "422" }) {
            return ModelError(kind: .invalidRequest, retryable: false, detail: detail)
        }
        return ModelError(kind: .unavailable, retryable: true, detail: detail)
    }
}
