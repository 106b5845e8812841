import Foundation

/// A conversation as `GET /v1/conversations` lists it.
public struct ConversationSummary: Sendable, Equatable, Decodable {
    public var id: String
    public var title: String
    public var createdAt: Date
    public var updatedAt: Date
}

/// A stored message, as `GET /v1/conversations/{id}/messages` returns it.
public struct StoredMessage: Sendable, Equatable, Decodable {
    /// `user` or `assistant`.
    public var role: String
    public var id: String
    public var text: String
    /// `streaming`, `complete`, `cancelled` or `failed`.
    public var status: String
    public var streamId: String
    public var createdAt: Date
}

/// Where a message goes: an existing conversation, or a new one that the app names locally so
/// that several messages written before the first is acknowledged (offline, say) all land in the
/// same new conversation.
public enum ConversationTarget: Sendable, Hashable, Codable {
    /// A conversation the server knows.
    case existing(String)
    /// A new conversation, created by the first message sent with this local key.
    case new(key: String)

    /// A new conversation with a fresh local key.
    public static func newConversation() -> ConversationTarget {
        .new(key: UUID().uuidString)
    }
}
