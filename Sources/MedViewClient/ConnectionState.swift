/// Which transport carries the conversation.
public enum Transport: String, Sendable, Equatable {
    /// `GET /v1/ws`: every command, answers of any number of streams.
    case webSocket
    /// Server-Sent Events: a `POST` per message, a `GET` per resume; the fallback.
    case serverSentEvents
}

/// The client's connection, as an app shows it.
public enum ConnectionState: Sendable, Equatable, CustomStringConvertible {
    /// ``MedViewClient/connect()`` has not been called yet.
    case idle
    /// The first connection is being opened.
    case connecting
    /// Connected: messages go out at once and answers stream in.
    case connected(Transport)
    /// The connection was lost and is being opened again (after a backoff delay).
    case reconnecting
    /// The server cannot be reached at all; messages wait in the queue.
    case offline
    /// The client stopped for good and will not reconnect by itself.
    case stopped(StopReason)

    public var description: String {
        switch self {
        case .idle: "idle"
        case .connecting: "connecting"
        case .connected(.webSocket): "connected (WebSocket)"
        case .connected(.serverSentEvents): "connected (Server-Sent Events fallback)"
        case .reconnecting: "reconnecting"
        case .offline: "offline"
        case .stopped(let reason): "stopped (\(reason.rawValue))"
        }
    }
}

/// Why the client stopped.
public enum StopReason: String, Sendable, Equatable {
    /// The app called ``MedViewClient/close()``.
    case closed
    /// The server logged the idle session off (close 4408): sign the person out; connect again only when they act.
    case idleTimeout = "idle timeout"
    /// The server kept refusing fresh tokens: the person must sign in again.
    case unauthorized
}
