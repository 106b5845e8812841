import MedViewCore

extension ModelError {
    /// The kind and retryability an HTTP status means for a model API, when the status alone decides.
    static func classify(status: Int) -> (Kind, Bool)? {
        switch status {
        case 429: (.throttled, true)
        case 408, 409, 500...599: (.unavailable, true)
        case 401, 403: (.failed, false)
        case 400...499: (.invalidRequest, false)
        default: nil
        }
    }

    /// The error for a refused request to an API-key provider: the detail names the provider, the
    /// status, the provider's error `type` and `code` and the request id (all sanitised), and on
    /// 401/403 which variable holds the key; never the provider's message (it may quote the request).
    ///
    /// Kind and retryability follow ``classify(status:)``; a status it does not decide (a 2xx or
    /// 3xx that is not an event stream) is a non-retryable failure.
    static func http(provider: String, status: Int, type rawType: String?, code rawCode: String? = nil, requestId: String?, keyVariable: String) -> ModelError {
        var detail = "\(provider): HTTP \(status)"
        if let type = sanitizedToken(rawType) { detail += " \(type)" }
        if let code = sanitizedToken(rawCode) { detail += " code \(code)" }
        if status == 401 || status == 403 { detail += " (authentication or permission refused; check \(keyVariable))" }
        if let id = sanitizedToken(requestId) { detail += " request \(id)" }
        if let (kind, retryable) = classify(status: status) {
            return ModelError(kind: kind, retryable: retryable, detail: detail)
        }
        return ModelError(kind: .failed, retryable: false, detail: detail + " without an event stream")
    }

    /// Keeps a provider's error type short and free of anything but identifier characters.
    static func sanitizedToken(_ raw: String?) -> String? {
        guard let raw, !raw.isEmpty else { return nil }
        let allowed = raw.unicodeScalars.prefix(64).filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" || $0 == ".") }
        let token = String(String.UnicodeScalarView(allowed))
        return token.isEmpty ? nil : token
    }
}
