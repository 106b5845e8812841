import Foundation
import Logging
import MedViewCore
import MedViewStore
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
