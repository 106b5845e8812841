import Foundation
import MedViewCore
import SQLiteNIO

/// The SQL of each turn operation, run on a connection the caller holds (inside a transaction
/// where it says so).
///
/// Pure data access: no locking, no logging, no error mapping (``StoreConnection`` does those).
/// The batch functions take many turns at once with a fixed number of statements per batch, so
/// that the group commit of ``SQLiteStoreWriter`` pays for one transaction, not one per turn.
enum TurnSQL {
    /// Rows per multi-row statement (SQLite allows 32,766 bound values; a message row binds 8).
    private static let rowsPerStatement = 500

    /// Most events inserted by one statement (three binds each).
    private static let eventsPerInsert = 200

    /// Writes many new turns inside an open transaction; each gets the result a lone `beginTurn`
    /// would give. A fixed number of statements per batch: one lookup of existing client message
    /// ids, one ownership check, multi-row inserts, and one update per conversation touched. Each
    /// turn's typed outcome (duplicate, conversation not found) is decided before anything is written.
    static func beginMany(_ items: [(turn: Turn, newConversation: Conversation?)], on connection: SQLiteConnection) async throws -> [Result<BeginTurnResult, StoreError>] {
        // 1. Client message ids already stored.
        var existing: Set<String> = []
        for slice in items.chunked(rowsPerStatement) {
            let rows = try await connection.query(
                "SELECT user_id, CAST(client_message_id AS BLOB) AS client_message_id FROM turns WHERE (user_id, client_message_id) IN (VALUES \(placeholders(slice.count, "(?, ?)")))",
                slice.flatMap { [SQLiteData.text($0.turn.userId), .text($0.turn.clientMessageId)] }
            )
            for row in rows { existing.insert(try row.text("user_id") + "\u{0}" + row.text("client_message_id")) }
        }
        // 2. Owners of the existing conversations named.
        let named = Array(Set(items.filter { $0.newConversation == nil }.map(\.turn.conversationId)))
        var owner: [String: String] = [:]
        for slice in named.chunked(rowsPerStatement) {
            let rows = try await connection.query(
                "SELECT id, user_id FROM conversations WHERE id IN (\(placeholders(slice.count, "?")))", slice.map { .text($0) }
            )
            for row in rows { owner[try row.text("id")] = try row.text("user_id") }
        }
        // 3. Decide each item; the first of several with one client message id is the one created.
        enum Decision { case create, duplicateStored, duplicateOf(Int), notFound }
        var decisions: [Decision] = []
        var firstIndex: [String: Int] = [:]
        for (index, item) in items.enumerated() {
            let key = item.turn.userId + "\u{0}" + item.turn.clientMessageId
            if existing.contains(key) {
                decisions.append(.duplicateStored)
            } else if let first = firstIndex[key] {
                decisions.append(.duplicateOf(first))
            } else if item.newConversation == nil, owner[item.turn.conversationId] != item.turn.userId {
                decisions.append(.notFound)
            } else {
                firstIndex[key] = index
                decisions.append(.create)
            }
        }
        let created = zip(items, decisions).compactMap { item, decision -> (turn: Turn, newConversation: Conversation?)? in
            if case .create = decision { return item }
            return nil
        }
        // 4. Each conversation touched moves forward to its newest message.
        var newest: [String: Double] = [:]
        for item in created {
            let t = max(item.turn.userMessage.createdAt, item.turn.assistantMessage.createdAt).timeIntervalSince1970
            newest[item.turn.conversationId] = max(newest[item.turn.conversationId] ?? t, t)
        }
        // 5. Multi-row inserts (new conversations carry their newest time already).
        let conversations = created.compactMap(\.newConversation)
        for slice in conversations.chunked(rowsPerStatement) {
            _ = try await connection.query(
                "INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES \(placeholders(slice.count, "(?, ?, ?, ?, ?)"))",
                slice.flatMap { c -> [SQLiteData] in
                    [.text(c.id), .text(c.userId), .text(c.title), .float(c.createdAt.timeIntervalSince1970),
                     .float(max(c.updatedAt.timeIntervalSince1970, newest[c.id] ?? 0))]
                }
            )
        }
        for slice in created.chunked(rowsPerStatement) {
            _ = try await connection.query(
                "INSERT INTO turns (stream_id, user_id, conversation_id, client_message_id, owner_instance) VALUES \(placeholders(slice.count, "(?, ?, ?, ?, ?)"))",
                slice.flatMap { [SQLiteData.text($0.turn.streamId), .text($0.turn.userId), .text($0.turn.conversationId), .text($0.turn.clientMessageId), $0.turn.ownerInstanceId.map(SQLiteData.text) ?? .null] }
            )
            // The user message of each turn comes before its assistant message (lower seq).
            _ = try await connection.query(
                "INSERT INTO messages (id, conversation_id, stream_id, user_id, role, text, status, created_at) VALUES \(placeholders(slice.count * 2, "(?, ?, ?, ?, ?, ?, ?, ?)"))",
                slice.flatMap { item -> [SQLiteData] in
                    let t = item.turn
                    let common: [SQLiteData] = [.text(t.conversationId), .text(t.streamId), .text(t.userId)]
                    return [.text(t.userMessage.id)] + common + [
                        .text(MessageRole.user.rawValue), .text(t.userMessage.text),
                        .text(MessageStatus.complete.rawValue), .float(t.userMessage.createdAt.timeIntervalSince1970),
                    ] + [.text(t.assistantMessage.id)] + common + [
                        .text(MessageRole.assistant.rawValue), .text(""),
                        .text(MessageStatus.streaming.rawValue), .float(t.assistantMessage.createdAt.timeIntervalSince1970),
                    ]
                }
            )
        }
        let newIds = Set(conversations.map(\.id))
        for (id, time) in newest where !newIds.contains(id) {
            _ = try await connection.query("UPDATE conversations SET updated_at = MAX(updated_at, ?) WHERE id = ?", [.float(time), .text(id)])
        }
        // 6. Results; duplicates are read back as stored.
        var results: [Result<BeginTurnResult, StoreError>] = []
        for (item, decision) in zip(items, decisions) {
            switch decision {
            case .create: results.append(.success(.created))
            case .notFound: results.append(.failure(.conversationNotFound))
            case .duplicateStored, .duplicateOf:
                guard let stored = try await turn(clientMessageId: item.turn.clientMessageId, userId: item.turn.userId, on: connection) else {
                    throw StoreError.unavailable("beginTurn failed: duplicate vanished")
                }
                results.append(.success(.duplicate(stored)))
            }
        }
        return results
    }

