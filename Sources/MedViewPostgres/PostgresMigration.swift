import Logging
import PostgresNIO

/// One step of the PostgreSQL schema: a version and the statements that take the schema there.
///
/// Each migration runs once, in its own transaction, and is recorded in `schema_migrations`.
/// Never edit a released migration; append a new one.
public struct PostgresMigration: Sendable {
    /// Position in the ordered list; recorded once applied.
    public var version: Int
    /// Statements run in order (one statement per string).
    public var statements: [String]

    public init(version: Int, statements: [String]) {
        self.version = version
        self.statements = statements
    }

    /// Every migration of the conversation store, oldest first. The tables mirror the SQLite
    /// store's; message order comes from the `seq` identity column, never from timestamps, and
    /// conversations listed with equal `updated_at` come newest-created first (`position`).
    public static let all: [PostgresMigration] = [
        PostgresMigration(version: 1, statements: [
            """
            CREATE TABLE conversations (
                id text PRIMARY KEY,
                user_id text NOT NULL,
                title text NOT NULL,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                position bigint GENERATED ALWAYS AS IDENTITY
            )
            """,
            "CREATE INDEX conversations_user_updated ON conversations (user_id, updated_at DESC, position DESC)",
            """
            CREATE TABLE turns (
                stream_id text PRIMARY KEY,
                user_id text NOT NULL,
                conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
                client_message_id text NOT NULL,
                UNIQUE (user_id, client_message_id)
            )
            """,
            "CREATE INDEX turns_conversation ON turns (conversation_id)",
            """
            CREATE TABLE messages (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text NOT NULL UNIQUE,
                conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
                stream_id text NOT NULL REFERENCES turns (stream_id) ON DELETE CASCADE,
                user_id text NOT NULL,
                role text NOT NULL,
                text text NOT NULL,
                status text NOT NULL,
                created_at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX messages_conversation ON messages (conversation_id, seq)",
            "CREATE INDEX messages_stream ON messages (stream_id)",
            "CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming'",
            """
            CREATE TABLE stream_events (
                stream_id text NOT NULL REFERENCES turns (stream_id) ON DELETE CASCADE,
                seq integer NOT NULL,
                json text NOT NULL,
                PRIMARY KEY (stream_id, seq)
            )
            """,
        ]),
        // Envelope encryption: each conversation's data keys, wrapped by a master key, in the same
        // database as the ciphertext they open (docs/ENCRYPTION.md). No foreign key to
        // `conversations`: a key is made before its conversation's first row is written.
        PostgresMigration(version: 2, statements: [
            """
            CREATE TABLE data_keys (
                conversation_id text NOT NULL,
                version integer NOT NULL,
                user_id text NOT NULL,
                provider text NOT NULL,
                master_key_id text NOT NULL,
                wrapped bytea NOT NULL,
                created_at timestamptz NOT NULL,
                PRIMARY KEY (conversation_id, version)
            )
            """,
            "CREATE INDEX data_keys_master ON data_keys (master_key_id)",
        ]),
        // The audit log, shared by every task: append-only (triggers refuse UPDATE, DELETE and
        // TRUNCATE), read in insertion order (`position`), one chain (`seq` unique; appends take
        // an advisory transaction lock, PostgresAuditStore).
        PostgresMigration(version: 3, statements: [
            """
            CREATE TABLE audit_log (
                position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                seq bigint NOT NULL UNIQUE,
                at_ms bigint NOT NULL,
                action text NOT NULL,
                user_id text,
                channel_id text,
                source_address text,
                record text,
                outcome text NOT NULL,
                reason text,
                previous_hash text NOT NULL,
                hash text NOT NULL
            )
            """,
            "CREATE INDEX audit_log_at ON audit_log (at_ms)",
            """
            CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
            END
            $$
            """,
            "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
        ]),
        // The durable replay log shared by every process: which process runs each answer, and
        // which processes are alive (heartbeats), so that orphaned answers can be recovered.
        PostgresMigration(version: 4, statements: [
            "ALTER TABLE turns ADD COLUMN owner_instance text",
            "CREATE TABLE instances (id text PRIMARY KEY, heartbeat_at timestamptz NOT NULL)",
            // Per-user limits across processes: streaming answers are counted from `messages`,
            // open connections from `connections`.
            "CREATE INDEX messages_user_streaming ON messages (user_id) WHERE status = 'streaming'",
            """
            CREATE TABLE connections (
                id text PRIMARY KEY,
                user_id text NOT NULL,
                instance_id text NOT NULL,
                opened_at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX connections_user ON connections (user_id)",
        ]),
        // The conversation's safety state (its medication context), so that a new message does
        // not re-read the whole history.
        PostgresMigration(version: 5, statements: [
            "ALTER TABLE conversations ADD COLUMN safety_state text",
        ]),
        // The serverless shape's WebSocket connections (API Gateway holds the sockets; each
        // message is a fresh invocation that reads who the connection is from here).
        PostgresMigration(version: 6, statements: [
            """
            CREATE TABLE gateway_connections (
                id text PRIMARY KEY,
                user_id text NOT NULL,
                expires_at timestamptz NOT NULL,
                opened_at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX gateway_connections_user ON gateway_connections (user_id, opened_at)",
        ]),
    ]

    /// The newest version this build knows.
    public static var latestVersion: Int { all.map(\.version).max() ?? 0 }
}

/// What a migration run found and did.
public struct PostgresMigrationReport: Sendable, Equatable {
    /// The schema version before the run (0 for an empty database).
    public var previousVersion: Int
    /// The versions applied by this run, in order (empty if the schema was up to date, or another
    /// process applied them first).
    public var applied: [Int]
    /// The schema version after the run.
    public var currentVersion: Int
}

/// Applies migrations under a PostgreSQL advisory lock, so that several processes starting at
/// once apply each migration exactly once (the others wait, then find nothing to do).
enum PostgresMigrator {
    /// The advisory lock's first key: "MV" + 1, the medview migration lock; the second key is a
    /// hash of the schema name, so separate schemas migrate independently.
    static let lockClass: Int32 = 0x4D56_0001

    /// Takes the lock, creates the schema and `schema_migrations` if needed, refuses a schema
    /// newer than `migrations` know, applies each missing migration in its own transaction, and
    /// releases the lock.
    /// - Throws: ``PostgresStoreError/schemaTooNew(database:known:)`` (nothing is changed),
    ///   ``PostgresStoreError/migrationFailed(version:detail:)``.
    static func migrate(_ connection: PostgresConnection, schema: String?, migrations: [PostgresMigration], logger: Logger) async throws -> PostgresMigrationReport {
        let lockKey = schema ?? ""
        try await run(connection, "SELECT pg_advisory_lock(\(lockClass), hashtext(\(lockKey)))", logger)
        do {
            let report = try await migrateLocked(connection, schema: schema, migrations: migrations, logger: logger)
            try await run(connection, "SELECT pg_advisory_unlock(\(lockClass), hashtext(\(lockKey)))", logger)
            return report
        } catch {
            _ = try? await connection.query("SELECT pg_advisory_unlock(\(lockClass), hashtext(\(lockKey)))", logger: logger)
            throw error
        }
    }

    private static func migrateLocked(_ connection: PostgresConnection, schema: String?, migrations: [PostgresMigration], logger: Logger) async throws -> PostgresMigrationReport {
        if let schema {
            // `schema` is a checked lower-case identifier (PostgresSettings), safe to quote.
            try await run(connection, PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \"\(schema)\""), logger)
        }
        try await run(connection, "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())", logger)
        let previous = try await currentVersion(connection, logger: logger)
        let known = migrations.map(\.version).max() ?? 0
        if previous > known {
            throw PostgresStoreError.schemaTooNew(database: previous, known: known)
        }
        var applied: [Int] = []
        let appliedBefore = try await appliedVersions(connection, logger: logger)
        for migration in migrations.sorted(by: { $0.version < $1.version }) where !appliedBefore.contains(migration.version) {
            do {
                try await run(connection, "BEGIN", logger)
                for statement in migration.statements {
                    try await run(connection, PostgresQuery(unsafeSQL: statement), logger)
                }
                try await run(connection, "INSERT INTO schema_migrations (version) VALUES (\(migration.version))", logger)
                try await run(connection, "COMMIT", logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                let state = (error as? PSQLError)?.serverInfo?[.sqlState].map { "SQLSTATE \($0)" } ?? String(describing: type(of: error))
                throw PostgresStoreError.migrationFailed(version: migration.version, detail: state)
            }
            applied.append(migration.version)
            logger.info("store.migration.applied", metadata: ["migration.version": "\(migration.version)"])
        }
        return PostgresMigrationReport(previousVersion: previous, applied: applied, currentVersion: max(previous, applied.max() ?? 0))
    }

    /// The highest recorded version (0 if none).
    static func currentVersion(_ connection: PostgresConnection, logger: Logger) async throws -> Int {
        let rows = try await connection.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", logger: logger)
        for try await version in rows.decode(Int.self) { return version }
        return 0
    }

    private static func appliedVersions(_ connection: PostgresConnection, logger: Logger) async throws -> Set<Int> {
        var versions: Set<Int> = []
        for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger).decode(Int.self) {
            versions.insert(version)
        }
        return versions
    }

    private static func run(_ connection: PostgresConnection, _ query: PostgresQuery, _ logger: Logger) async throws {
        let rows = try await connection.query(query, logger: logger)
        for try await _ in rows {}
    }
}
