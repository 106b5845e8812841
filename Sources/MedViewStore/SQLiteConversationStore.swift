import Foundation
import Logging
import MedViewCore
import SQLiteNIO
import Synchronization

/// A ``ConversationStore`` in one SQLite file (WAL mode), the embedded default.
///
/// All work goes through a single connection; an async lock keeps each call's statements
/// together, so two calls never interleave inside one transaction. Dates are stored as REAL
/// seconds since 1970. Message order comes from an autoincrement column, never from timestamps.
///
/// Call ``close()`` before dropping the store: SQLiteNIO asserts (in debug builds) when a
/// connection is released without being closed.
public final class SQLiteConversationStore: ConversationStore {
    /// `nil` once closed. Read only while holding `lock`.
    private let connection: Mutex<SQLiteConnection?>
    private let lock = AsyncLock()
    private let logger: Logger

    /// Per-connection settings applied on open. `secure_delete` overwrites deleted content so an
    /// erased conversation does not linger in free pages.
    private static let pragmas = [
        "PRAGMA journal_mode=WAL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA busy_timeout=5000",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA secure_delete=ON",
    ]

    /// Most events inserted by one statement (three binds each).
    private static let eventsPerInsert = 200

    private init(connection: SQLiteConnection, logger: Logger) {
        self.connection = Mutex(connection)
        self.logger = logger
    }

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// Creates the parent directory if it is missing, configures the connection (WAL journal,
    /// foreign keys, a 5 s busy timeout, `synchronous=NORMAL`) and applies any schema migration
    /// the file does not record yet.
    /// - Throws: ``StoreError/unavailable(_:)`` if the file cannot be opened or migrated.
    /// Writes waiting for the single writer: new turns first (they gate the first chunk), then finished turns.
    private struct WriteQueue {
        var begins: [PendingBegin] = []
        var finishes: [PendingFinish] = []
        var writing = false
    }

    private let writes = Mutex(WriteQueue())

    public static func open(path: String, logger: Logger) async throws -> SQLiteConversationStore {
        try await open(path: path, logger: logger, migrations: SQLiteMigration.all)
    }

