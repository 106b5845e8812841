import Foundation
import Logging
import MedViewAWS
import MedViewCore
import PostgresNIO
import Synchronization

/// A ``ConversationStore`` on PostgreSQL (Aurora PostgreSQL in production), shared by every
/// `medview serve` process that points at the same database.
///
/// Lifecycle: ``open(settings:credentials:logger:)`` checks the connection (TLS, credentials),
/// applies the schema migrations under an advisory lock and returns the store; add ``pool`` to
/// the `ServiceGroup` ahead of the services that use the store, so that it starts first and, on
/// graceful shutdown, closes last. Calls made before the pool runs wait for it.
///
/// Every operation is one transaction (or one statement) on a pooled connection; concurrent
/// `beginTurn` calls with one client message id are decided by the `(user_id,
/// client_message_id)` unique key (`ON CONFLICT DO NOTHING`), so exactly one wins on any number
/// of processes. Text is stored exactly, except that PostgreSQL `text` cannot hold U+0000: a
/// value containing it is refused with ``PostgresStoreError/textContainsNUL(field:)`` and
/// nothing is written.
public final class PostgresConversationStore: ConversationStore {
    /// Per-user limits the store enforces across every process sharing the database.
    public struct SharedLimits: Sendable, Equatable {
        /// Answers one user may have streaming at once, on all processes together.
        public var streamsPerUser: Int
        /// WebSocket connections one user may have open at once, on all processes together.
        public var connectionsPerUser: Int
        /// A process silent this long no longer counts (its answers are recovered, its
        /// connections are gone): the staleness of the limits after a crash.
        public var staleAfter: Duration

        public init(streamsPerUser: Int, connectionsPerUser: Int, staleAfter: Duration) {
            self.streamsPerUser = streamsPerUser
            self.connectionsPerUser = connectionsPerUser
            self.staleAfter = staleAfter
        }
    }

    /// Advisory lock classes ("MV" + 4, + 5) serialising one user's new turns, and one user's new
    /// connections, across processes while they are counted.
    static let turnLockClass: Int32 = 0x4D56_0004
    static let connectionLockClass: Int32 = 0x4D56_0005

    /// The connection pool; the `Service` that runs and finally closes the store.
    public let pool: PostgresPool
    private let sharedLimits = Mutex<SharedLimits?>(nil)

    /// Makes ``beginTurn(_:newConversation:)`` refuse a turn past the per-user stream limit
    /// (``StoreError/tooManyStreams(limit:)``) and ``openConnection(id:userId:instanceId:)``
    /// enforce the connection limit, counting every live process. Call once, before serving.
    public func enforce(_ limits: SharedLimits) {
        sharedLimits.withLock { $0 = limits }
    }
    /// The schema version the database had after `open` migrated it.
    public let migration: PostgresMigrationReport
    let logger: Logger

    private init(pool: PostgresPool, migration: PostgresMigrationReport, logger: Logger) {
        self.pool = pool
        self.migration = migration
        self.logger = logger
    }

    /// Connects, migrates the schema to ``PostgresMigration/latestVersion``, and returns the
    /// store (its ``pool`` not yet running).
    /// - Parameters:
    ///   - credentials: AWS credentials for IAM authentication (unused without it).
    ///   - rotationInterval: how often the pool is renewed with a fresh IAM token (10 minutes).
    /// - Throws: ``PostgresStoreError`` (unreachable, TLS verification, authentication, a schema
    ///   newer than this build, a failed migration).
    public static func open(settings: PostgresSettings, credentials: (@Sendable () async throws -> SigV4Credentials)? = nil, rotationInterval: Duration = .seconds(600), logger: Logger) async throws -> PostgresConversationStore {
        try await open(settings: settings, credentials: credentials, rotationInterval: rotationInterval, migrations: PostgresMigration.all, logger: logger)
    }

    /// Opens applying only `migrations` (tests use this to stand for older or newer builds).
    package static func open(settings: PostgresSettings, credentials: (@Sendable () async throws -> SigV4Credentials)? = nil, rotationInterval: Duration = .seconds(600), migrations: [PostgresMigration], logger: Logger) async throws -> PostgresConversationStore {
        let report = try await migrate(settings: settings, credentials: credentials, migrations: migrations, logger: logger)
        let connector = try PostgresConnector(settings: settings, credentials: credentials, logger: logger)
        let pool = PostgresPool(rotationInterval: settings.iamAuthentication ? rotationInterval : nil, logger: logger) {
            try await connector.clientConfiguration()
        }
        logger.debug("store.opened", metadata: ["store.kind": "postgresql", "migration.version": "\(report.currentVersion)"])
        return PostgresConversationStore(pool: pool, migration: report, logger: logger)
    }

