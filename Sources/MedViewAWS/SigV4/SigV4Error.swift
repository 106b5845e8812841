/// Why a request could not be signed.
public enum SigV4Error: Error, Sendable, Hashable, CustomStringConvertible {
    /// The request has no `Host` header (SigV4 always signs it).
    case missingHost
    /// A presigned URL's lifetime must be 1…604,800 seconds (7 days).
    case invalidExpiration(seconds: Int)
    /// The URL has no host, or its path or query is not valid percent-encoding.
    case invalidURL(String)
    /// The service or region is empty or contains `/`, which would corrupt the credential scope.
    case invalidScope(String)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case .missingHost: "SigV4: the request has no Host header"
        case .invalidExpiration(let seconds): "SigV4: presigned URL lifetime \(seconds) s is outside 1…604800"
        case .invalidURL(let url): "SigV4: cannot sign URL '\(url)'"
        case .invalidScope(let part): "SigV4: invalid credential scope part '\(part)'"
        }
    }
}