    /// Stores finished turns inside an open transaction: each assistant message's text and status,
    /// and the replay logs (replacing earlier ones). Turns that are not the user's (for example,
    /// their conversation was deleted meanwhile) are skipped.
    static func finishMany(_ completions: [TurnCompletion], on connection: SQLiteConnection) async throws {
        var found: [TurnCompletion] = []
        for c in completions {
            let updated = try await connection.query(
                """
                UPDATE messages SET text = ?, status = ?
                WHERE stream_id = ? AND user_id = ? AND role = 'assistant' AND status = 'streaming' RETURNING seq
                """,
                [.text(c.assistantText), .text(c.status.rawValue), .text(c.streamId), .text(c.userId)]
            )
            if !updated.isEmpty { found.append(c) }
        }
        guard !found.isEmpty else { return }
        let ids = found.map { SQLiteData.text($0.streamId) }
        _ = try await connection.query(
            "DELETE FROM stream_events WHERE stream_id IN (\(placeholders(ids.count, "?")))", ids
        )
        let rows = found.flatMap { c in c.events.map { (streamId: c.streamId, event: $0) } }
        for slice in rows.chunked(eventsPerInsert) {
            _ = try await connection.query(
                "INSERT INTO stream_events (stream_id, seq, json) VALUES \(placeholders(slice.count, "(?, ?, ?)"))",
                slice.flatMap { row -> [SQLiteData] in [.text(row.streamId), .integer(row.event.seq), .text(row.event.json)] }
            )
        }
    }

    /// Appends events to the logs of the user's streams that are still streaming (inside an open
    /// transaction), skipping events already stored.
    static func appendMany(_ appends: [StreamAppend], on connection: SQLiteConnection) async throws {
        var running: Set<String> = []
        for slice in appends.chunked(rowsPerStatement) {
            let rows = try await connection.query(
                """
                SELECT stream_id FROM messages WHERE role = 'assistant' AND status = 'streaming'
                AND (stream_id, user_id) IN (VALUES \(placeholders(slice.count, "(?, ?)")))
                """,
                slice.flatMap { [SQLiteData.text($0.streamId), .text($0.userId)] }
            )
            for row in rows { running.insert(try row.text("stream_id")) }
        }
        let rows = appends.filter { running.contains($0.streamId) }.flatMap { a in a.events.map { (streamId: a.streamId, event: $0) } }
        for slice in rows.chunked(eventsPerInsert) {
            _ = try await connection.query(
                "INSERT OR IGNORE INTO stream_events (stream_id, seq, json) VALUES \(placeholders(slice.count, "(?, ?, ?)"))",
                slice.flatMap { row -> [SQLiteData] in [.text(row.streamId), .integer(row.event.seq), .text(row.event.json)] }
            )
        }
    }

