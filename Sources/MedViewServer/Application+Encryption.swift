import Logging
import MedViewCore
import MedViewPostgres
import MedViewStore
import ServiceLifecycle

/// Opens the configured conversation store: PostgreSQL when a database URL is set, else the
/// SQLite file in the data directory; either way wrapped in an ``EncryptedConversationStore``
/// unless encryption is off (``EncryptionSettings/encrypting(_:dataDirectory:environment:openKeyStore:)``
/// decides, once, for both). The wrapped data keys live beside the ciphertext's store: the
/// PostgreSQL `data_keys` table on the same pool, or `keys.sqlite` in the data directory.
/// - Throws: ``StartupError`` saying what to fix; nothing is left open.
func openConversationStore(configuration: ServerConfiguration, logger: Logger) async throws -> any ConversationStore {
    let base: any ConversationStore
    let openKeyStore: () async throws -> any DataKeyStore
    if let database = configuration.database {
        let postgres = try await openPostgresStore(database, environment: configuration.processEnvironment, logger: logger)
        base = MeteredConversationStore(postgres)
        openKeyStore = { PostgresDataKeyStore(store: postgres, logger: logger) }
    } else {
        base = MeteredConversationStore(try await SQLiteConversationStore.open(path: configuration.databasePath, logger: logger))
        openKeyStore = {
            try await SQLiteDataKeyStore.open(path: EncryptionSettings.keyDatabasePath(dataDirectory: configuration.dataDirectory), logger: logger)
        }
    }
    do {
        return try await configuration.encryption.encrypting(base, dataDirectory: configuration.dataDirectory, environment: configuration.processEnvironment, openKeyStore: openKeyStore)
    } catch {
        try? await base.close()
        throw StartupError(description: "encryption: \(error)")
    }
}

/// The PostgreSQL store `store` is, or wraps (encrypted, metered); `nil` for any other store.
func postgresStore(in store: any ConversationStore) -> PostgresConversationStore? {
    if let postgres = store as? PostgresConversationStore { return postgres }
    return wrapped(in: store).flatMap(postgresStore(in:))
}

/// The store a decorator (``EncryptedConversationStore``, ``MeteredConversationStore``) wraps.
func wrapped(in store: any ConversationStore) -> (any ConversationStore)? {
    if let encrypted = store as? EncryptedConversationStore { return encrypted.base }
    if let metered = store as? MeteredConversationStore { return metered.base }
    return nil
}

/// The audit log's store: the `audit_log` table of the PostgreSQL database when the conversation
/// store is on PostgreSQL (on its pool: one chain for every task), else `audit.sqlite` in the
/// data directory.
func openAuditStore(configuration: ServerConfiguration, store: any ConversationStore, logger: Logger) async throws -> any AuditStore {
    if let postgres = postgresStore(in: store) {
        return PostgresAuditStore(store: postgres, logger: logger)
    }
    return try await SQLiteAuditStore.open(path: SQLiteAuditStore.path(dataDirectory: configuration.dataDirectory), logger: logger)
}

/// The services that run the store and stop it last, in start order: for an encrypted store, its
/// wrapped-key store's closer, then the services of the store it wraps (so the keys close after
/// it); the SQLite writer; the PostgreSQL pool; otherwise a ``StoreService`` that closes the store.
func storeServices(for store: any ConversationStore) -> [any Service] {
    if let encrypted = store as? EncryptedConversationStore {
        return [DataKeyStoreService(keyStore: encrypted.ring.keyStore)] + storeServices(for: encrypted.base)
    }
    if let metered = store as? MeteredConversationStore { return storeServices(for: metered.base) }
    if let sqlite = store as? SQLiteConversationStore { return [sqlite.writer] }
    if let postgres = store as? PostgresConversationStore { return [postgres.pool] }
    return [StoreService(store: store)]
}

/// Closes the wrapped-key store on graceful shutdown, after every service started after it.
struct DataKeyStoreService: Service {
    let keyStore: any DataKeyStore

    func run() async throws {
        try? await gracefulShutdown()
        try await keyStore.close()
    }
}
