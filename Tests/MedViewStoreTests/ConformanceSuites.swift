import MedViewCore
import Testing

@Suite("InMemoryConversationStore conformance")
struct InMemoryConversationStoreConformanceTests {
    @Test(arguments: ConversationStoreConformance.Check.allCases)
    func conformance(_ check: ConversationStoreConformance.Check) async throws {
        try await check.run(Stores.inMemory)
    }
}

@Suite("SQLiteConversationStore conformance")
struct SQLiteConversationStoreConformanceTests {
    @Test(arguments: ConversationStoreConformance.Check.allCases)
    func conformance(_ check: ConversationStoreConformance.Check) async throws {
        try await check.run(Stores.sqlite)
    }
}

@Suite("SQLiteConversationStore conformance, writer running as a Service")
struct SQLiteConversationStoreServiceConformanceTests {
    @Test(arguments: ConversationStoreConformance.Check.allCases)
    func conformance(_ check: ConversationStoreConformance.Check) async throws {
        try await check.run(Stores.sqliteInServiceGroup)
    }
}
