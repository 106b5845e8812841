import Foundation
import MedViewCore
import MedViewStore
import Testing

/// The behaviour every ``DataKeyStore`` must show (SQLite, in memory; PostgreSQL to come).
enum DataKeyStoreConformance {
    static func key(_ conversationId: String, user: String = "u_alice", version: Int = 1, master: String = "mk_1", blob: UInt8 = 1) -> WrappedDataKey {
        WrappedDataKey(context: DataKeyContext(userId: user, conversationId: conversationId, version: version), provider: "local", masterKeyId: master, blob: Data(repeating: blob, count: 60), createdAt: Sample.epoch)
    }

    static func run(_ store: any DataKeyStore) async throws {
        // The first insert wins; a second one for the same conversation and version gets it back.
        #expect(try await store.insertOrGet(key("c_1")) == key("c_1"))
        #expect(try await store.insertOrGet(key("c_1", blob: 2)).blob == key("c_1").blob)
        #expect(try await store.insertOrGet(key("c_1", user: "u_bob", blob: 3)).context.userId == "u_alice")
        _ = try await store.insertOrGet(key("c_1", version: 2, master: "mk_2", blob: 4))
        _ = try await store.insertOrGet(key("c_2", blob: 5))

        // Keys are read per user, oldest version first.
        #expect(try await store.keys(conversationId: "c_1", userId: "u_alice").map(\.context.version) == [1, 2])
        #expect(try await store.keys(conversationId: "c_1", userId: "u_bob").isEmpty)

        // Rotation sees keys under other master keys, and replaces a wrapping only if it is unchanged.
        #expect(try await store.keys(notWrappedBy: "mk_2", limit: 10).map(\.context.conversationId) == ["c_1", "c_2"])
        #expect(try await store.keys(notWrappedBy: "mk_2", limit: 1).count == 1)
        var rewrapped = key("c_1", master: "mk_2", blob: 9)
        #expect(try await store.replaceWrapping(rewrapped, previousMasterKeyId: "mk_1"))
        #expect(try await !store.replaceWrapping(rewrapped, previousMasterKeyId: "mk_1"))
        rewrapped.context.userId = "u_bob"
        #expect(try await !store.replaceWrapping(rewrapped, previousMasterKeyId: "mk_2"))
        #expect(try await store.keys(conversationId: "c_1", userId: "u_alice").first?.blob == Data(repeating: 9, count: 60))

        // Erasure is per user and removes every version.
        #expect(try await store.deleteKeys(conversationId: "c_1", userId: "u_bob") == 0)
        #expect(try await store.deleteKeys(conversationId: "c_1", userId: "u_alice") == 2)
        #expect(try await store.keys(conversationId: "c_1", userId: "u_alice").isEmpty)
        #expect(try await store.keys(conversationId: "c_2", userId: "u_alice").count == 1)
        try await store.close()
    }
}

@Suite("DataKeyStore conformance")
struct DataKeyStoreConformanceTests {
    @Test func inMemory() async throws {
        try await DataKeyStoreConformance.run(InMemoryDataKeyStore())
    }

    @Test func sqlite() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try await DataKeyStoreConformance.run(try await SQLiteDataKeyStore.open(path: directory.path("keys.sqlite"), logger: testLogger))
    }
}
