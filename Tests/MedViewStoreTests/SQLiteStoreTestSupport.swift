import Foundation
import MedViewCore
@testable import MedViewStore

/// Opens the store at `path` (in a fresh directory if `nil`), runs `body`, and always closes it.
func withSQLiteStore<T>(
    at path: String? = nil,
    migrations: [SQLiteMigration] = SQLiteMigration.all,
    _ body: (SQLiteConversationStore) async throws -> T
) async throws -> T {
    let directory = path == nil ? try TemporaryDirectory() : nil
    defer { directory?.remove() }
    let store = try await SQLiteConversationStore.open(path: path ?? directory!.path("store.sqlite"), logger: testLogger, migrations: migrations)
    do {
        let result = try await body(store)
        try await store.close()
        return result
    } catch {
        try? await store.close()
        throw error
    }
}
