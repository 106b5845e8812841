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
