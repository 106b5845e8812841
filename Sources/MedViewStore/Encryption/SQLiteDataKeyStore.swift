import Foundation
import Logging
import MedViewCore
import SQLiteNIO

/// Wrapped data keys in their own SQLite file (`keys.sqlite` beside the conversation database).
///
/// A separate file, so that a backup of the conversation database holds no keys: erasing a
/// conversation's key then leaves its ciphertext in such a backup unreadable. Like the store,
/// it runs with WAL and `secure_delete`, and truncates the WAL after each erasure so that a
/// destroyed wrapped key does not linger in it.
public final class SQLiteDataKeyStore: DataKeyStore {
    private let connection: StoreConnection

    /// The key table's migrations (their own list, recorded in this file's `schema_migrations`).
    package static let migrations: [SQLiteMigration] = [
        SQLiteMigration(version: 1, statements: [
            """
            CREATE TABLE data_keys (
                conversation_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                user_id TEXT NOT NULL,
                provider TEXT NOT NULL,
                master_key_id TEXT NOT NULL,
                wrapped BLOB NOT NULL,
                created_at REAL NOT NULL,
                PRIMARY KEY (conversation_id, version)
            )
            """,
            "CREATE INDEX data_keys_master ON data_keys (master_key_id)",
        ]),
    ]

    private init(connection: StoreConnection) {
        self.connection = connection
    }

    /// Opens (creating if needed) the key file at `path` and brings its schema up to date.
    public static func open(path: String, logger: Logger) async throws -> SQLiteDataKeyStore {
        SQLiteDataKeyStore(connection: try await StoreConnection.open(path: path, logger: logger, migrations: migrations))
    }

    /// Stores `key` unless its conversation has that version already; returns the stored one.
    ///
    /// One statement when the key is new (the first message of a conversation, on the way to its
    /// first chunk): the insert returns the row it stored. Only when another attempt stored that
    /// version first is it read back.
    public func insertOrGet(_ key: WrappedDataKey) async throws -> WrappedDataKey {
        try await connection.withConnection("insertDataKey") { connection in
            let inserted = try await connection.query(
                """
                INSERT INTO data_keys (conversation_id, version, user_id, provider, master_key_id, wrapped, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (conversation_id, version) DO NOTHING RETURNING *
                """,
                [.text(key.context.conversationId), .integer(key.context.version), .text(key.context.userId), .text(key.provider),
                 .text(key.masterKeyId), .blob(ByteBuffer(bytes: key.blob)), .float(key.createdAt.timeIntervalSince1970)]
            )
            if let row = inserted.first { return try Self.key(row) }
            let rows = try await connection.query(
                "SELECT * FROM data_keys WHERE conversation_id = ? AND version = ?",
                [.text(key.context.conversationId), .integer(key.context.version)]
            )
            guard let row = rows.first else { throw StoreError.unavailable("data key vanished") }
            return try Self.key(row)
        }
    }

    public func keys(conversationId: String, userId: String) async throws -> [WrappedDataKey] {
        try await connection.withConnection("dataKeys") { connection in
            try await connection.query(
                "SELECT * FROM data_keys WHERE conversation_id = ? AND user_id = ? ORDER BY version",
                [.text(conversationId), .text(userId)]
            ).map(Self.key)
        }
    }

    public func deleteKeys(conversationId: String, userId: String) async throws -> Int {
        try await connection.withConnectionAlone("deleteDataKeys") { connection in
            let deleted = try await connection.query(
                "DELETE FROM data_keys WHERE conversation_id = ? AND user_id = ? RETURNING version",
                [.text(conversationId), .text(userId)]
            ).count
            if deleted > 0 {
                _ = try await connection.query("PRAGMA wal_checkpoint(TRUNCATE)", [])
            }
            return deleted
        }
    }

    public func keys(notWrappedBy masterKeyId: String, limit: Int) async throws -> [WrappedDataKey] {
        try await connection.withConnection("dataKeysToRotate") { connection in
            try await connection.query(
                "SELECT * FROM data_keys WHERE master_key_id <> ? ORDER BY conversation_id, version LIMIT ?",
                [.text(masterKeyId), .integer(limit)]
            ).map(Self.key)
        }
    }

    public func replaceWrapping(_ key: WrappedDataKey, previousMasterKeyId: String) async throws -> Bool {
        try await connection.withConnection("rewrapDataKey") { connection in
            try await connection.query(
                """
                UPDATE data_keys SET provider = ?, master_key_id = ?, wrapped = ?
                WHERE conversation_id = ? AND version = ? AND user_id = ? AND master_key_id = ? RETURNING version
                """,
                [.text(key.provider), .text(key.masterKeyId), .blob(ByteBuffer(bytes: key.blob)),
                 .text(key.context.conversationId), .integer(key.context.version), .text(key.context.userId), .text(previousMasterKeyId)]
            ).count == 1
        }
    }

    public func close() async throws {
        try await connection.close()
    }

    private static func key(_ row: SQLiteRow) throws -> WrappedDataKey {
        guard case .blob(var buffer)? = row.column("wrapped"), let bytes = buffer.readBytes(length: buffer.readableBytes) else {
            throw StoreError.unavailable("unexpected value in column wrapped")
        }
        return WrappedDataKey(
            context: DataKeyContext(userId: try row.text("user_id"), conversationId: try row.text("conversation_id"), version: try row.int("version")),
            provider: try row.text("provider"), masterKeyId: try row.text("master_key_id"), blob: Data(bytes), createdAt: try row.date("created_at")
        )
    }
}

/// Wrapped data keys in memory (tests, and stores that hold nothing on disk).
public actor InMemoryDataKeyStore: DataKeyStore {
    private var rows: [String: [Int: WrappedDataKey]] = [:]

    public init() {}

    public func insertOrGet(_ key: WrappedDataKey) -> WrappedDataKey {
        if let existing = rows[key.context.conversationId]?[key.context.version] { return existing }
        rows[key.context.conversationId, default: [:]][key.context.version] = key
        return key
    }

    public func keys(conversationId: String, userId: String) -> [WrappedDataKey] {
        (rows[conversationId] ?? [:]).values.filter { $0.context.userId == userId }.sorted { $0.context.version < $1.context.version }
    }

    public func deleteKeys(conversationId: String, userId: String) -> Int {
        let mine = keys(conversationId: conversationId, userId: userId)
        for key in mine { rows[conversationId]?[key.context.version] = nil }
        if rows[conversationId]?.isEmpty == true { rows[conversationId] = nil }
        return mine.count
    }

    public func keys(notWrappedBy masterKeyId: String, limit: Int) -> [WrappedDataKey] {
        Array(rows.values.flatMap(\.values).filter { $0.masterKeyId != masterKeyId }
            .sorted { ($0.context.conversationId, $0.context.version) < ($1.context.conversationId, $1.context.version) }.prefix(limit))
    }

    public func replaceWrapping(_ key: WrappedDataKey, previousMasterKeyId: String) -> Bool {
        guard let existing = rows[key.context.conversationId]?[key.context.version],
              existing.context.userId == key.context.userId, existing.masterKeyId == previousMasterKeyId else { return false }
        var updated = existing
        updated.provider = key.provider
        updated.masterKeyId = key.masterKeyId
        updated.blob = key.blob
        rows[key.context.conversationId]?[key.context.version] = updated
        return true
    }

    public func close() {}
}