    /// The user's stream's events after `seq` and its status.
    static func events(streamId: String, userId: String, after seq: Int, on connection: SQLiteConnection) async throws -> StreamEventsPage? {
        let head = try await connection.query(
            "SELECT conversation_id, status FROM messages WHERE stream_id = ? AND user_id = ? AND role = 'assistant'",
            [.text(streamId), .text(userId)]
        )
        guard let row = head.first else { return nil }
        let events = try await connection.query(
            "SELECT seq, json FROM stream_events WHERE stream_id = ? AND seq > ? ORDER BY seq", [.text(streamId), .integer(seq)]
        ).map { row throws(StoreError) in StreamLogEntry(seq: try row.int("seq"), json: try row.text("json")) }
        return StreamEventsPage(conversationId: try row.text("conversation_id"), status: try row.value("status", as: MessageStatus.self), events: events)
    }

    /// Records `instanceId`'s heartbeat (never moving it back).
    static func heartbeat(instanceId: String, at date: Date, on connection: SQLiteConnection) async throws {
        _ = try await connection.query(
            """
            INSERT INTO instances (id, heartbeat_at) VALUES (?, ?)
            ON CONFLICT (id) DO UPDATE SET heartbeat_at = MAX(heartbeat_at, excluded.heartbeat_at)
            """,
            [.text(instanceId), .float(date.timeIntervalSince1970)]
        )
    }

    /// Streaming turns whose owner has no heartbeat at or after `date`, oldest first.
    static func orphaned(notAliveSince date: Date, limit: Int, on connection: SQLiteConnection) async throws -> [Turn] {
        let rows = try await connection.query(
            """
            SELECT t.stream_id, t.user_id FROM messages m
            JOIN turns t ON t.stream_id = m.stream_id
            LEFT JOIN instances i ON i.id = t.owner_instance
            WHERE m.status = 'streaming' AND m.role = 'assistant' AND (i.heartbeat_at IS NULL OR i.heartbeat_at < ?)
            ORDER BY m.seq LIMIT ?
            """,
            [.float(date.timeIntervalSince1970), .integer(limit)]
        )
        var turns: [Turn] = []
        for row in rows {
            if let turn = try await turn(streamId: try row.text("stream_id"), userId: try row.text("user_id"), on: connection) {
                turns.append(turn)
            }
        }
        return turns
    }

    /// The turn produced by `streamId`, with its messages and replay log, if it is the user's.
    static func turn(streamId: String, userId: String, on connection: SQLiteConnection) async throws -> Turn? {
        try await load(where: "stream_id = ? AND user_id = ?", [.text(streamId), .text(userId)], on: connection)
    }

    /// The user's turn begun with `clientMessageId`, with its messages and replay log, if any.
    static func turn(clientMessageId: String, userId: String, on connection: SQLiteConnection) async throws -> Turn? {
        try await load(where: "user_id = ? AND client_message_id = ?", [.text(userId), .text(clientMessageId)], on: connection)
    }

    /// Loads the one turn matching `condition` (on the `turns` table) with its messages and events.
    private static func load(where condition: String, _ binds: [SQLiteData], on connection: SQLiteConnection) async throws -> Turn? {
        let turns = try await connection.query(
            "SELECT stream_id, user_id, conversation_id, CAST(client_message_id AS BLOB) AS client_message_id, owner_instance FROM turns WHERE \(condition)", binds
        )
        guard let row = turns.first else { return nil }
        let streamId = try row.text("stream_id")
        let messages = try await connection.query(
            """
            SELECT id, conversation_id, user_id, role, CAST(text AS BLOB) AS text, status, stream_id, created_at FROM messages
            WHERE stream_id = ? ORDER BY seq
            """,
            [.text(streamId)]
        ).map(StoredMessage.init(row:))
        guard let user = messages.first(where: { $0.role == .user }),
              let assistant = messages.first(where: { $0.role == .assistant })
        else {
            throw StoreError.unavailable("turn is missing a message")
        }
        let events = try await connection.query(
            "SELECT seq, json FROM stream_events WHERE stream_id = ? ORDER BY seq", [.text(streamId)]
        ).map { row throws(StoreError) in
            StreamLogEntry(seq: try row.int("seq"), json: try row.text("json"))
        }
        return Turn(
            streamId: streamId,
            userId: try row.text("user_id"),
            conversationId: try row.text("conversation_id"),
            clientMessageId: try row.text("client_message_id"),
            userMessage: user,
            assistantMessage: assistant,
            events: events,
            ownerInstanceId: row.column("owner_instance")?.string
        )
    }

    /// `count` copies of `row` separated by commas, for a multi-row statement.
    private static func placeholders(_ count: Int, _ row: String) -> String {
        Array(repeating: row, count: count).joined(separator: ", ")
    }
}

private extension Array {
    /// The array in consecutive slices of at most `size` elements.
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
