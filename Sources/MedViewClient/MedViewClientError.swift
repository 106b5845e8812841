import MedViewProtocol

/// Everything that can go wrong for a client, as a value an app can switch over. Messages never
/// contain message text or tokens.
public enum MedViewClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The server answered with a typed protocol error (`error` event or HTTP error body).
    case server(code: ErrorCode, message: String, retryable: Bool)
    /// The server sent something that is not the protocol (a malformed event, an unexpected status).
    case invalidResponse(String)
    /// The stream cannot be resumed (it is unknown to the server, or was lost in a server crash).
    case streamLost
    /// The client was closed (or stopped) before the answer ended.
    case stopped
    /// The token provider failed.
    case tokenUnavailable(String)
    /// The base URL cannot be used.
    case invalidURL(String)

    /// The server's error code, when there is one.
    public var code: ErrorCode? {
        if case .server(let code, _, _) = self { return code }
        return nil
    }

    public var description: String {
        switch self {
        case .server(let code, let message, _): "\(code.rawValue): \(message)"
        case .invalidResponse(let what): "invalid response from the server: \(what)"
        case .streamLost: "the answer can no longer be resumed"
        case .stopped: "the client stopped"
        case .tokenUnavailable(let why): "no token: \(why)"
        case .invalidURL(let url): "invalid server URL: \(url)"
        }
    }

    init(_ event: ErrorEvent) {
        self = .server(code: event.code, message: event.message, retryable: event.retryable)
    }
}
