import MedViewCore
import MedViewPostgres
import MedViewStore
import ServiceLifecycle

/// The services that run the store and stop it last, in start order: for an encrypted store, its
/// wrapped-key store's closer, then the services of the store it wraps (so the keys close after
/// it); the SQLite writer; the PostgreSQL pool; otherwise a ``StoreService`` that closes the store.
func storeServices(for store: any ConversationStore) -> [any Service] {
    if let encrypted = store as? EncryptedConversationStore {
        return [DataKeyStoreService(keyStore: encrypted.ring.keyStore)] + storeServices(for: encrypted.base)
    }
    if let sqlite = store as? SQLiteConversationStore { return [sqlite.writer] }
    if let postgres = store as? PostgresConversationStore { return [postgres.pool] }
    return [StoreService(store: store)]
}

/// The PostgreSQL store under `store` (itself, or the store an encrypted store wraps), if any.
func postgresStore(under store: any ConversationStore) -> PostgresConversationStore? {
    if let encrypted = store as? EncryptedConversationStore { return postgresStore(under: encrypted.base) }
    return store as? PostgresConversationStore
}

/// Closes the wrapped-key store on graceful shutdown, after every service started after it.
struct DataKeyStoreService: Service {
    let keyStore: any DataKeyStore

    func run() async throws {
        try? await gracefulShutdown()
        try await keyStore.close()
    }
}