    /// Applies the missing schema migrations on one connection (what `medview migrate` runs).
    /// Safe when several processes run it at once: an advisory lock serialises them.
    /// - Throws: ``PostgresStoreError/schemaTooNew(database:known:)`` if the database is ahead
    ///   of this build, or another ``PostgresStoreError``.
    public static func migrate(settings: PostgresSettings, credentials: (@Sendable () async throws -> SigV4Credentials)? = nil, logger: Logger) async throws -> PostgresMigrationReport {
        try await migrate(settings: settings, credentials: credentials, migrations: PostgresMigration.all, logger: logger)
    }

    package static func migrate(settings: PostgresSettings, credentials: (@Sendable () async throws -> SigV4Credentials)?, migrations: [PostgresMigration], logger: Logger) async throws -> PostgresMigrationReport {
        let connector = try PostgresConnector(settings: settings, credentials: credentials, logger: logger)
        do {
            return try await connector.withSingleConnection { connection in
                try await PostgresMigrator.migrate(connection, schema: settings.schema, migrations: migrations, logger: logger)
            }
        } catch let error as PostgresStoreError {
            throw error
        } catch {
            throw PostgresConnector.connectError(error)
        }
    }

    /// Drops `settings.schema` with everything in it (test clean-up).
    package static func dropSchema(settings: PostgresSettings, logger: Logger) async throws {
        guard let schema = settings.schema else { return }
        let connector = try PostgresConnector(settings: settings, credentials: nil, logger: logger)
        try await connector.withSingleConnection { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE"), logger: logger)
            return ()
        }
    }

    // MARK: - Conversations

    /// Creates an empty conversation; throws ``StoreError/unavailable(_:)`` if its id is taken.
    public func createConversation(_ conversation: Conversation) async throws {
        try Self.checkText(conversation)
        try await withConnection("createConversation") { connection in
            try await connection.query(
                """
                INSERT INTO conversations (id, user_id, title, created_at, updated_at)
                VALUES (\(conversation.id), \(conversation.userId), \(conversation.title), \(conversation.createdAt), \(conversation.updatedAt))
                """,
                logger: self.logger
            )
            return ()
        }
    }

    /// The conversation if it exists and belongs to `userId`.
    public func conversation(id: String, userId: String) async throws -> Conversation? {
        try await withConnection("conversation") { connection in
            let rows = try await connection.query(
                "SELECT id, user_id, title, created_at, updated_at FROM conversations WHERE id = \(id) AND user_id = \(userId)",
                logger: self.logger
            )
            return try await Self.conversations(rows).first
        }
    }

    /// The user's conversations, most recently updated first (latest created first on ties).
    public func conversations(userId: String, limit: Int) async throws -> [Conversation] {
        guard limit > 0 else { return [] }
        return try await withConnection("conversations") { connection in
            let rows = try await connection.query(
                """
                SELECT id, user_id, title, created_at, updated_at FROM conversations
                WHERE user_id = \(userId) ORDER BY updated_at DESC, position DESC LIMIT \(limit)
                """,
                logger: self.logger
            )
            return try await Self.conversations(rows)
        }
    }

    /// Deletes the conversation with its turns, messages and replay logs (by cascade); `false`
    /// if it does not exist for this user.
    public func deleteConversation(id: String, userId: String) async throws -> Bool {
        try await withConnection("deleteConversation") { connection in
            let rows = try await connection.query(
                "DELETE FROM conversations WHERE id = \(id) AND user_id = \(userId) RETURNING id", logger: self.logger
            )
            var found = false
            for try await _ in rows { found = true }
            return found
        }
    }

    /// The conversation's messages in the order they were written; empty if it is not the user's.
    public func messages(conversationId: String, userId: String) async throws -> [StoredMessage] {
        try await withConnection("messages") { connection in
            let rows = try await connection.query(
                """
                SELECT id, conversation_id, user_id, role, text, status, stream_id, created_at FROM messages
                WHERE conversation_id = \(conversationId) AND user_id = \(userId) ORDER BY seq
                """,
                logger: self.logger
            )
            return try await Self.messages(rows)
        }
    }

