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

@Suite("PostgresConversationStore conformance", .enabled(if: TestDatabase.isConfigured, "MEDVIEW_TEST_DATABASE_URL is not set"))
struct PostgresConversationStoreConformanceTests {
    @Test(arguments: ConversationStoreConformance.Check.allCases)
    func conformance(_ check: ConversationStoreConformance.Check) async throws {
        try await check.run(Stores.postgres)
    }
}
