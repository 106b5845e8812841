import MedViewCore
import MedViewStore
import ServiceLifecycle

/// The services that stop the store last, in start order: for an encrypted SQLite store, the key
/// database's closer first (so it closes after the writer) and then the SQLite writer; for a
/// plain SQLite store, its writer; otherwise a ``StoreService`` that closes the store.
func storeServices(for store: any ConversationStore) -> [any Service] {
    if let encrypted = store as? EncryptedConversationStore, let sqlite = encrypted.base as? SQLiteConversationStore {
        return [DataKeyStoreService(keyStore: encrypted.ring.keyStore), sqlite.writer]
    }
    return [storeService(store)]
}

/// Closes the wrapped-key store on graceful shutdown, after every service started after it.
struct DataKeyStoreService: Service {
    let keyStore: any DataKeyStore

    func run() async throws {
        try? await gracefulShutdown()
        try await keyStore.close()
    }
}