    /// The latest `limit` messages (oldest first) and the safety state, reads bounded by `limit`.
    public func recentContext(conversationId: String, userId: String, limit: Int) async throws -> ConversationContext? {
        // One statement: one round trip, and the safety state and the messages from one snapshot
        // (under READ COMMITTED each statement has its own). A conversation without messages is
        // one row of NULLs beside its state.
        try await withConnection("recentContext") { connection in
            var found = false
            var state: String?
            var messages: [StoredMessage] = []
            let rows = try await connection.execute(HotStatements.RecentContext(conversationId: conversationId, userId: userId, rows: limit + 1), logger: self.logger)
            for try await (safetyState, id, messageConversation, messageUser, role, text, status, streamId, created) in rows {
                found = true
                state = safetyState
                guard let id, let messageConversation, let messageUser, let text, let streamId, let created else { continue }
                guard let role = role.flatMap(MessageRole.init(rawValue:)), let status = status.flatMap(MessageStatus.init(rawValue:)) else {
                    throw StoreError.unavailable("a stored message has an unknown role or status")
                }
                messages.append(StoredMessage(id: id, conversationId: messageConversation, userId: messageUser, role: role, text: text, status: status, streamId: streamId, createdAt: created))
            }
            guard found else { return nil }
            let hasOlder = messages.count > limit
            if hasOlder { messages.removeLast() }
            return ConversationContext(messages: messages.reversed(), hasOlder: hasOlder, safetyState: state)
        }
    }

    /// Saves the conversation's safety state.
    public func saveSafetyState(conversationId: String, userId: String, state: String) async throws {
        try Self.checkText(state, field: "conversation.safety_state")
        try await withConnection("saveSafetyState") { connection in
            try await connection.query(
                "UPDATE conversations SET safety_state = \(state) WHERE id = \(conversationId) AND user_id = \(userId)", logger: self.logger
            )
            return ()
        }
    }

    // MARK: - Turns

    /// Atomically stores a new turn (and `newConversation`), or returns the user's existing turn
    /// with the same client message id without writing anything.
    /// - Throws: ``StoreError/conversationNotFound`` if the turn's conversation is not the user's.
    public func beginTurn(_ turn: Turn, newConversation: Conversation?) async throws -> BeginTurnResult {
        if let newConversation, newConversation.id != turn.conversationId || newConversation.userId != turn.userId {
            throw StoreError.conversationNotFound
        }
        try Self.checkText(turn)
        if let newConversation { try Self.checkText(newConversation) }
        // One round trip (`medview_begin_turn`, migration 7) decides and writes the turn. Another
        // attempt with this id may commit first; then ours rolls back whole and the next round
        // reads the winner.
        for _ in 0..<3 {
            switch try await insert(turn, newConversation: newConversation) {
            case .created:
                logger.debug("store.turn.begun", metadata: ["stream.id": "\(turn.streamId)", "conversation.id": "\(turn.conversationId)"])
                return .created
            case .duplicate:
                if let existing = try await self.turn(clientMessageId: turn.clientMessageId, userId: turn.userId) {
                    return .duplicate(existing)
                }
            case .conversationNotFound:
                throw StoreError.conversationNotFound
            case .tooManyStreams(let limit):
                throw StoreError.tooManyStreams(limit: limit)
            }
        }
        throw StoreError.unavailable("beginTurn failed: duplicate vanished")
    }

    /// What `medview_begin_turn` did.
    private enum BeginOutcome {
        case created, duplicate, conversationNotFound, tooManyStreams(Int)
    }

