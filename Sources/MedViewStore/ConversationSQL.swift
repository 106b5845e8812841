import MedViewCore
import SQLiteNIO

/// The SQL of each conversation operation, run on a connection the caller holds.
///
/// Pure data access: no locking, no logging, no error mapping (``StoreConnection`` does those).
/// Dates are REAL seconds since 1970; message order comes from the `seq` autoincrement column,
/// never from timestamps. Free text (titles, message text) is read `CAST(… AS BLOB)`: SQLiteNIO
/// reads a TEXT value as a C string, which would end it at the first U+0000, while a BLOB is read
/// with its length, so text comes back exactly as it was bound.
enum ConversationSQL {
    /// How a delete went.
    enum DeleteOutcome: Equatable {
        /// No conversation with that id belongs to the user.
        case notFound
        /// Deleted; `walTruncated` is `false` if the write-ahead log could not be checkpointed
        /// and truncated at once (the erased content may stay in it until the next checkpoint).
        case deleted(walTruncated: Bool)
    }

    /// Inserts an empty conversation; fails if its id is taken.
    static func insert(_ conversation: Conversation, on connection: SQLiteConnection) async throws {
        _ = try await connection.query(
            "INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            [
                .text(conversation.id), .text(conversation.userId), .text(conversation.title),
                .float(conversation.createdAt.timeIntervalSince1970), .float(conversation.updatedAt.timeIntervalSince1970),
            ]
        )
    }

    /// The conversation if it exists and belongs to `userId`.
    static func conversation(id: String, userId: String, on connection: SQLiteConnection) async throws -> Conversation? {
        let rows = try await connection.query(
            "SELECT id, user_id, CAST(title AS BLOB) AS title, created_at, updated_at FROM conversations WHERE id = ? AND user_id = ?",
            [.text(id), .text(userId)]
        )
        return try rows.first.map(Conversation.init(row:))
    }

    /// The user's conversations, most recently updated first (latest created first on ties).
    static func conversations(userId: String, limit: Int, on connection: SQLiteConnection) async throws -> [Conversation] {
        let rows = try await connection.query(
            """
            SELECT id, user_id, CAST(title AS BLOB) AS title, created_at, updated_at FROM conversations
            WHERE user_id = ? ORDER BY updated_at DESC, rowid DESC LIMIT ?
            """,
            [.text(userId), .integer(limit)]
        )
        return try rows.map(Conversation.init(row:))
    }

    /// Deletes the user's conversation (its turns, messages and replay logs go by cascade), then
    /// checkpoints and truncates the write-ahead log so the erased content does not remain there.
    static func delete(id: String, userId: String, on connection: SQLiteConnection) async throws -> DeleteOutcome {
        let rows = try await connection.query(
            "DELETE FROM conversations WHERE id = ? AND user_id = ? RETURNING id",
            [.text(id), .text(userId)]
        )
        guard !rows.isEmpty else { return .notFound }
        do {
            let result = try await connection.query("PRAGMA wal_checkpoint(TRUNCATE)", [])
            return .deleted(walTruncated: result.first?.column("busy")?.integer == 0)
        } catch {
            return .deleted(walTruncated: false)
        }
    }

    /// The conversation's messages in the order they were written; empty if it is not the user's.
    static func messages(conversationId: String, userId: String, on connection: SQLiteConnection) async throws -> [StoredMessage] {
        let rows = try await connection.query(
            """
            SELECT id, conversation_id, user_id, role, CAST(text AS BLOB) AS text, status, stream_id, created_at FROM messages
            WHERE conversation_id = ? AND user_id = ? ORDER BY seq
            """,
            [.text(conversationId), .text(userId)]
        )
        return try rows.map(StoredMessage.init(row:))
    }

    /// The latest `limit` messages (oldest first), whether older ones exist, and the safety state,
    /// in one statement: one snapshot (on the store's reader, a write may commit between two
    /// statements) and one thread-pool round trip. `nil` if the conversation is not the user's.
    ///
    /// The limit is written into the SQL, not bound: SQLite plans with a bound `LIMIT`'s value
    /// and marks the compiled statement stale whenever that parameter is bound again or cleared,
    /// so the direct reader compiled this statement afresh on every message. The limit is an
    /// integer of ours (never user input), and each distinct value is one kept statement.
    static func recentContext(conversationId: String, userId: String, limit: Int, on connection: some StatementExecutor) async throws -> ConversationContext? {
        let rows = try await connection.query(
            """
            SELECT CAST(c.safety_state AS BLOB) AS safety_state, m.id AS id, m.conversation_id AS conversation_id,
                   m.user_id AS user_id, m.role AS role, CAST(m.text AS BLOB) AS text, m.status AS status,
                   m.stream_id AS stream_id, m.created_at AS created_at
            FROM conversations c
            LEFT JOIN (
                SELECT * FROM messages WHERE conversation_id = ? AND user_id = ? ORDER BY seq DESC LIMIT \(max(0, limit) + 1)
            ) m ON 1
            WHERE c.id = ? AND c.user_id = ?
            ORDER BY m.seq DESC
            """,
            [.text(conversationId), .text(userId), .text(conversationId), .text(userId)]
        )
        guard let first = rows.first else { return nil }
        let state: String? = (first.column("safety_state")?.isNull ?? true) ? nil : try first.text("safety_state")
        var messages = try rows.filter { !($0.column("id")?.isNull ?? true) }.map(StoredMessage.init(row:))
        let hasOlder = messages.count > limit
        if hasOlder { messages.removeLast() }
        return ConversationContext(messages: messages.reversed(), hasOlder: hasOlder, safetyState: state)
    }

    /// Saves the conversation's safety state (if it is the user's).
    static func saveSafetyState(conversationId: String, userId: String, state: String, on connection: SQLiteConnection) async throws {
        _ = try await connection.query(
            "UPDATE conversations SET safety_state = ? WHERE id = ? AND user_id = ?", [.text(state), .text(conversationId), .text(userId)]
        )
    }
}
