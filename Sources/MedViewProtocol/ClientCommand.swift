import Foundation

/// A command a client sends to the server: one JSON object with a `type`.
///
/// Every command carries an `id` chosen by the client. For `chat.send` the `id`
/// is also the idempotency key: sending the same `id` again never asks the
/// model twice and re-attaches to the original stream.
public enum ClientCommand: Sendable, Equatable {
    case chatSend(ChatSend)
    case streamResume(StreamResume)
    case streamCancel(StreamCancel)
    case authRefresh(AuthRefresh)
    case ping(Ping)

    /// The wire names of every command type, in the order PROTOCOL.md lists them.
    public static let wireTypes = ["chat.send", "stream.resume", "stream.cancel", "auth.refresh", "ping"]

    /// The command's client-chosen id.
    public var id: String {
        switch self {
        case .chatSend(let c): c.id
        case .streamResume(let c): c.id
        case .streamCancel(let c): c.id
        case .authRefresh(let c): c.id
        case .ping(let c): c.id
        }
    }

    /// The wire `type` of this command.
    public var wireType: String {
        switch self {
        case .chatSend: "chat.send"
        case .streamResume: "stream.resume"
        case .streamCancel: "stream.cancel"
        case .authRefresh: "auth.refresh"
        case .ping: "ping"
        }
    }
}

/// `chat.send`: ask a question. Omitting `conversationId` starts a new conversation.
public struct ChatSend: Codable, Sendable, Equatable {
    public var type: String = "chat.send"
    /// Client-chosen id; the idempotency key of this message.
    public var id: String
    /// The conversation to continue; `nil` starts a new one.
    public var conversationId: String?
    /// The patient's message.
    public var text: String

    public init(id: String, conversationId: String? = nil, text: String) {
        self.id = id
        self.conversationId = conversationId
        self.text = text
    }
}

/// `stream.resume`: receive every event of `streamId` with a `seq` greater than `after`, then the live tail.
public struct StreamResume: Codable, Sendable, Equatable {
    public var type: String = "stream.resume"
    public var id: String
    public var streamId: String
    /// The last `seq` the client saw; `0` replays from the start.
    public var after: Int

    public init(id: String, streamId: String, after: Int) {
        self.id = id
        self.streamId = streamId
        self.after = after
    }
}

/// `stream.cancel`: stop the model; the stream ends with `stream.end` and finish reason `cancelled`.
public struct StreamCancel: Codable, Sendable, Equatable {
    public var type: String = "stream.cancel"
    public var id: String
    public var streamId: String

    public init(id: String, streamId: String) {
        self.id = id
        self.streamId = streamId
    }
}

/// `auth.refresh`: replace the connection's token before it expires. The new token must name the same user.
public struct AuthRefresh: Codable, Sendable, Equatable {
    public var type: String = "auth.refresh"
    public var id: String
    public var token: String

    public init(id: String, token: String) {
        self.id = id
        self.token = token
    }
}

/// `ping`: an application-level liveness check, answered with `ack`.
public struct Ping: Codable, Sendable, Equatable {
    public var type: String = "ping"
    public var id: String

    public init(id: String) {
        self.id = id
    }
}