    /// Stores the turn (and `newConversation`) in one statement, so in one round trip: the
    /// idempotency look-up, the per-user stream limit under its advisory lock, the conversation
    /// (created, or its `updated_at` moved forward), the turn and its two messages. Nothing is
    /// written unless everything is.
    private func insert(_ turn: Turn, newConversation: Conversation?) async throws -> BeginOutcome {
        let newest = max(turn.userMessage.createdAt, turn.assistantMessage.createdAt)
        let limits = sharedLimits.withLock { $0 }
        let limit: Int? = limits?.streamsPerUser
        let aliveSince = Date() - (limits?.staleAfter.timeInterval ?? 0)
        let isNew = newConversation != nil
        let title = newConversation?.title ?? ""
        let created = newConversation?.createdAt ?? newest
        let updated = newConversation.map { max($0.updatedAt, newest) } ?? newest
        let outcome = try await withConnection("beginTurn") { connection -> String in
            do {
                let rows = try await connection.execute(HotStatements.BeginTurn(
                    streamId: turn.streamId, userId: turn.userId, conversationId: turn.conversationId, clientMessageId: turn.clientMessageId,
                    ownerInstanceId: turn.ownerInstanceId, isNewConversation: isNew, title: title, created: created, updated: updated,
                    userMessageId: turn.userMessage.id, userText: turn.userMessage.text, userCreated: turn.userMessage.createdAt,
                    assistantMessageId: turn.assistantMessage.id, assistantCreated: turn.assistantMessage.createdAt,
                    streamLimit: limit, lockClass: Self.turnLockClass, aliveSince: aliveSince
                ), logger: self.logger)
                var outcome = ""
                for try await value in rows { outcome = value }
                return outcome
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
                // Another attempt with this client message id committed first: ours rolled back.
                return "duplicate"
            }
        }
        switch outcome {
        case "created": return .created
        case "duplicate": return .duplicate
        case "conversation_not_found": return .conversationNotFound
        case "too_many_streams": return .tooManyStreams(limit ?? 0)
        default: throw StoreError.unavailable("beginTurn failed: unexpected outcome")
        }
    }

    /// Stores the assistant text and status and the replay log (replacing any earlier one), in
    /// one statement, so in one round trip and one transaction. Does nothing if the stream is not
    /// the user's or no longer streaming.
    public func finishTurn(_ completion: TurnCompletion) async throws {
        try Self.checkText(completion.assistantText, field: "message.text")
        for event in completion.events { try Self.checkText(event.json, field: "stream_event.json") }
        let seqs = completion.events.map(\.seq)
        let payloads = completion.events.map(\.json)
        let last = seqs.max() ?? 0
        let notice = "a:" + completion.streamId
        // Every part waits on `ended`, the answer's own row: when it is not the user's streaming
        // answer, nothing is written and nobody is told. The ending's log replaces what the
        // journal appended: rows past its end go, the others are overwritten (an upsert, since a
        // journal append may commit concurrently). The two touch different rows, as the parts of
        // one statement must. The notice is sent when the statement commits, so followers on
        // other processes read the ending as soon as they hear of it.
        try await withConnection("finishTurn") { connection in
            let rows: AsyncThrowingMapSequence<PostgresRowSequence, Void> = try await connection.execute(HotStatements.FinishTurn(
                text: completion.assistantText, status: completion.status.rawValue, streamId: completion.streamId, userId: completion.userId,
                lastSeq: last, seqs: seqs, payloads: payloads, channel: Self.notificationChannel, notice: notice
            ), logger: self.logger)
            for try await _ in rows {}
            return ()
        }
        logger.debug("store.turn.finished", metadata: ["stream.id": "\(completion.streamId)", "stream.status": "\(completion.status.rawValue)"])
    }

    /// The turn produced by `streamId`, with its replay log, if it is the user's.
    public func turn(streamId: String, userId: String) async throws -> Turn? {
        try await withConnection("turn") { connection in
            let rows = try await connection.query(
                "SELECT stream_id, user_id, conversation_id, client_message_id, owner_instance FROM turns WHERE stream_id = \(streamId) AND user_id = \(userId)",
                logger: self.logger
            )
            return try await self.loadTurn(rows, on: connection)
        }
    }

    /// The user's turn begun with `clientMessageId`, if any.
    public func turn(clientMessageId: String, userId: String) async throws -> Turn? {
        try await withConnection("turnByClientMessageId") { connection in
            let rows = try await connection.query(
                "SELECT stream_id, user_id, conversation_id, client_message_id, owner_instance FROM turns WHERE user_id = \(userId) AND client_message_id = \(clientMessageId)",
                logger: self.logger
            )
            return try await self.loadTurn(rows, on: connection)
        }
    }

    /// The channel on which processes sharing the database announce appended events and cancels
    /// (``PostgresStreamNotifier``).
    public static let notificationChannel = "medview_streams"