    /// Opens the database applying only `migrations` (tests use this to build older files).
    package static func open(path: String, logger: Logger, migrations: [SQLiteMigration]) async throws -> SQLiteConversationStore {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StoreError.unavailable("cannot create the database directory")
        }
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        } catch {
            throw storeError(error, operation: "open")
        }
        do {
            for pragma in pragmas {
                _ = try await connection.query(pragma, [])
            }
            let foreignKeys = try await connection.query("PRAGMA foreign_keys", [])
            guard foreignKeys.first?.column("foreign_keys")?.integer == 1 else {
                throw StoreError.unavailable("foreign keys are not supported")
            }
            let journal = try await connection.query("PRAGMA journal_mode", [])
            if journal.first?.column("journal_mode")?.string?.lowercased() != "wal" {
                logger.warning("SQLite WAL journal mode is not available; using the default journal")
            }
            try await SQLiteMigration.migrate(connection, to: migrations, logger: logger)
        } catch {
            try? await connection.close()
            throw storeError(error, operation: "open")
        }
        logger.debug("conversation store opened")
        return SQLiteConversationStore(connection: connection, logger: logger)
    }

    // MARK: - Conversations

    /// Creates an empty conversation; throws ``StoreError/unavailable(_:)`` if its id is taken.
    public func createConversation(_ conversation: Conversation) async throws {
        try await withConnection("createConversation") { connection in
            try await Self.insert(conversation, on: connection)
        }
        logger.debug("conversation created", metadata: ["conversation_id": "\(conversation.id)"])
    }

    /// The conversation if it exists and belongs to `userId`.
    public func conversation(id: String, userId: String) async throws -> Conversation? {
        try await withConnection("conversation") { connection in
            let rows = try await connection.query(
                "SELECT id, user_id, title, created_at, updated_at FROM conversations WHERE id = ? AND user_id = ?",
                [.text(id), .text(userId)]
            )
            return try rows.first.map(Self.conversation(from:))
        }
    }

    /// The user's conversations, most recently updated first (latest created first on ties).
    public func conversations(userId: String, limit: Int) async throws -> [Conversation] {
        guard limit > 0 else { return [] }
        return try await withConnection("conversations") { connection in
            let rows = try await connection.query(
                """
                SELECT id, user_id, title, created_at, updated_at FROM conversations
                WHERE user_id = ? ORDER BY updated_at DESC, rowid DESC LIMIT ?
                """,
                [.text(userId), .integer(limit)]
            )
            return try rows.map(Self.conversation(from:))
        }
    }

    /// Deletes the conversation with its turns, messages and replay logs (by cascade); `false`
    /// if it does not exist for this user.
    ///
    /// After deleting, the write-ahead log is checkpointed and truncated so that the erased
    /// content does not remain in it either.
    public func deleteConversation(id: String, userId: String) async throws -> Bool {
        let deleted = try await withConnection("deleteConversation") { connection in
            let rows = try await connection.query(
                "DELETE FROM conversations WHERE id = ? AND user_id = ? RETURNING id",
                [.text(id), .text(userId)]
            )
            guard !rows.isEmpty else { return false }
            do {
                let result = try await connection.query("PRAGMA wal_checkpoint(TRUNCATE)", [])
                if result.first?.column("busy")?.integer != 0 {
                    logger.warning("checkpoint after delete did not complete", metadata: ["conversation_id": "\(id)"])
                }
            } catch {
                logger.warning("checkpoint after delete failed", metadata: ["conversation_id": "\(id)"])
            }
            return true
        }
        logger.debug("conversation deleted", metadata: ["conversation_id": "\(id)", "found": "\(deleted)"])
        return deleted
    }

    /// The conversation's messages in the order they were written; empty if it is not the user's.
    public func messages(conversationId: String, userId: String) async throws -> [StoredMessage] {
        try await withConnection("messages") { connection in
            let rows = try await connection.query(
                """
                SELECT id, conversation_id, user_id, role, text, status, stream_id, created_at FROM messages
                WHERE conversation_id = ? AND user_id = ? ORDER BY seq
                """,
                [.text(conversationId), .text(userId)]
            )
            return try rows.map(Self.message(from:))
        }
    }

    // MARK: - Turns

    /// Atomically stores a new turn (and `newConversation`), or returns the user's existing turn
    /// with the same client message id without writing anything.
    ///
    /// The stored messages take their conversation, user and stream ids from `turn`; the user
    /// message is stored `complete`, the assistant message `streaming` with empty text. The
    /// conversation's `updatedAt` moves forward to the newer message time.
    /// - Throws: ``StoreError/conversationNotFound`` if the turn's conversation is not the user's.
    ///
    /// Concurrent calls are committed together (group commit): one `BEGIN IMMEDIATE … COMMIT`
    /// for every turn waiting, so a burst of messages pays for one commit, not one each. Each
    /// turn's typed outcome (duplicate, conversation not found) is decided before it writes
    /// anything; an unexpected failure rolls the batch back and retries each turn on its own.
    public func beginTurn(_ turn: Turn, newConversation: Conversation?) async throws -> BeginTurnResult {
        if let newConversation, newConversation.id != turn.conversationId || newConversation.userId != turn.userId {
            throw StoreError.conversationNotFound
        }
        let result: BeginTurnResult = try await withCheckedThrowingContinuation { continuation in
            let startWriter = writes.withLock { state -> Bool in
                state.begins.append(PendingBegin(turn: turn, newConversation: newConversation, continuation: continuation))
                if state.writing { return false }
                state.writing = true
                return true
            }
            if startWriter {
                Task { await self.runWriter() }
            }
        }
        let outcome = if case .created = result { "created" } else { "duplicate" }
        logger.debug("turn begun", metadata: [
            "stream_id": "\(turn.streamId)", "conversation_id": "\(turn.conversationId)", "outcome": "\(outcome)",
        ])
        return result
    }

    /// A `beginTurn` waiting for the group commit.
    struct PendingBegin: Sendable {
        var turn: Turn
        var newConversation: Conversation?
        var continuation: CheckedContinuation<BeginTurnResult, any Error>
    }

    /// Commits waiting writes in batches until none are left: all waiting new turns first, then
    /// all waiting finished turns.
    private func runWriter() async {
        while true {
            let (begins, finishes) = writes.withLock { state -> ([PendingBegin], [PendingFinish]) in
                if !state.begins.isEmpty {
                    defer { state.begins.removeAll(keepingCapacity: true) }
                    return (state.begins, [])
                }
                if state.finishes.isEmpty {
                    state.writing = false
                    return ([], [])
                }
                // Finished turns are not latency-critical: take a bounded batch so new turns
                // (which gate a first chunk) wait for at most one small transaction.
                let batch = Array(state.finishes.prefix(Self.finishesPerBatch))
                state.finishes.removeFirst(batch.count)
                return ([], batch)
            }
            if !begins.isEmpty {
                await commitBegins(begins)
            } else if !finishes.isEmpty {
                await commitFinishes(finishes)
            } else {
                return
            }
        }
    }

    /// Commits new turns together (see ``beginTurn(_:newConversation:)``) with a fixed number of
    /// statements per batch: one lookup of existing client message ids, one ownership check,
    /// multi-row inserts, and one update per conversation touched.
    private func commitBegins(_ batch: [PendingBegin]) async {
        do {
            let results = try await transaction("beginTurn") { connection in
                try await Self.beginMany(batch.map { ($0.turn, $0.newConversation) }, on: connection)
            }
            for (item, result) in zip(batch, results) {
                item.continuation.resume(with: result.mapError { $0 as any Error })
            }
        } catch {
            // Something unexpected failed and the batch rolled back: give each turn its own
            // transaction so one bad turn cannot fail its neighbours.
            for item in batch {
                do {
                    let result = try await transaction("beginTurn") { connection in
                        try await Self.beginMany([(item.turn, item.newConversation)], on: connection)[0].get()
                    }
                    item.continuation.resume(returning: result)
                } catch {
                    item.continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Finished turns written per transaction.
    static let finishesPerBatch = 32

    /// Rows per multi-row statement (SQLite allows 32,766 bound values; a message row binds 8).
    private static let rowsPerStatement = 500

    /// Writes many new turns inside an open transaction; each gets the result a lone `beginTurn` would give.
    private static func beginMany(_ items: [(turn: Turn, newConversation: Conversation?)], on connection: SQLiteConnection) async throws -> [Result<BeginTurnResult, StoreError>] {
        func placeholders(_ count: Int, _ row: String) -> String {
            Array(repeating: row, count: count).joined(separator: ", ")
        }
        // 1. Client message ids already stored.
        var existing: Set<String> = []
        for slice in items.chunked(rowsPerStatement) {
            let rows = try await connection.query(
                "SELECT user_id, client_message_id FROM turns WHERE (user_id, client_message_id) IN (VALUES \(placeholders(slice.count, "(?, ?)")))",
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
                "INSERT INTO turns (stream_id, user_id, conversation_id, client_message_id) VALUES \(placeholders(slice.count, "(?, ?, ?, ?)"))",
                slice.flatMap { [SQLiteData.text($0.turn.streamId), .text($0.turn.userId), .text($0.turn.conversationId), .text($0.turn.clientMessageId)] }
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
                guard let stored = try await loadTurn(on: connection, where: "user_id = ? AND client_message_id = ?", [.text(item.turn.userId), .text(item.turn.clientMessageId)]) else {
                    throw StoreError.unavailable("beginTurn failed: duplicate vanished")
                }
                results.append(.success(.duplicate(stored)))
            }
        }
        return results
    }

    /// Stores the assistant text and status and the replay log (replacing any earlier one), in
    /// one transaction. Does nothing if the stream is not the user's (for example, its
    /// conversation was deleted while it streamed).
    public func finishTurn(_ completion: TurnCompletion) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let startWriter = writes.withLock { state -> Bool in
                state.finishes.append(PendingFinish(completion: completion, continuation: continuation))
                if state.writing { return false }
                state.writing = true
                return true
            }
            if startWriter {
                Task { await self.runWriter() }
            }
        }
        logger.debug("turn finished", metadata: [
            "stream_id": "\(completion.streamId)", "status": "\(completion.status.rawValue)",
            "events": "\(completion.events.count)",
        ])
    }

    /// The turn produced by `streamId`, with its replay log, if it is the user's.
    public func turn(streamId: String, userId: String) async throws -> Turn? {
        try await withConnection("turn") { connection in
            try await Self.loadTurn(on: connection, where: "stream_id = ? AND user_id = ?", [.text(streamId), .text(userId)])
        }
    }

    /// The user's turn begun with `clientMessageId`, if any.
    public func turn(clientMessageId: String, userId: String) async throws -> Turn? {
        try await withConnection("turnByClientMessageId") { connection in
            try await Self.loadTurn(on: connection, where: "user_id = ? AND client_message_id = ?", [.text(userId), .text(clientMessageId)])
        }
    }

    /// Marks every assistant message still `streaming` as `failed`; returns how many.
    public func failInterruptedTurns() async throws -> Int {
        let count = try await withConnection("failInterruptedTurns") { connection in
            try await connection.query(
                "UPDATE messages SET status = 'failed' WHERE status = 'streaming' AND role = 'assistant' RETURNING seq",
                []
            ).count
        }
        logger.debug("interrupted turns failed", metadata: ["count": "\(count)"])
        return count
    }

    // MARK: - Lifecycle

    /// Runs `SELECT 1`; throws ``StoreError/unavailable(_:)`` if that fails or the store is closed.
    public func checkHealth() async throws {
        try await withConnection("checkHealth") { connection in
            _ = try await connection.query("SELECT 1", [])
        }
    }

    /// Closes the connection after any running call finishes; later calls throw
    /// ``StoreError/unavailable(_:)``. Closing twice is harmless.
    public func close() async throws {
        try await lock.withLock {
            let open = connection.withLock { connection -> SQLiteConnection? in
                defer { connection = nil }
                return connection
            }
            guard let open else { return }
            do {
                try await open.close()
            } catch {
                throw Self.storeError(error, operation: "close")
            }
            logger.debug("conversation store closed")
        }
    }

    // MARK: - Diagnostics

    /// Runs one raw statement and returns each row as column name to text (NULL columns are left
    /// out). For tests and diagnostics only.
    package func rawQuery(_ sql: String, _ binds: [String] = []) async throws -> [[String: String]] {
        try await withConnection("rawQuery") { connection in
            try await connection.query(sql, binds.map { .text($0) }).map { row in
                var values: [String: String] = [:]
                for column in row.columns {
                    if let text = column.data.string { values[column.name] = text }
                }
                return values
            }
        }
    }

    /// A `finishTurn` waiting for the group commit.
    struct PendingFinish: Sendable {
        var completion: TurnCompletion
        var continuation: CheckedContinuation<Void, any Error>
    }

    /// Stores finished turns inside an open transaction: each assistant message's text and status,
    /// and the replay logs (replacing earlier ones). Turns that are not the user's (for example,
    /// their conversation was deleted meanwhile) are skipped.
    private static func finishMany(_ completions: [TurnCompletion], on connection: SQLiteConnection) async throws {
        var found: [TurnCompletion] = []
        for c in completions {
            let updated = try await connection.query(
                """
                UPDATE messages SET text = ?, status = ?
                WHERE stream_id = ? AND user_id = ? AND role = 'assistant' RETURNING seq
                """,
                [.text(c.assistantText), .text(c.status.rawValue), .text(c.streamId), .text(c.userId)]
            )
            if !updated.isEmpty { found.append(c) }
        }
        guard !found.isEmpty else { return }
        let ids = found.map { SQLiteData.text($0.streamId) }
        _ = try await connection.query(
            "DELETE FROM stream_events WHERE stream_id IN (\(Array(repeating: "?", count: ids.count).joined(separator: ", ")))", ids
        )
        let rows = found.flatMap { c in c.events.map { (c.streamId, $0) } }
        var start = rows.startIndex
        while start < rows.endIndex {
            let end = min(start + Self.eventsPerInsert, rows.endIndex)
            let slice = rows[start..<end]
            let placeholders = Array(repeating: "(?, ?, ?)", count: slice.count).joined(separator: ", ")
            let binds = slice.flatMap { row -> [SQLiteData] in [.text(row.0), .integer(row.1.seq), .text(row.1.json)] }
            _ = try await connection.query("INSERT INTO stream_events (stream_id, seq, json) VALUES \(placeholders)", binds)
            start = end
        }
    }

    /// Commits finished turns together: one UPDATE per turn, one DELETE and multi-row INSERTs
    /// for all their replay logs.
    private func commitFinishes(_ batch: [PendingFinish]) async {
        do {
            try await transaction("finishTurn") { connection in
                try await Self.finishMany(batch.map(\.completion), on: connection)
            }
            for item in batch { item.continuation.resume() }
        } catch {
            for item in batch {
                do {
                    try await transaction("finishTurn") { connection in
                        try await Self.finishMany([item.completion], on: connection)
                    }
                    item.continuation.resume()
                } catch {
                    item.continuation.resume(throwing: error)
                }
            }
        }
    }

    // MARK: - Helpers

    /// Runs `body` with the connection while holding the lock; maps failures to ``StoreError``.
    private func withConnection<T>(_ operation: String, _ body: (SQLiteConnection) async throws -> T) async throws -> T {
        do {
            return try await lock.withLock {
                guard let connection = self.connection.withLock({ $0 }) else {
                    throw StoreError.unavailable("store is closed")
                }
                return try await body(connection)
            }
        } catch {
            throw Self.storeError(error, operation: operation)
        }
    }

    /// Runs `body` inside `BEGIN IMMEDIATE ... COMMIT`, rolling back if anything throws.
    private func transaction<T>(_ operation: String, _ body: (SQLiteConnection) async throws -> T) async throws -> T {
        try await withConnection(operation) { connection in
            _ = try await connection.query("BEGIN IMMEDIATE", [])
            do {
                let result = try await body(connection)
                _ = try await connection.query("COMMIT", [])
                return result
            } catch {
                do {
                    _ = try await connection.query("ROLLBACK", [])
                } catch {
                    logger.error("rollback failed", metadata: ["operation": "\(operation)"])
                }
                throw error
            }
        }
    }

    /// The error a caller sees: typed store errors as they are, anything else as `unavailable`
    /// naming the operation and SQLite's result code (never its message, which may quote data).
    private static func storeError(_ error: any Error, operation: String) -> StoreError {
        if let error = error as? StoreError { return error }
        if let error = error as? SQLiteError { return .unavailable("\(operation) failed: \(error.reason)") }
        return .unavailable("\(operation) failed")
    }

    private static func insert(_ conversation: Conversation, on connection: SQLiteConnection) async throws {
        _ = try await connection.query(
            "INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            [
                .text(conversation.id), .text(conversation.userId), .text(conversation.title),
                .float(conversation.createdAt.timeIntervalSince1970), .float(conversation.updatedAt.timeIntervalSince1970),
            ]
        )
    }

    /// Loads the one turn matching `condition` (on the `turns` table) with its messages and events.
    private static func loadTurn(on connection: SQLiteConnection, where condition: String, _ binds: [SQLiteData]) async throws -> Turn? {
        let turns = try await connection.query(
            "SELECT stream_id, user_id, conversation_id, client_message_id FROM turns WHERE \(condition)", binds
        )
        guard let row = turns.first else { return nil }
        let streamId = try row.text("stream_id")
        let messages = try await connection.query(
            """
            SELECT id, conversation_id, user_id, role, text, status, stream_id, created_at FROM messages
            WHERE stream_id = ? ORDER BY seq
            """,
            [.text(streamId)]
        ).map(message(from:))
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
            events: events
        )
    }

    private static func conversation(from row: SQLiteRow) throws(StoreError) -> Conversation {
        Conversation(
            id: try row.text("id"),
            userId: try row.text("user_id"),
            title: try row.text("title"),
            createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at")
        )
    }

    private static func message(from row: SQLiteRow) throws(StoreError) -> StoredMessage {
        StoredMessage(
            id: try row.text("id"),
            conversationId: try row.text("conversation_id"),
            userId: try row.text("user_id"),
            role: try row.value("role", as: MessageRole.self),
            text: try row.text("text"),
            status: try row.value("status", as: MessageStatus.self),
            streamId: try row.text("stream_id"),
            createdAt: try row.date("created_at")
        )
    }
}

extension Array {
    /// The array in consecutive slices of at most `size` elements.
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
