import Foundation
import MedViewCore
import MedViewStore
import ServiceLifecycle

/// Stores with envelope encryption on: the decorator over each implementation, with a local
/// master key file in a temporary directory.
extension Stores {
    static let encryptedInMemory: StoreFactory = {
        let directory = try TemporaryDirectory()
        do {
            let provider = try LocalKeyProvider.load(path: directory.path("master.key"))
            let store = EncryptedConversationStore(base: InMemoryConversationStore(), ring: DataKeyRing(provider: provider, keyStore: InMemoryDataKeyStore()))
            return StoreFixture(store: store, tearDown: {
                defer { directory.remove() }
                try await store.close()
            })
        } catch {
            directory.remove()
            throw error
        }
    }

    static let encryptedSQLite: StoreFactory = {
        let directory = try TemporaryDirectory()
        do {
            let store = try await EncryptedSQLite.open(directory)
            return StoreFixture(store: store.encrypted, tearDown: {
                defer { directory.remove() }
                try await store.encrypted.close()
            })
        } catch {
            directory.remove()
            throw error
        }
    }

    /// Encrypted SQLite with the writer running as a `Service`, as in the application.
    static let encryptedSQLiteInServiceGroup: StoreFactory = {
        let directory = try TemporaryDirectory()
        do {
            let store = try await EncryptedSQLite.open(directory)
            let group = ServiceGroup(services: [store.sqlite.writer], logger: testLogger)
            let running = Task { try await group.run() }
            while !store.sqlite.writer.isRunningAsService { try await Task.sleep(for: .milliseconds(1)) }
            return StoreFixture(store: store.encrypted, tearDown: {
                defer { directory.remove() }
                await group.triggerGracefulShutdown()
                try await running.value
                try await store.keys.close()
            })
        } catch {
            directory.remove()
            throw error
        }
    }
}

/// An encrypted SQLite store in a directory: `store.sqlite`, `keys.sqlite`, `master.key`.
struct EncryptedSQLite {
    var sqlite: SQLiteConversationStore
    var keys: SQLiteDataKeyStore
    var provider: LocalKeyProvider
    var encrypted: EncryptedConversationStore

    static func open(_ directory: TemporaryDirectory, provider: LocalKeyProvider? = nil) async throws -> EncryptedSQLite {
        let provider = try provider ?? LocalKeyProvider.load(path: directory.path("master.key"))
        let sqlite = try await SQLiteConversationStore.open(path: directory.path("store.sqlite"), logger: testLogger)
        let keys: SQLiteDataKeyStore
        do {
            keys = try await SQLiteDataKeyStore.open(path: directory.path("keys.sqlite"), logger: testLogger)
        } catch {
            try? await sqlite.close()
            throw error
        }
        return EncryptedSQLite(sqlite: sqlite, keys: keys, provider: provider, encrypted: EncryptedConversationStore(base: sqlite, ring: DataKeyRing(provider: provider, keyStore: keys)))
    }
}