    /// Appends events to running streams' logs in one statement, skipping events already stored
    /// and streams that are not the user's or no longer streaming, then announces the streams on
    /// ``notificationChannel`` (after the insert committed, so a listener reads what it is told of).
    public func appendStreamEvents(_ appends: [StreamAppend]) async throws {
        var streams: [String] = [], users: [String] = [], seqs: [Int] = [], payloads: [String] = []
        for append in appends {
            for event in append.events {
                try Self.checkText(event.json, field: "stream_event.json")
                streams.append(append.streamId)
                users.append(append.userId)
                seqs.append(event.seq)
                payloads.append(event.json)
            }
        }
        guard !seqs.isEmpty else { return }
        let (streamIds, userIds, sequence, jsons) = (streams, users, seqs, payloads)
        let notices = Self.appendedNotices(Array(Set(appends.map(\.streamId))))
        // One statement: the notices are sent when the insert commits.
        try await withConnection("appendStreamEvents") { connection in
            let rows = try await connection.query(
                """
                WITH logged AS (
                    INSERT INTO stream_events (stream_id, seq, json)
                    SELECT e.stream_id, e.seq::integer, e.json
                    FROM unnest(\(streamIds)::text[], \(userIds)::text[], \(sequence)::bigint[], \(jsons)::text[]) AS e(stream_id, user_id, seq, json)
                    JOIN messages m ON m.stream_id = e.stream_id AND m.user_id = e.user_id AND m.role = 'assistant' AND m.status = 'streaming'
                    ON CONFLICT (stream_id, seq) DO NOTHING
                )
                SELECT pg_notify(\(Self.notificationChannel), n) FROM unnest(\(notices)::text[]) AS n
                """,
                logger: self.logger
            )
            for try await _ in rows {}
            return ()
        }
    }

    /// Notification payloads naming `streamIds` ("a:" then ids separated by commas), each under
    /// PostgreSQL's 8,000-byte payload limit.
    static func appendedNotices(_ streamIds: [String]) -> [String] {
        var notices: [String] = []
        var current = "a:"
        for id in streamIds {
            if current.utf8.count + id.utf8.count + 1 > 7_000 {
                notices.append(current)
                current = "a:"
            }
            current += (current == "a:" ? "" : ",") + id
        }
        if current != "a:" { notices.append(current) }
        return notices
    }

    /// Sends a notification on ``notificationChannel`` (cancel requests).
    package func notify(_ payload: String) async throws {
        try await withConnection("notify") { connection in
            try await connection.query("SELECT pg_notify(\(Self.notificationChannel), \(payload))", logger: self.logger)
            return ()
        }
    }

    /// The user's stream's persisted events after `seq` and its status.
    public func streamEvents(streamId: String, userId: String, after seq: Int) async throws -> StreamEventsPage? {
        try await withConnection("streamEvents") { connection in
            var head: (String, String)?
            for try await row in try await connection.query(
                "SELECT conversation_id, status FROM messages WHERE stream_id = \(streamId) AND user_id = \(userId) AND role = 'assistant'",
                logger: self.logger
            ).decode((String, String).self) where head == nil {
                head = row
            }
            guard let (conversationId, statusName) = head else { return nil }
            guard let status = MessageStatus(rawValue: statusName) else { throw StoreError.unavailable("streamEvents failed: unknown status") }
            var events: [StreamLogEntry] = []
            for try await (seq, json) in try await connection.query(
                "SELECT seq, json FROM stream_events WHERE stream_id = \(streamId) AND seq > \(seq) ORDER BY seq", logger: self.logger
            ).decode((Int32, String).self) {
                events.append(StreamLogEntry(seq: Int(seq), json: json))
            }
            return StreamEventsPage(conversationId: conversationId, status: status, events: events)
        }
    }

    /// Records that `instanceId` is alive at `date` (never moving its heartbeat back), and
    /// forgets the open connections of processes silent for ten times the limits' `staleAfter`.
    public func recordHeartbeat(instanceId: String, at date: Date) async throws {
        let limits = sharedLimits.withLock { $0 }
        try await withConnection("recordHeartbeat") { connection in
            try await connection.query(
                """
                INSERT INTO instances (id, heartbeat_at) VALUES (\(instanceId), \(date))
                ON CONFLICT (id) DO UPDATE SET heartbeat_at = GREATEST(instances.heartbeat_at, excluded.heartbeat_at)
                """,
                logger: self.logger
            )
            if let limits {
                // Counting already ignores a silent process's connections; the rows go once it
                // has been silent ten times as long (a slow process that beats again counts again).
                let aliveSince = date - 10 * limits.staleAfter.timeInterval
                try await connection.query(
                    """
                    DELETE FROM connections c WHERE NOT EXISTS (
                        SELECT 1 FROM instances i WHERE i.id = c.instance_id AND i.heartbeat_at >= \(aliveSince))
                    """,
                    logger: self.logger
                )
            }
            return ()
        }
    }

