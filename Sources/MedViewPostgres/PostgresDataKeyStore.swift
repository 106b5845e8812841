import Foundation
import Logging
import MedViewCore
import PostgresNIO

/// Wrapped data keys in the `data_keys` table of the PostgreSQL database (schema version 2), on
/// the conversation store's connection pool.
///
/// Every `medview serve` task sharing the database shares the keys, which is what lets any task
/// decrypt any conversation. Erasure deletes the conversation's rows here; the deleted tuples
/// stay in the table's pages until vacuum and in WAL and backups until they expire, which is why
/// erasure rests on the key being unusable without its master key too (docs/ENCRYPTION.md).
///
/// Lifecycle: the pool belongs to the ``PostgresConversationStore`` that opened it; ``close()``
/// does nothing, and the store's pool Service closes the connections.
public final class PostgresDataKeyStore: DataKeyStore {
    private let pool: PostgresPool
    private let logger: Logger

    /// The key table on `store`'s pool (and in its schema).
    public convenience init(store: PostgresConversationStore, logger: Logger) {
        self.init(pool: store.pool, logger: logger)
    }

    init(pool: PostgresPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    public func insertOrGet(_ key: WrappedDataKey) async throws -> WrappedDataKey {
        try await pool.run("insertDataKey") { connection in
            // A racing insert of the same (conversation, version) makes this one wait for it, then
            // do nothing; the select that follows reads the row that won.
            try await connection.query(
                """
                INSERT INTO data_keys (conversation_id, version, user_id, provider, master_key_id, wrapped, created_at)
                VALUES (\(key.context.conversationId), \(key.context.version), \(key.context.userId), \(key.provider), \(key.masterKeyId), \(key.blob), \(key.createdAt))
                ON CONFLICT (conversation_id, version) DO NOTHING
                """,
                logger: self.logger
            )
            let stored = try await Self.keys(try await connection.query(
                "\(unescaped: Self.columns) WHERE conversation_id = \(key.context.conversationId) AND version = \(key.context.version)",
                logger: self.logger
            ))
            guard let first = stored.first else { throw StoreError.unavailable("insertDataKey failed: the key vanished") }
            return first
        }
    }

    public func keys(conversationId: String, userId: String) async throws -> [WrappedDataKey] {
        try await pool.run("dataKeys") { connection in
            try await Self.keys(try await connection.query(
                "\(unescaped: Self.columns) WHERE conversation_id = \(conversationId) AND user_id = \(userId) ORDER BY version",
                logger: self.logger
            ))
        }
    }

    public func deleteKeys(conversationId: String, userId: String) async throws -> Int {
        try await pool.run("deleteDataKeys") { connection in
            var deleted = 0
            for try await _ in try await connection.query(
                "DELETE FROM data_keys WHERE conversation_id = \(conversationId) AND user_id = \(userId) RETURNING version",
                logger: self.logger
            ) {
                deleted += 1
            }
            return deleted
        }
    }

    public func keys(notWrappedBy masterKeyId: String, limit: Int) async throws -> [WrappedDataKey] {
        try await pool.run("dataKeysToRotate") { connection in
            try await Self.keys(try await connection.query(
                "\(unescaped: Self.columns) WHERE master_key_id <> \(masterKeyId) ORDER BY conversation_id, version LIMIT \(limit)",
                logger: self.logger
            ))
        }
    }

    public func replaceWrapping(_ key: WrappedDataKey, previousMasterKeyId: String) async throws -> Bool {
        try await pool.run("rewrapDataKey") { connection in
            var updated = false
            for try await _ in try await connection.query(
                """
                UPDATE data_keys SET provider = \(key.provider), master_key_id = \(key.masterKeyId), wrapped = \(key.blob)
                WHERE conversation_id = \(key.context.conversationId) AND version = \(key.context.version)
                  AND user_id = \(key.context.userId) AND master_key_id = \(previousMasterKeyId)
                RETURNING version
                """,
                logger: self.logger
            ) {
                updated = true
            }
            return updated
        }
    }

    /// Does nothing: the pool is the conversation store's, closed by its Service.
    public func close() async throws {}

    private static let columns = "SELECT conversation_id, version, user_id, provider, master_key_id, wrapped, created_at FROM data_keys"

    private static func keys(_ rows: PostgresRowSequence) async throws -> [WrappedDataKey] {
        var result: [WrappedDataKey] = []
        for try await (conversationId, version, userId, provider, masterKeyId, wrapped, created) in rows.decode((String, Int, String, String, String, Data, Date).self) {
            result.append(WrappedDataKey(
                context: DataKeyContext(userId: userId, conversationId: conversationId, version: version),
                provider: provider, masterKeyId: masterKeyId, blob: wrapped, createdAt: created
            ))
        }
        return result
    }
}
