import Foundation

/// A conversation between one user and the companion. It belongs to exactly one user.
public struct Conversation: Sendable, Equatable, Codable {
    public var id: String
    public var userId: String
    /// A short title; derived from the first message.
    public var title: String
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, userId: String, title: String, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.userId = userId
        self.title = title
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// Who wrote a message.
public enum MessageRole: String, Sendable, Equatable, Codable {
    case user
    case assistant
}

/// Where a stored message stands. A user message is always `complete`.
public enum MessageStatus: String, Sendable, Equatable, Codable {
    /// The answer is still streaming (or the server stopped before it could record the end).
    case streaming
    case complete
    /// The client cancelled; `text` holds what was sent before the cancel.
    case cancelled
    /// The model failed or the server shut down; `text` holds the partial answer the client
    /// received (empty when the server stopped without a graceful shutdown).
    case failed
}

/// One stored message.
public struct StoredMessage: Sendable, Equatable, Codable {
    public var id: String
    public var conversationId: String
    public var userId: String
    public var role: MessageRole
    public var text: String
    public var status: MessageStatus
    /// The stream that answered (for the user message) or produced (for the assistant message) it.
    public var streamId: String
    public var createdAt: Date

    public init(id: String, conversationId: String, userId: String, role: MessageRole, text: String, status: MessageStatus, streamId: String, createdAt: Date) {
        self.id = id
        self.conversationId = conversationId
        self.userId = userId
        self.role = role
        self.text = text
        self.status = status
        self.streamId = streamId
        self.createdAt = createdAt
    }
}

/// One event of a stream's replay log as stored: its sequence number and its JSON encoding.
public struct StreamLogEntry: Sendable, Equatable, Codable {
    public var seq: Int
    public var json: String

    public init(seq: Int, json: String) {
        self.seq = seq
        self.json = json
    }
}

/// A question and its answer: the user message, the assistant message and the stream between them.
public struct Turn: Sendable, Equatable {
    public var streamId: String
    public var userId: String
    public var conversationId: String
    /// The client's `chat.send` id: the idempotency key, unique per user.
    public var clientMessageId: String
    public var userMessage: StoredMessage
    public var assistantMessage: StoredMessage
    /// The replay log: the events persisted so far (it grows while the stream runs, through
    /// ``ConversationStore/appendStreamEvents(_:)``, and is complete once the stream ended).
    public var events: [StreamLogEntry]
    /// The server process running the answer, while it streams (``StreamRecovery`` fails the
    /// answers of processes that stopped sending heartbeats); `nil` when unknown.
    public var ownerInstanceId: String?

    public init(streamId: String, userId: String, conversationId: String, clientMessageId: String, userMessage: StoredMessage, assistantMessage: StoredMessage, events: [StreamLogEntry], ownerInstanceId: String? = nil) {
        self.streamId = streamId
        self.userId = userId
        self.conversationId = conversationId
        self.clientMessageId = clientMessageId
        self.userMessage = userMessage
        self.assistantMessage = assistantMessage
        self.events = events
        self.ownerInstanceId = ownerInstanceId
    }
}

/// Events of one running stream to add to its durable replay log (see
/// ``ConversationStore/appendStreamEvents(_:)``).
public struct StreamAppend: Sendable, Equatable {
    public var streamId: String
    public var userId: String
    public var conversationId: String
    /// Consecutive events, in sequence order.
    public var events: [StreamLogEntry]

    public init(streamId: String, userId: String, conversationId: String, events: [StreamLogEntry]) {
        self.streamId = streamId
        self.userId = userId
        self.conversationId = conversationId
        self.events = events
    }
}

/// What a new answer reads of its conversation: the latest messages and the saved safety state.
public struct ConversationContext: Sendable, Equatable {
    /// The latest messages, oldest first (at most the limit asked).
    public var messages: [StoredMessage]
    /// Whether the conversation has older messages than these.
    public var hasOlder: Bool
    /// The safety state saved with ``ConversationStore/saveSafetyState(conversationId:userId:state:)``
    /// (the medication context, JSON), or `nil` if none was saved.
    public var safetyState: String?

    public init(messages: [StoredMessage], hasOlder: Bool, safetyState: String?) {
        self.messages = messages
        self.hasOlder = hasOlder
        self.safetyState = safetyState
    }
}

/// The persisted part of a stream's replay log after a sequence number, and where the answer stands.
public struct StreamEventsPage: Sendable, Equatable {
    public var conversationId: String
    /// The assistant message's status (`streaming` while the answer runs somewhere).
    public var status: MessageStatus
    /// The stored events with a greater sequence number than asked, in order.
    public var events: [StreamLogEntry]

    public init(conversationId: String, status: MessageStatus, events: [StreamLogEntry]) {
        self.conversationId = conversationId
        self.status = status
        self.events = events
    }
}

/// What the store did with a new turn.
public enum BeginTurnResult: Sendable, Equatable {
    /// The user message (and the conversation, if new) were stored.
    case created
    /// The user already has a turn with this client message id; nothing was written.
    case duplicate(Turn)
}

/// How a stream ended, as the store records it on the assistant message.
public struct TurnCompletion: Sendable, Equatable {
    public var streamId: String
    public var userId: String
    public var assistantText: String
    public var status: MessageStatus
    public var events: [StreamLogEntry]

    public init(streamId: String, userId: String, assistantText: String, status: MessageStatus, events: [StreamLogEntry]) {
        self.streamId = streamId
        self.userId = userId
        self.assistantText = assistantText
        self.status = status
        self.events = events
    }
}

/// Identity of the caller, established by a ``TokenVerifier``.
public struct VerifiedIdentity: Sendable, Equatable {
    /// The user id (the token's subject).
    public var userId: String
    /// When the token stops being valid.
    public var expiresAt: Date
    /// Which issuer vouched for it (for audit; never the token).
    public var issuer: String

    public init(userId: String, expiresAt: Date, issuer: String) {
        self.userId = userId
        self.expiresAt = expiresAt
        self.issuer = issuer
    }
}

/// Fresh random identifiers with a readable prefix, such as `s_3F9...`.
public enum Identifier {
    /// A new id: the prefix, an underscore, then 26 base-32 characters (130 random bits).
    public static func make(_ prefix: String) -> String {
        // 26 characters of 5 bits, each from one random byte (one system call for all of them).
        var bytes = SystemRandom.bytes(26)
        for i in 0..<26 { bytes[i] = alphabet[Int(bytes[i] & 31)] }
        return prefix + "_" + String(decoding: bytes, as: UTF8.self)
    }

    private static let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)
}
