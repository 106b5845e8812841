import Foundation
import Logging
import MedViewCore

/// A ``ConversationStore`` in one SQLite file (WAL mode), the embedded default.
///
/// A thin adapter: reads run on the store's single connection (``StoreConnection``), new and
/// finished turns go through the group-commit ``writer``, and the SQL of each operation lives in
/// ``ConversationSQL`` and ``TurnSQL``.
///
/// Lifecycle: ``open(path:logger:)`` returns a store ready for use. In the application, add
/// ``writer`` to the `ServiceGroup` ahead of the services that write: it then commits in the
/// background and, on graceful shutdown, flushes every acknowledged write and closes the
/// database, last. Without a `ServiceGroup` (tests, tools), writes are committed by the calling
/// task and ``close()`` flushes and closes. Close the store one way or the other before dropping
/// it: SQLiteNIO asserts (in debug builds) when a connection is released without being closed.
public final class SQLiteConversationStore: ConversationStore {
    /// Commits new and finished turns; the `Service` that flushes and closes the store on
    /// graceful shutdown.
    public let writer: SQLiteStoreWriter
    let connection: StoreConnection
    private let logger: Logger

    private init(connection: StoreConnection, logger: Logger) {
        self.connection = connection
        self.writer = SQLiteStoreWriter(connection: connection, logger: logger)
        self.logger = logger
    }

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// Creates the parent directory if it is missing, configures the connection (WAL journal,
    /// foreign keys, a 5 s busy timeout, `synchronous=NORMAL`, `secure_delete`) and applies any
    /// schema migration the file does not record yet.
    /// - Throws: ``StoreError/unavailable(_:)`` if the file cannot be opened or migrated.
    public static func open(path: String, logger: Logger) async throws -> SQLiteConversationStore {
        try await open(path: path, logger: logger, migrations: SQLiteMigration.all)
    }

    /// Opens the database applying only `migrations` (tests use this to build older files).
    package static func open(path: String, logger: Logger, migrations: [SQLiteMigration]) async throws -> SQLiteConversationStore {
        let connection = try await StoreConnection.open(path: path, logger: logger, migrations: migrations)
        logger.debug("store.opened")
        return SQLiteConversationStore(connection: connection, logger: logger)
    }

    // MARK: - Conversations

    /// Creates an empty conversation; throws ``StoreError/unavailable(_:)`` if its id is taken.
    public func createConversation(_ conversation: Conversation) async throws {
        try await connection.withConnection("createConversation") { connection in
            try await ConversationSQL.insert(conversation, on: connection)
        }
        logger.debug("store.conversation.created", metadata: ["conversation.id": "\(conversation.id)"])
    }

    /// The conversation if it exists and belongs to `userId`.
    public func conversation(id: String, userId: String) async throws -> Conversation? {
        try await connection.withConnection("conversation") { connection in
            try await ConversationSQL.conversation(id: id, userId: userId, on: connection)
        }
    }

    /// The user's conversations, most recently updated first (latest created first on ties).
    public func conversations(userId: String, limit: Int) async throws -> [Conversation] {
        guard limit > 0 else { return [] }
        return try await connection.withConnection("conversations") { connection in
            try await ConversationSQL.conversations(userId: userId, limit: limit, on: connection)
        }
    }

    /// Deletes the conversation with its turns, messages and replay logs (by cascade); `false`
    /// if it does not exist for this user.
    ///
    /// After deleting, the write-ahead log is checkpointed and truncated so that the erased
    /// content does not remain in it either.
    public func deleteConversation(id: String, userId: String) async throws -> Bool {
        let outcome = try await connection.withConnectionAlone("deleteConversation") { connection in
            try await ConversationSQL.delete(id: id, userId: userId, on: connection)
        }
        if outcome == .deleted(walTruncated: false) {
            logger.info("store.checkpoint.incomplete", metadata: ["conversation.id": "\(id)"])
        }
        logger.debug("store.conversation.deleted", metadata: ["conversation.id": "\(id)", "conversation.found": "\(outcome != .notFound)"])
        return outcome != .notFound
    }

    /// The conversation's messages in the order they were written; empty if it is not the user's.
    public func messages(conversationId: String, userId: String) async throws -> [StoredMessage] {
        try await connection.withConnection("messages") { connection in
            try await ConversationSQL.messages(conversationId: conversationId, userId: userId, on: connection)
        }
    }

    /// The latest `limit` messages and the safety state, in one read bounded by `limit`.
    public func recentContext(conversationId: String, userId: String, limit: Int) async throws -> ConversationContext? {
        try await connection.withFastReader("recentContext") { connection in
            try await ConversationSQL.recentContext(conversationId: conversationId, userId: userId, limit: limit, on: connection)
        }
    }

    /// Saves the conversation's safety state.
    public func saveSafetyState(conversationId: String, userId: String, state: String) async throws {
        try await connection.withConnection("saveSafetyState") { connection in
            try await ConversationSQL.saveSafetyState(conversationId: conversationId, userId: userId, state: state, on: connection)
        }
    }

    // MARK: - Turns

