import MedViewCore
import Testing

@Suite("EncryptedConversationStore over InMemoryConversationStore conformance")
struct EncryptedInMemoryConformanceTests {
    @Test(arguments: ConversationStoreConformance.Check.allCases)
    func conformance(_ check: ConversationStoreConformance.Check) async throws {
        try await check.run(Stores.encryptedInMemory)
    }
}

@Suite("EncryptedConversationStore over SQLiteConversationStore conformance")
struct EncryptedSQLiteConformanceTests {
    @Test(arguments: ConversationStoreConformance.Check.allCases)
    func conformance(_ check: ConversationStoreConformance.Check) async throws {
        try await check.run(Stores.encryptedSQLite)
    }
}

@Suite("EncryptedConversationStore over SQLite, writer running as a Service, conformance")
struct EncryptedSQLiteServiceConformanceTests {
    @Test(arguments: ConversationStoreConformance.Check.allCases)
    func conformance(_ check: ConversationStoreConformance.Check) async throws {
        try await check.run(Stores.encryptedSQLiteInServiceGroup)
    }
}
