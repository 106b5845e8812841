import Logging
import SQLiteNIO

/// One step of the SQLite schema: a version number and the statements that take the schema there.
///
/// Each migration runs once, inside its own transaction, and is recorded in `schema_migrations`.
/// Never edit a released migration; append a new one.
package struct SQLiteMigration: Sendable {
    /// Position in the ordered list; recorded once applied.
    package var version: Int
    /// Statements run in order (one statement per string).
    package var statements: [String]

    /// A migration to `version` running `statements` in order.
    package init(version: Int, statements: [String]) {
        self.version = version
        self.statements = statements
    }

    /// Every migration of the conversation store, oldest first.
    package static let all: [SQLiteMigration] = [
        SQLiteMigration(version: 1, statements: [
            """
            CREATE TABLE conversations (
                id TEXT PRIMARY KEY NOT NULL,
                user_id TEXT NOT NULL,
                title TEXT NOT NULL,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )
            """,
            "CREATE INDEX conversations_user_updated ON conversations (user_id, updated_at)",
            """
            CREATE TABLE turns (
                stream_id TEXT PRIMARY KEY NOT NULL,
                user_id TEXT NOT NULL,
                conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
                client_message_id TEXT NOT NULL,
                UNIQUE (user_id, client_message_id)
            )
            """,
            "CREATE INDEX turns_conversation ON turns (conversation_id)",
            """
            CREATE TABLE messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
                stream_id TEXT NOT NULL REFERENCES turns (stream_id) ON DELETE CASCADE,
                user_id TEXT NOT NULL,
                role TEXT NOT NULL,
                text TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at REAL NOT NULL
            )
            """,
            "CREATE INDEX messages_conversation ON messages (conversation_id, seq)",
            "CREATE INDEX messages_stream ON messages (stream_id)",
            """
            CREATE TABLE stream_events (
                stream_id TEXT NOT NULL REFERENCES turns (stream_id) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                json TEXT NOT NULL,
                PRIMARY KEY (stream_id, seq)
            )
            """,
        ]),
        // Finding interrupted turns after a crash should not scan every message.
        SQLiteMigration(version: 2, statements: [
            "CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming'",
        ]),
        // The durable replay log: which process runs each answer, and which processes are alive.
        SQLiteMigration(version: 3, statements: [
            "ALTER TABLE turns ADD COLUMN owner_instance TEXT",
            "CREATE TABLE instances (id TEXT PRIMARY KEY, heartbeat_at REAL NOT NULL)",
        ]),
        // The conversation's safety state (its medication context), kept so that a new message
        // does not re-read the whole history.
        SQLiteMigration(version: 4, statements: [
            "ALTER TABLE conversations ADD COLUMN safety_state TEXT",
        ]),
        // A new turn in one statement (TurnSQL.beginMany): a row inserted into the empty view
        // `new_turns` is written by its INSTEAD OF trigger, the idempotency and ownership checks
        // included. One statement is one implicit transaction, so a message costs one trip to
        // SQLite's thread before the model is called, not seven, and a failure at any step rolls
        // the whole turn back. A turn not written (its client message id is taken, or the
        // conversation is not the user's) is left out of the statement's RETURNING rows
        // (RAISE(IGNORE) ends that row before them); checks come before writes, since IGNORE
        // keeps what the row wrote already.
        SQLiteMigration(version: 5, statements: [
            """
            CREATE VIEW new_turns AS SELECT
                NULL AS stream_id, NULL AS user_id, NULL AS conversation_id, NULL AS client_message_id,
                NULL AS owner_instance, NULL AS creates_conversation, NULL AS title,
                NULL AS conversation_created_at, NULL AS updated_at,
                NULL AS user_message_id, NULL AS user_text, NULL AS user_created_at,
                NULL AS assistant_message_id, NULL AS assistant_created_at
            WHERE 0
            """,
            """
            CREATE TRIGGER new_turns_insert INSTEAD OF INSERT ON new_turns
            BEGIN
                SELECT RAISE(IGNORE) WHERE EXISTS (
                    SELECT 1 FROM turns WHERE user_id = NEW.user_id AND client_message_id = NEW.client_message_id
                );
                SELECT RAISE(IGNORE) WHERE NOT NEW.creates_conversation AND NOT EXISTS (
                    SELECT 1 FROM conversations WHERE id = NEW.conversation_id AND user_id = NEW.user_id
                );
                INSERT INTO conversations (id, user_id, title, created_at, updated_at)
                    SELECT NEW.conversation_id, NEW.user_id, NEW.title, NEW.conversation_created_at, NEW.updated_at
                    WHERE NEW.creates_conversation;
                UPDATE conversations SET updated_at = MAX(updated_at, NEW.updated_at)
                    WHERE NOT NEW.creates_conversation AND id = NEW.conversation_id;
                INSERT INTO turns (stream_id, user_id, conversation_id, client_message_id, owner_instance)
                    VALUES (NEW.stream_id, NEW.user_id, NEW.conversation_id, NEW.client_message_id, NEW.owner_instance);
                INSERT INTO messages (id, conversation_id, stream_id, user_id, role, text, status, created_at)
                    VALUES (NEW.user_message_id, NEW.conversation_id, NEW.stream_id, NEW.user_id, 'user', NEW.user_text, 'complete', NEW.user_created_at);
                INSERT INTO messages (id, conversation_id, stream_id, user_id, role, text, status, created_at)
                    VALUES (NEW.assistant_message_id, NEW.conversation_id, NEW.stream_id, NEW.user_id, 'assistant', '', 'streaming', NEW.assistant_created_at);
            END
            """,
        ]),
    ]

    /// Creates `schema_migrations` if needed and applies, in version order, each migration it
    /// does not record yet. Each runs in a `BEGIN IMMEDIATE` transaction that re-checks the
    /// record first, so two processes opening the same file cannot apply one twice.
    static func migrate(_ connection: SQLiteConnection, to migrations: [SQLiteMigration], logger: Logger) async throws {
        _ = try await connection.query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)", []
        )
        let applied = Set(try await connection.query("SELECT version FROM schema_migrations", []).compactMap {
            $0.column("version")?.integer
        })
        for migration in migrations.sorted(by: { $0.version < $1.version }) where !applied.contains(migration.version) {
            _ = try await connection.query("BEGIN IMMEDIATE", [])
            do {
                let already = try await connection.query(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", [.integer(migration.version)]
                )
                if already.isEmpty {
                    for statement in migration.statements {
                        _ = try await connection.query(statement, [])
                    }
                    _ = try await connection.query(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                        [.integer(migration.version)]
                    )
                    logger.debug("store.migration.applied", metadata: ["migration.version": "\(migration.version)"])
                }
                _ = try await connection.query("COMMIT", [])
            } catch {
                _ = try? await connection.query("ROLLBACK", [])
                throw error
            }
        }
        if let newest = applied.max(), let known = migrations.map(\.version).max(), newest > known {
            logger.info("store.schema.newer", metadata: ["migration.version": "\(newest)", "migration.known": "\(known)"])
        }
    }
}