    /// Atomically stores a new turn (and `newConversation`), or returns the user's existing turn
    /// with the same client message id without writing anything.
    ///
    /// The stored messages take their conversation, user and stream ids from `turn`; the user
    /// message is stored `complete`, the assistant message `streaming` with empty text. The
    /// conversation's `updatedAt` moves forward to the newer message time. Concurrent calls are
    /// committed together (see ``SQLiteStoreWriter``).
    /// - Throws: ``StoreError/conversationNotFound`` if the turn's conversation is not the user's.
    public func beginTurn(_ turn: Turn, newConversation: Conversation?) async throws -> BeginTurnResult {
        if let newConversation, newConversation.id != turn.conversationId || newConversation.userId != turn.userId {
            throw StoreError.conversationNotFound
        }
        let result = try await writer.begin(turn, newConversation: newConversation)
        logBegun(turn, result)
        return result
    }

    /// Hands the turn to the writer, then runs `meanwhile` while the writer commits it (when the
    /// writer commits in the background; otherwise the turn is written first). The writer calls
    /// `whenStored` on its own thread right after the commit.
    public func beginTurn<T: Sendable>(_ turn: Turn, newConversation: Conversation?, whenStored: @escaping @Sendable () -> Void, meanwhile: () async -> T) async throws -> (BeginTurnResult, T) {
        if let newConversation, newConversation.id != turn.conversationId || newConversation.userId != turn.userId {
            throw StoreError.conversationNotFound
        }
        guard let pending = try writer.queueBegin(turn, newConversation: newConversation, whenStored: whenStored) else {
            let result = try await beginTurn(turn, newConversation: newConversation)
            if case .created = result { whenStored() }
            return (result, await meanwhile())
        }
        let other = await meanwhile()
        let result = try await pending.value
        logBegun(turn, result)
        return (result, other)
    }

    private func logBegun(_ turn: Turn, _ result: BeginTurnResult) {
        let outcome = if case .created = result { "created" } else { "duplicate" }
        logger.debug("store.turn.begun", metadata: [
            "stream.id": "\(turn.streamId)", "conversation.id": "\(turn.conversationId)", "turn.outcome": "\(outcome)",
        ])
    }

    /// Stores the assistant text and status and the replay log (replacing any earlier one), in
    /// one transaction. Does nothing if the stream is not the user's (for example, its
    /// conversation was deleted while it streamed).
    public func finishTurn(_ completion: TurnCompletion) async throws {
        try await writer.finish(completion)
        logger.debug("store.turn.finished", metadata: [
            "stream.id": "\(completion.streamId)", "stream.status": "\(completion.status.rawValue)",
            "stream.events": "\(completion.events.count)",
        ])
    }

    /// The turn produced by `streamId`, with its replay log, if it is the user's.
    public func turn(streamId: String, userId: String) async throws -> Turn? {
        try await connection.withConnection("turn") { connection in
            try await TurnSQL.turn(streamId: streamId, userId: userId, on: connection)
        }
    }

    /// The user's turn begun with `clientMessageId`, if any.
    public func turn(clientMessageId: String, userId: String) async throws -> Turn? {
        try await connection.withConnection("turnByClientMessageId") { connection in
            try await TurnSQL.turn(clientMessageId: clientMessageId, userId: userId, on: connection)
        }
    }

    /// Appends events to running streams' logs in one transaction (``StreamJournal``'s group commit).
    public func appendStreamEvents(_ appends: [StreamAppend]) async throws {
        guard !appends.isEmpty else { return }
        try await connection.transaction("appendStreamEvents") { connection in
            try await TurnSQL.appendMany(appends, on: connection)
        }
    }

    /// The user's stream's persisted events after `seq` and its status.
    public func streamEvents(streamId: String, userId: String, after seq: Int) async throws -> StreamEventsPage? {
        try await connection.withConnection("streamEvents") { connection in
            try await TurnSQL.events(streamId: streamId, userId: userId, after: seq, on: connection)
        }
    }

    /// Records that `instanceId` is alive at `date`.
    public func recordHeartbeat(instanceId: String, at date: Date) async throws {
        try await connection.withConnection("recordHeartbeat") { connection in
            try await TurnSQL.heartbeat(instanceId: instanceId, at: date, on: connection)
        }
    }

    /// Streaming turns whose owner has been silent since `date`, with their persisted events.
    public func orphanedTurns(notAliveSince date: Date, limit: Int) async throws -> [Turn] {
        try await connection.withConnection("orphanedTurns") { connection in
            try await TurnSQL.orphaned(notAliveSince: date, limit: limit, on: connection)
        }
    }

    // MARK: - Lifecycle

    /// Runs `SELECT 1`; throws ``StoreError/unavailable(_:)`` if that fails or the store is closed.
    public func checkHealth() async throws {
        try await connection.withConnection("checkHealth") { connection in
            _ = try await connection.query("SELECT 1", [])
        }
    }

    /// Stops accepting writes, commits every write already accepted, then closes the connection
    /// after any running call finishes; later calls throw ``StoreError/unavailable(_:)``.
    /// Closing twice is harmless (so is closing a store whose ``writer`` closed it already).
    public func close() async throws {
        try await writer.close()
    }
}
