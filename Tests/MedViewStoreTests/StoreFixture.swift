import Foundation
import Logging
import MedViewCore
import MedViewPostgres
import MedViewStore
import Testing
import ServiceLifecycle

/// A store under test and how to dispose of it.
struct StoreFixture: Sendable {
    var store: any ConversationStore
    /// Closes the store and removes anything it left behind.
    var tearDown: @Sendable () async throws -> Void
}

/// Makes a fresh, empty store for one check.
typealias StoreFactory = @Sendable () async throws -> StoreFixture

/// Runs `body` with a fresh store and always tears it down, even when `body` throws.
func withStore<T>(_ makeStore: StoreFactory, _ body: (any ConversationStore) async throws -> T) async throws -> T {
    let fixture = try await makeStore()
    let result: T
    do {
        result = try await body(fixture.store)
    } catch {
        try? await fixture.tearDown()
        throw error
    }
    try await fixture.tearDown()
    return result
}

/// Factories for each implementation.
enum Stores {
    static let inMemory: StoreFactory = {
        let store = InMemoryConversationStore()
        return StoreFixture(store: store, tearDown: { try await store.close() })
    }

    static let sqlite: StoreFactory = {
        let directory = try TemporaryDirectory()
        do {
            let store = try await SQLiteConversationStore.open(path: directory.path("store.sqlite"), logger: testLogger)
            return StoreFixture(store: store, tearDown: {
                defer { directory.remove() }
                try await store.close()
            })
        } catch {
            directory.remove()
            throw error
        }
    }

    /// The SQLite store with its writer running as a `Service` in a `ServiceGroup`, committing in
    /// the background as in the application; tear-down is the group's graceful shutdown.
    static let sqliteInServiceGroup: StoreFactory = {
        let directory = try TemporaryDirectory()
        do {
            let store = try await SQLiteConversationStore.open(path: directory.path("store.sqlite"), logger: testLogger)
            let group = ServiceGroup(services: [store.writer], logger: testLogger)
            let running = Task { try await group.run() }
            while !store.writer.isRunningAsService { try await Task.sleep(for: .milliseconds(1)) }
            return StoreFixture(store: store, tearDown: {
                defer { directory.remove() }
                await group.triggerGracefulShutdown()
                try await running.value
            })
        } catch {
            directory.remove()
            throw error
        }
    }
}

let testLogger = Logger(label: "medview.store.tests")

/// A uniquely named directory under the system temporary directory.
struct TemporaryDirectory: Sendable {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("medview-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// The path of `name` inside this directory.
    func path(_ name: String) -> String {
        url.appendingPathComponent(name).path
    }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}

/// The PostgreSQL test database named by `MEDVIEW_TEST_DATABASE_URL` (scripts/test.sh starts a
/// throwaway cluster and sets it); the PostgreSQL suites are skipped without it.
enum TestDatabase {
    static let url: String? = ProcessInfo.processInfo.environment["MEDVIEW_TEST_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    static var isConfigured: Bool { url != nil }

    /// Settings for a schema of its own (`medview_test_<random>`), so that tests and test runs
    /// sharing one database never see each other's rows.
    static func freshSettings(poolSize: Int = 4) throws -> PostgresSettings {
        var settings = try PostgresSettings.parse(url: try #require(url), poolSize: poolSize)
        settings.schema = "medview_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        return settings
    }
}

extension Stores {
    /// The PostgreSQL store in a fresh schema, its pool running in a `ServiceGroup` as in the
    /// application; tear-down is the group's graceful shutdown, then the schema is dropped.
    static let postgres: StoreFactory = {
        let settings = try TestDatabase.freshSettings()
        do {
            let store = try await PostgresConversationStore.open(settings: settings, logger: testLogger)
            let group = ServiceGroup(services: [store.pool], logger: testLogger)
            let running = Task { try await group.run() }
            return StoreFixture(store: store, tearDown: {
                await group.triggerGracefulShutdown()
                try await running.value
                try await PostgresConversationStore.dropSchema(settings: settings, logger: testLogger)
            })
        } catch {
            try? await PostgresConversationStore.dropSchema(settings: settings, logger: testLogger)
            throw error
        }
    }
}
