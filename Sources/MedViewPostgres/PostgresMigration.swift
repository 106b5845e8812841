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
        // A new turn in one round trip (PostgresConversationStore.beginTurn): the statements the
        // store sent one by one, in one function, so a message costs one round trip to the
        // database before the model is called, not nine. Returns `created`, `duplicate`,
        // `conversation_not_found` or `too_many_streams`; a client message id taken by a
        // concurrent attempt raises unique_violation, which rolls back everything it wrote.
        PostgresMigration(version: 7, statements: [
            """
            CREATE FUNCTION medview_begin_turn(
                p_stream text, p_user text, p_conversation text, p_client_message text, p_owner text,
                p_new_conversation boolean, p_title text, p_created timestamptz, p_updated timestamptz,
                p_user_message text, p_user_text text, p_user_created timestamptz,
                p_assistant_message text, p_assistant_created timestamptz,
                p_stream_limit bigint, p_lock_class integer, p_alive_since timestamptz
            ) RETURNS text LANGUAGE plpgsql AS $$
            DECLARE
                streaming bigint;
                inserted text;
            BEGIN
                IF EXISTS (SELECT 1 FROM turns WHERE user_id = p_user AND client_message_id = p_client_message) THEN
                    RETURN 'duplicate';
                END IF;
                IF p_stream_limit IS NOT NULL THEN
                    -- One user's new turns are decided one at a time across processes.
                    PERFORM pg_advisory_xact_lock(p_lock_class, hashtext(p_user));
                    SELECT count(*) INTO streaming FROM messages m
                        JOIN turns t ON t.stream_id = m.stream_id
                        JOIN instances i ON i.id = t.owner_instance
                        WHERE m.user_id = p_user AND m.status = 'streaming' AND m.role = 'assistant'
                          AND i.heartbeat_at >= p_alive_since;
                    IF streaming >= p_stream_limit THEN
                        RETURN 'too_many_streams';
                    END IF;
                END IF;
                IF p_new_conversation THEN
                    INSERT INTO conversations (id, user_id, title, created_at, updated_at)
                        VALUES (p_conversation, p_user, p_title, p_created, p_updated);
                ELSE
                    UPDATE conversations SET updated_at = GREATEST(updated_at, p_updated)
                        WHERE id = p_conversation AND user_id = p_user;
                    IF NOT FOUND THEN
                        RETURN 'conversation_not_found';
                    END IF;
                END IF;
                INSERT INTO turns (stream_id, user_id, conversation_id, client_message_id, owner_instance)
                    VALUES (p_stream, p_user, p_conversation, p_client_message, p_owner)
                    ON CONFLICT (user_id, client_message_id) DO NOTHING RETURNING stream_id INTO inserted;
                IF inserted IS NULL THEN
                    RAISE EXCEPTION 'client message id taken' USING ERRCODE = 'unique_violation';
                END IF;
                -- Two statements, so the user message surely gets the lower seq.
                INSERT INTO messages (id, conversation_id, stream_id, user_id, role, text, status, created_at)
                    VALUES (p_user_message, p_conversation, p_stream, p_user, 'user', p_user_text, 'complete', p_user_created);
                INSERT INTO messages (id, conversation_id, stream_id, user_id, role, text, status, created_at)
                    VALUES (p_assistant_message, p_conversation, p_stream, p_user, 'assistant', '', 'streaming', p_assistant_created);
                RETURN 'created';
            END
            $$
            """,
        ]),
    ]

    /// The newest version this build knows.
    public static var latestVersion: Int { all.map(\.version).max() ?? 0 }

    /// Functions every start (re)creates, after the versioned migrations and under the same lock
    /// (`CREATE OR REPLACE`, so running them again changes nothing). They are not a version:
    /// a build refuses a schema version newer than it knows, so a versioned migration would keep
    /// the previous release from starting when a deploy is rolled back; the previous release
    /// simply does not call them. A later change to one gets a new name, so that a build still
    /// running the old one is not broken by its successor's start.
    public static let repeatable: [String] = [
        // An audit append in one round trip (issue 16): the append lock taken, the chain's last
        // entry read after it (each statement of a function takes its own snapshot), and the
        // caller's entries inserted only if they follow that entry. Otherwise nothing is
        // written and the last entry is returned, to chain after it.
        """
        CREATE OR REPLACE FUNCTION medview_audit_append(
            p_lock_class integer, p_last_seq bigint, p_last_hash text,
            p_seq bigint[], p_at bigint[], p_action text[], p_user text[], p_channel text[], p_source text[],
            p_record text[], p_outcome text[], p_reason text[], p_previous text[], p_hash text[]
        ) RETURNS TABLE (o_written boolean, o_seq bigint, o_hash text) LANGUAGE plpgsql AS $$
        DECLARE
            v_seq bigint;
            v_hash text;
        BEGIN
            PERFORM pg_advisory_xact_lock(p_lock_class, hashtext(current_schema()));
            SELECT a.seq, a.hash INTO v_seq, v_hash FROM audit_log a ORDER BY a.position DESC LIMIT 1;
            IF v_seq IS DISTINCT FROM p_last_seq OR v_hash IS DISTINCT FROM p_last_hash THEN
                RETURN QUERY SELECT false, v_seq, v_hash;
                RETURN;
            END IF;
            INSERT INTO audit_log (seq, at_ms, action, user_id, channel_id, source_address, record, outcome, reason, previous_hash, hash)
            SELECT e.seq, e.at_ms, e.action, NULLIF(e.user_id, ''), NULLIF(e.channel_id, ''), NULLIF(e.source_address, ''),
                   NULLIF(e.record, ''), e.outcome, NULLIF(e.reason, ''), e.previous_hash, e.hash
            FROM unnest(p_seq, p_at, p_action, p_user, p_channel, p_source, p_record, p_outcome, p_reason, p_previous, p_hash)
                 WITH ORDINALITY AS e(seq, at_ms, action, user_id, channel_id, source_address, record, outcome, reason, previous_hash, hash, n)
            ORDER BY e.n;
            RETURN QUERY SELECT true, p_seq[array_upper(p_seq, 1)], p_hash[array_upper(p_hash, 1)];
        END
        $$
        """,
    ]
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
        for (index, statement) in PostgresMigration.repeatable.enumerated() {
            do {
                try await run(connection, PostgresQuery(unsafeSQL: statement), logger)
            } catch {
                let state = (error as? PSQLError)?.serverInfo?[.sqlState].map { "SQLSTATE \($0)" } ?? String(describing: type(of: error))
                throw PostgresStoreError.functionSetupFailed(index: index + 1, detail: state)
            }
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
