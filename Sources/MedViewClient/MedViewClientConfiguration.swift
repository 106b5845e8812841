import Foundation

/// How a ``MedViewClient`` connects and recovers. The defaults are the web page's.
public struct MedViewClientConfiguration: Sendable {
    /// The server, such as `https://companion.example.com` or `http://127.0.0.1:8080`.
    public var baseURL: String
    /// Reconnection delays: exponential with full jitter, from 0.5 s up to 15 s by default.
    public var backoff = Backoff()
    /// Fall back to Server-Sent Events after this many WebSocket attempts in a row that never
    /// opened while plain HTTP works...
    public var webSocketFailuresBeforeFallback = 2
    /// ...or after this many drops of an open socket within ``dropWindow``.
    public var dropsBeforeFallback = 3
    public var dropWindow: Duration = .seconds(120)
    /// In fallback, try the WebSocket again after about this long (doubling up to 10 minutes).
    public var webSocketRetryInterval: Duration = .seconds(60)
    /// A command not acknowledged within this time means the socket is dead.
    public var ackTimeout: Duration = .seconds(10)
    /// An application `ping` on an open socket this often proves it still works.
    public var heartbeatInterval: Duration = .seconds(25)
    /// Renew the token this long before it expires (or a quarter of its lifetime, if that is shorter).
    public var refreshLeadTime: Duration = .seconds(60)
    /// An SSE response with no byte (not even a keep-alive comment) for this long is given up and
    /// resumed (the read timeout of the client's own HTTP client; an injected one keeps its own).
    public var eventStreamReadTimeout: Duration = .seconds(45)
    /// Where the queue of unsent messages is kept; `nil` keeps it in memory only.
    public var outboxFile: URL?
    /// Largest WebSocket message accepted from the server.
    public var maxFrameSize = 1 << 20

    public init(baseURL: String) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
    }

    /// `ws(s)://host/v1/ws` for the base URL, or `nil` if the base URL is not http(s).
    var webSocketURL: String? {
        if baseURL.hasPrefix("https://") { return "wss://" + baseURL.dropFirst(8) + "/v1/ws" }
        if baseURL.hasPrefix("http://") { return "ws://" + baseURL.dropFirst(7) + "/v1/ws" }
        return nil
    }
}

/// Counters an app can show in a debug screen, and tests check.
public struct ClientStatistics: Sendable, Equatable {
    /// WebSocket connections attempted, and those that became live (an acknowledged `ping`).
    public var webSocketAttempts = 0
    public var webSocketConnections = 0
    /// Times the client fell back to Server-Sent Events.
    public var fallbacks = 0
    /// `chat.send` commands and SSE `POST`s sent (a message re-sent after a drop counts again).
    public var messagesSent = 0
    /// Resumes asked for (WebSocket `stream.resume` or SSE `GET /v1/streams/…`).
    public var resumes = 0
    /// Stream events dropped because they had been delivered already.
    public var duplicatesDropped = 0
    /// Tokens renewed on an open socket (`auth.refresh` acknowledged).
    public var tokenRefreshes = 0

    public init() {}
}