    /// A single `count(*)::bigint` result.
    static func count(_ connection: PostgresConnection, logger: Logger, _ query: PostgresQuery) async throws -> Int {
        for try await count in try await connection.query(query, logger: logger).decode(Int.self) { return count }
        return 0
    }

    /// Streaming turns whose owner has been silent since `date`, oldest first, with their events.
    public func orphanedTurns(notAliveSince date: Date, limit: Int) async throws -> [Turn] {
        try await withConnection("orphanedTurns") { connection in
            var keys: [(String, String)] = []
            for try await row in try await connection.query(
                """
                SELECT t.stream_id, t.user_id FROM messages m
                JOIN turns t ON t.stream_id = m.stream_id
                LEFT JOIN instances i ON i.id = t.owner_instance
                WHERE m.status = 'streaming' AND m.role = 'assistant' AND (i.heartbeat_at IS NULL OR i.heartbeat_at < \(date))
                ORDER BY m.seq LIMIT \(limit)
                """,
                logger: self.logger
            ).decode((String, String).self) {
                keys.append(row)
            }
            var turns: [Turn] = []
            for (streamId, userId) in keys {
                let rows = try await connection.query(
                    "SELECT stream_id, user_id, conversation_id, client_message_id, owner_instance FROM turns WHERE stream_id = \(streamId) AND user_id = \(userId)",
                    logger: self.logger
                )
                if let turn = try await self.loadTurn(rows, on: connection) { turns.append(turn) }
            }
            return turns
        }
    }

    // MARK: - Lifecycle

    /// Runs `SELECT 1` on a pooled connection within 5 seconds; throws
    /// ``StoreError/unavailable(_:)`` if that fails, takes longer or the store is closed (`/readyz`
    /// uses it). The answer never waits for a check that does not heed cancellation (a connection
    /// whose database went silent): the check is left to finish on its own.
    public func checkHealth() async throws {
        try await withinDeadline(.seconds(5), operation: "checkHealth") {
            try await self.withConnection("checkHealth") { connection in
                try await connection.query("SELECT 1", logger: self.logger)
                return ()
            }
        }
    }

    /// Stops new calls, lets running ones finish, and closes every connection; later calls throw
    /// ``StoreError/unavailable(_:)``. Closing twice is harmless.
    public func close() async throws {
        await pool.close()
    }

    // MARK: - Helpers

    /// Runs `body` on a pooled connection within ``operationTimeout``, mapping failures to typed
    /// errors without user data (``PostgresPool/run(_:_:)``).
    func withConnection<T: Sendable>(_ operation: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await pool.run(operation, body)
    }

    /// The longest one store operation may take, waiting for a connection included.
    public static var operationTimeout: Duration { PostgresPool.operationTimeout }

    /// Runs `body` inside `BEGIN … COMMIT` on one pooled connection, rolling back if it throws.
    @discardableResult
    func transaction<T: Sendable>(_ operation: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await pool.transaction(operation, logger: logger, body)
    }

    /// A typed error that names the operation and the SQLSTATE, never the query or its values.
    static func storeError(_ error: any Error, operation: String) -> any Error {
        switch error {
        case let error as StoreError: return error
        case let error as PostgresStoreError: return error
        case is CancellationError: return error
        case let error as PSQLError:
            if let state = error.serverInfo?[.sqlState] {
                return StoreError.unavailable("\(operation) failed: SQLSTATE \(state)")
            }
            return StoreError.unavailable("\(operation) failed: \(error.code)")
        default:
            return StoreError.unavailable("\(operation) failed: \(type(of: error))")
        }
    }

