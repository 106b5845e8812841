import Foundation
import MedViewCore
import SQLiteNIO

/// The SQL of each turn operation, run on a connection the caller holds (inside a transaction
/// where it says so).
///
/// Pure data access: no locking, no logging, no error mapping (``StoreConnection`` does those;
/// ``beginMany(_:on:)`` maps the error of a turn it could not read back, as that turn's result).
/// The batch functions take many turns at once with a fixed number of statements per batch, so
/// that the group commit of ``SQLiteStoreWriter`` pays for one statement (new turns) or one
/// transaction (finished turns), not one per turn.
enum TurnSQL {
    /// Rows per multi-row statement (SQLite allows 32,766 bound values; a message row binds 8).
    private static let rowsPerStatement = 500

    /// Most events inserted by one statement (three binds each).
    private static let eventsPerInsert = 200

    /// Most new turns ``beginMany(_:on:)`` writes (one statement, 14 binds each).
    static let turnsPerStatement = 500

    /// Writes new turns (at most ``turnsPerStatement``) in one statement, and gives each the
    /// result a lone `beginTurn` would give.
    ///
    /// The statement inserts one row per turn into the view `new_turns`, whose trigger (migration
    /// 5) checks and writes each turn: the new conversation or the existing one's `updated_at`,
    /// the turn and its two messages. Outside a transaction the statement is its own, so a new
    /// turn costs one job on SQLite's thread: all of the turns are written, or, if the statement
    /// fails, none. The rows it returns are the turns it wrote; each other turn is then read back
    /// by its client message id: found, it is a duplicate; not found, its conversation is not the
    /// user's. A failed read fails that turn only (the others are written and stay so).
    ///
    /// SQLite's documentation does not spell out RETURNING on a view: that it returns one row
    /// per row its trigger completed, and none for a row ended by `RAISE(IGNORE)`, is what the
    /// bundled SQLite does, and `SQLiteBeginTurnTests` fails if an upgrade changes it.
    static func beginMany(_ items: [(turn: Turn, newConversation: Conversation?)], on connection: some StatementExecutor) async throws -> [Result<BeginTurnResult, StoreError>] {
        assert(items.count <= turnsPerStatement, "beginMany writes at most turnsPerStatement turns")
        guard !items.isEmpty else { return [] }
        let rows = try await connection.query(
            """
            INSERT INTO new_turns (stream_id, user_id, conversation_id, client_message_id, owner_instance,
                creates_conversation, title, conversation_created_at, updated_at,
                user_message_id, user_text, user_created_at, assistant_message_id, assistant_created_at)
            VALUES \(placeholders(items.count, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")) RETURNING stream_id
            """,
            items.flatMap { item -> [SQLiteData] in
                let t = item.turn, c = item.newConversation
                let newest = max(t.userMessage.createdAt, t.assistantMessage.createdAt).timeIntervalSince1970
                return [
                    .text(t.streamId), .text(t.userId), .text(t.conversationId), .text(t.clientMessageId),
                    t.ownerInstanceId.map(SQLiteData.text) ?? .null,
                    .integer(c == nil ? 0 : 1), c.map { .text($0.title) } ?? .null,
                    c.map { .float($0.createdAt.timeIntervalSince1970) } ?? .null,
                    .float(max(c?.updatedAt.timeIntervalSince1970 ?? newest, newest)),
                    .text(t.userMessage.id), .text(t.userMessage.text), .float(t.userMessage.createdAt.timeIntervalSince1970),
                    .text(t.assistantMessage.id), .float(t.assistantMessage.createdAt.timeIntervalSince1970),
                ]
            }
        )
        // Decoding cannot fail here: once the statement has run, the turns are written, and a
        // throw would make the writer retry them as if they were not.
        let written = Set(rows.compactMap { $0.column("stream_id")?.string })
        var results: [Result<BeginTurnResult, StoreError>] = []
        for item in items {
            if written.contains(item.turn.streamId) {
                results.append(.success(.created))
                continue
            }
            do {
                if let stored = try await turn(clientMessageId: item.turn.clientMessageId, userId: item.turn.userId, on: connection) {
                    results.append(.success(.duplicate(stored)))
                } else {
                    results.append(.failure(.conversationNotFound))
                }
            } catch {
                results.append(.failure(StoreConnection.storeError(error, operation: "beginTurn")))
            }
        }
        return results
    }

    /// Stores finished turns inside an open transaction: each assistant message's text and status,
    /// and the replay logs (replacing earlier ones). Turns that are not the user's (for example,
    /// their conversation was deleted meanwhile) are skipped.
    static func finishMany(_ completions: [TurnCompletion], on connection: some StatementExecutor) async throws {
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
    static func appendMany(_ appends: [StreamAppend], on connection: some StatementExecutor) async throws {
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
    static func events(streamId: String, userId: String, after seq: Int, on connection: some StatementExecutor) async throws -> StreamEventsPage? {
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
    static func heartbeat(instanceId: String, at date: Date, on connection: some StatementExecutor) async throws {
        _ = try await connection.query(
            """
            INSERT INTO instances (id, heartbeat_at) VALUES (?, ?)
            ON CONFLICT (id) DO UPDATE SET heartbeat_at = MAX(heartbeat_at, excluded.heartbeat_at)
            """,
            [.text(instanceId), .float(date.timeIntervalSince1970)]
        )
    }

    /// Streaming turns whose owner has no heartbeat at or after `date`, oldest first.
    static func orphaned(notAliveSince date: Date, limit: Int, on connection: some StatementExecutor) async throws -> [Turn] {
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
    static func turn(streamId: String, userId: String, on connection: some StatementExecutor) async throws -> Turn? {
        try await load(where: "stream_id = ? AND user_id = ?", [.text(streamId), .text(userId)], on: connection)
    }

    /// The user's turn begun with `clientMessageId`, with its messages and replay log, if any.
    static func turn(clientMessageId: String, userId: String, on connection: some StatementExecutor) async throws -> Turn? {
        try await load(where: "user_id = ? AND client_message_id = ?", [.text(userId), .text(clientMessageId)], on: connection)
    }

    /// Loads the one turn matching `condition` (on the `turns` table) with its messages and events.
    private static func load(where condition: String, _ binds: [SQLiteData], on connection: some StatementExecutor) async throws -> Turn? {
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
