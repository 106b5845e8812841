import MedViewCore

/// Maps Bedrock's error codes to ``ModelError``s. Details carry the status and AWS's error code,
/// never AWS's message (it can quote the request).
public enum BedrockErrors {
    /// The error for an exception named `code` (either case style: `ThrottlingException` in
    /// `x-amzn-ErrorType`, `throttlingException` in `:exception-type`), with the HTTP status if
    /// it came before the stream.
    public static func error(code: String?, status: Int?, inStream: Bool) -> ModelError {
        let name = code.map(normalize) ?? ""
        let place = inStream ? "bedrock stream exception" : "bedrock HTTP \(status ?? 0)"
        let detail = name.isEmpty ? place : "\(place) \(name)"
        switch name.lowercased() {
        case "throttlingexception", "toomanyrequestsexception", "servicequotaexceededexception", "modelnotreadyexception":
            return ModelError(kind: .throttled, retryable: true, detail: detail)
        case "serviceunavailableexception", "internalserverexception", "modeltimeoutexception":
            return ModelError(kind: .unavailable, retryable: true, detail: detail)
        case "modelstreamerrorexception":
            return ModelError(kind: .failed, retryable: true, detail: detail)
        case "validationexception", "resourcenotfoundexception", "serializationexception":
            return ModelError(kind: .invalidRequest, retryable: false, detail: detail)
        case "accessdeniedexception", "unrecognizedclientexception", "invalidsignatureexception",
             "expiredtokenexception", "incompletesignatureexception", "signaturedoesnotmatch", "modelerrorexception":
            return ModelError(kind: .failed, retryable: false, detail: detail)
        default:
            guard let status else { return ModelError(kind: .failed, retryable: false, detail: detail) }
            switch status {
            case 429: return ModelError(kind: .throttled, retryable: true, detail: detail)
            case 408, 500...599: return ModelError(kind: .unavailable, retryable: true, detail: detail)
            case 400, 404, 413, 422: return ModelError(kind: .invalidRequest, retryable: false, detail: detail)
            default: return ModelError(kind: .failed, retryable: false, detail: detail)
            }
        }
    }

    /// `ThrottlingException:http://internal.amazon.com/…` and `com.amazon…#ThrottlingException` → `ThrottlingException`.
    static func normalize(_ raw: String) -> String {
        var name = Substring(raw)
        if let colon = name.firstIndex(of: ":") { name = name[..<colon] }
        if let hash = name.lastIndex(of: "#") { name = name[name.index(after: hash)...] }
        return String(name.filter { $0.isLetter || $0.isNumber })
    }
}