    private func loadTurn(_ rows: PostgresRowSequence, on connection: PostgresConnection) async throws -> Turn? {
        var found: (String, String, String, String, String?)?
        for try await row in rows.decode((String, String, String, String, String?).self) where found == nil {
            found = row
        }
        guard let found else { return nil }
        let (streamId, userId, conversationId, clientMessageId, owner) = found
        let messages = try await Self.messages(try await connection.query(
            """
            SELECT id, conversation_id, user_id, role, text, status, stream_id, created_at FROM messages
            WHERE stream_id = \(streamId) ORDER BY seq
            """,
            logger: logger
        ))
        guard let user = messages.first(where: { $0.role == .user }),
              let assistant = messages.first(where: { $0.role == .assistant })
        else { throw StoreError.unavailable("turn is missing a message") }
        var events: [StreamLogEntry] = []
        for try await (seq, json) in try await connection.query(
            "SELECT seq, json FROM stream_events WHERE stream_id = \(streamId) ORDER BY seq", logger: logger
        ).decode((Int32, String).self) {
            events.append(StreamLogEntry(seq: Int(seq), json: json))
        }
        return Turn(
            streamId: streamId, userId: userId, conversationId: conversationId, clientMessageId: clientMessageId,
            userMessage: user, assistantMessage: assistant, events: events, ownerInstanceId: owner
        )
    }

    private static func conversations(_ rows: PostgresRowSequence) async throws -> [Conversation] {
        var result: [Conversation] = []
        for try await (id, userId, title, created, updated) in rows.decode((String, String, String, Date, Date).self) {
            result.append(Conversation(id: id, userId: userId, title: title, createdAt: created, updatedAt: updated))
        }
        return result
    }

    private static func messages(_ rows: PostgresRowSequence) async throws -> [StoredMessage] {
        var result: [StoredMessage] = []
        for try await (id, conversationId, userId, role, text, status, streamId, created) in rows.decode((String, String, String, String, String, String, String, Date).self) {
            guard let role = MessageRole(rawValue: role), let status = MessageStatus(rawValue: status) else {
                throw StoreError.unavailable("a stored message has an unknown role or status")
            }
            result.append(StoredMessage(id: id, conversationId: conversationId, userId: userId, role: role, text: text, status: status, streamId: streamId, createdAt: created))
        }
        return result
    }

    private static func checkText(_ text: String, field: String) throws(PostgresStoreError) {
        if text.utf8.contains(0) { throw .textContainsNUL(field: field) }
    }

    private static func checkText(_ conversation: Conversation) throws(PostgresStoreError) {
        try checkText(conversation.id, field: "conversation.id")
        try checkText(conversation.userId, field: "conversation.userId")
        try checkText(conversation.title, field: "conversation.title")
    }

    private static func checkText(_ turn: Turn) throws(PostgresStoreError) {
        for (value, field) in [
            (turn.streamId, "turn.streamId"), (turn.userId, "turn.userId"), (turn.conversationId, "turn.conversationId"),
            (turn.clientMessageId, "turn.clientMessageId"), (turn.userMessage.id, "message.id"),
            (turn.assistantMessage.id, "message.id"), (turn.userMessage.text, "message.text"),
        ] {
            try checkText(value, field: field)
        }
    }
}



extension PostgresConversationStore: SharedConnectionLimit {
    /// Records the connection if the user has fewer than the limit open on live processes (a
    /// per-user advisory lock makes the count and the insert one decision); without limits
    /// (``enforce(_:)`` not called) always records it.
    public func openConnection(id: String, userId: String, instanceId: String) async throws -> Bool {
        let limits = sharedLimits.withLock { $0 }
        return try await transaction("openConnection") { connection in
            if let limits {
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.connectionLockClass), hashtext(\(userId)))", logger: self.logger)
                let aliveSince = Date() - limits.staleAfter.timeInterval
                let open = try await Self.count(connection, logger: self.logger,
                    """
                    SELECT count(*)::bigint FROM connections c JOIN instances i ON i.id = c.instance_id
                    WHERE c.user_id = \(userId) AND i.heartbeat_at >= \(aliveSince)
                    """)
                guard open < limits.connectionsPerUser else { return false }
            }
            try await connection.query(
                "INSERT INTO connections (id, user_id, instance_id, opened_at) VALUES (\(id), \(userId), \(instanceId), \(Date()))",
                logger: self.logger
            )
            return true
        }
    }

    public func closeConnection(id: String) async throws {
        try await withConnection("closeConnection") { connection in
            try await connection.query("DELETE FROM connections WHERE id = \(id)", logger: self.logger)
            return ()
        }
    }
}
