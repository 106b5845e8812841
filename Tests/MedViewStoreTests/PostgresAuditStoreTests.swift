import Foundation
import Logging
import MedViewCore
@testable import MedViewPostgres
import PostgresNIO
import ServiceLifecycle
import Testing

/// A PostgreSQL store's pool running in a `ServiceGroup`, with the audit table on it: one
/// "task" of a deployment.
struct PostgresAuditTask {
    let postgres: PostgresConversationStore
    let audit: PostgresAuditStore
    let group: ServiceGroup
    let running: Task<Void, any Error>

    static func open(_ settings: PostgresSettings) async throws -> PostgresAuditTask {
        let postgres = try await PostgresConversationStore.open(settings: settings, logger: testLogger)
        let group = ServiceGroup(services: [postgres.pool], logger: testLogger)
        return PostgresAuditTask(postgres: postgres, audit: PostgresAuditStore(store: postgres, logger: testLogger), group: group, running: Task { try await group.run() })
    }

    /// Runs SQL as the table's owner (an attacker with the database password) would.
    func sql(_ query: PostgresQuery) async throws {
        try await postgres.pool.withConnection { connection in
            try await connection.query(query, logger: testLogger)
            return ()
        }
    }

    func close() async throws {
        await group.triggerGracefulShutdown()
        try await running.value
    }
}

/// The audit log on PostgreSQL: one hash chain shared by every task, append-only, verified.
@Suite("PostgreSQL audit log", .enabled(if: TestDatabase.isConfigured, "MEDVIEW_TEST_DATABASE_URL is not set"), .timeLimit(.minutes(2)))
struct PostgresAuditStoreTests {
    func events(_ count: Int, start: Date = Date(timeIntervalSince1970: 1_800_000_000), user: String = "alice") -> [AuditEvent] {
        (0..<count).map { i in
            AuditEvent(at: start.addingTimeInterval(Double(i)), action: i % 2 == 0 ? .messageSent : .conversationRead, userId: user, channelId: "ws_\(i)", sourceAddress: "127.0.0.1", record: "c_\(i)")
        }
    }

    /// Runs `body` with one task on a fresh schema, and always drops the schema.
    func withAuditTask(_ body: (PostgresAuditTask, PostgresSettings) async throws -> Void) async throws {
        let settings = try TestDatabase.freshSettings()
        do {
            let task = try await PostgresAuditTask.open(settings)
            do {
                try await body(task, settings)
            } catch {
                try? await task.close()
                throw error
            }
            try await task.close()
        } catch {
            try? await PostgresConversationStore.dropSchema(settings: settings, logger: testLogger)
            throw error
        }
        try await PostgresConversationStore.dropSchema(settings: settings, logger: testLogger)
    }

    /// Records `events` through a running writer and stops it gracefully.
    func write(_ events: [AuditEvent], to store: any AuditStore) async throws {
        let writer = AuditWriter(store: store, logger: testLogger)
        let group = ServiceGroup(configuration: .init(services: [writer], logger: testLogger))
        let running = Task { try await group.run() }
        for event in events { writer.record(event) }
        await group.triggerGracefulShutdown()
        try await running.value
    }

    @Test("events written through the writer are numbered, chained, read back exactly, and a later writer continues the chain")
    func writesAndChains() async throws {
        try await withAuditTask { task, _ in
            try await write(events(5), to: task.audit)
            try await write(events(3, start: Date(timeIntervalSince1970: 1_900_000_000)), to: task.audit)
            let entries = try await task.audit.entries(since: nil)
            #expect(entries.map(\.seq) == Array(1...8))
            #expect(entries[0].previousHash == AuditChain.genesis)
            #expect(entries[5].previousHash == entries[4].hash)
            #expect(AuditChain.verify(entries) == .intact(count: 8))
            #expect(entries.map(\.event) == events(5) .map(rounded) + events(3, start: Date(timeIntervalSince1970: 1_900_000_000)).map(rounded))
            // A value PostgreSQL text cannot hold does not block the log.
            try await task.audit.appendChained([AuditEvent(action: .signInRefused, sourceAddress: "bad\u{0}addr", outcome: .refused, reason: "unauthorized")])
            #expect(AuditChain.verify(try await task.audit.entries(since: nil)) == .intact(count: 9))
        }
    }

    @Test("several tasks appending to one table at once keep one valid chain")
    func concurrentWriters() async throws {
        try await withAuditTask { first, settings in
            var tasks = [first]
            for _ in 0..<3 { tasks.append(try await PostgresAuditTask.open(settings)) }
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, task) in tasks.enumerated() {
                        group.addTask {
                            // Small batches from each task, interleaving with the others.
                            for round in 0..<25 {
                                try await task.audit.appendChained(self.events(4, user: "user\(index)-\(round)"))
                            }
                        }
                        group.addTask {
                            try await self.write(self.events(50, user: "writer\(index)"), to: task.audit)
                        }
                    }
                    try await group.waitForAll()
                }
                let entries = try await first.audit.entries(since: nil)
                #expect(entries.count == 4 * (25 * 4 + 50))
                #expect(AuditChain.verify(entries) == .intact(count: 4 * (25 * 4 + 50)))
                #expect(entries.map(\.seq) == Array(1...Int64(entries.count)))
            } catch {
                for task in tasks.dropFirst() { try? await task.close() }
                throw error
            }
            for task in tasks.dropFirst() { try await task.close() }
        }
    }

    @Test("a task whose last entry is no longer the log's last chains after the other task's entries, in the order they were written")
    func staleHeadChainsAfterTheOthers() async throws {
        try await withAuditTask { first, settings in
            let second = try await PostgresAuditTask.open(settings)
            do {
                try await first.audit.appendChained(events(3, user: "first"))
                try await second.audit.appendChained(events(2, user: "second"))
                // `first` last wrote entry 3; the log's last is now 5.
                let appended = try await first.audit.appendChained(events(2, user: "first-again"))
                #expect(appended.map(\.seq) == [6, 7])
                try await second.audit.appendChained(events(1, user: "second-again"))
                let entries = try await first.audit.entries(since: nil)
                #expect(entries.map(\.seq) == Array(1...8))
                #expect(entries.map { $0.event.userId ?? "" } == ["first", "first", "first", "second", "second", "first-again", "first-again", "second-again"])
                #expect(AuditChain.verify(entries) == .intact(count: 8))
                #expect(appended.last?.hash == entries[6].hash)
            } catch {
                try? await second.close()
                throw error
            }
            try await second.close()
        }
    }

    @Test("every start (re)creates the append function, so a database restored from before it existed works again after a restart")
    func appendFunctionIsRecreatedAtStart() async throws {
        try await withAuditTask { first, settings in
            try await first.audit.appendChained(events(2))
            try await first.sql("DROP FUNCTION medview_audit_append")
            let restarted = try await PostgresAuditTask.open(settings)
            do {
                try await restarted.audit.appendChained(events(3, user: "after-restart"))
                #expect(AuditChain.verify(try await restarted.audit.entries(since: nil)) == .intact(count: 5))
            } catch {
                try? await restarted.close()
                throw error
            }
            try await restarted.close()
        }
    }

    @Test("the table refuses UPDATE, DELETE and TRUNCATE")
    func appendOnly() async throws {
        try await withAuditTask { task, _ in
            try await write(events(3), to: task.audit)
            for statement in ["UPDATE audit_log SET user_id = 'mallory' WHERE seq = 2", "DELETE FROM audit_log WHERE seq = 2", "TRUNCATE audit_log"] {
                await #expect(throws: (any Error).self, "\(statement)") { try await task.sql(PostgresQuery(unsafeSQL: statement)) }
            }
            #expect(AuditChain.verify(try await task.audit.entries(since: nil)) == .intact(count: 3))
        }
    }

    @Test("verify names an edited row, even when the owner switched the table's triggers off")
    func findsEdits() async throws {
        try await withAuditTask { task, _ in
            try await write(events(5), to: task.audit)
            try await task.sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
            try await task.sql("UPDATE audit_log SET user_id = 'mallory' WHERE seq = 3")
            #expect(AuditChain.verify(try await task.audit.entries(since: nil)) == .altered(seq: 3))
        }
    }

    @Test("verify names a deleted row")
    func findsDeletions() async throws {
        try await withAuditTask { task, _ in
            try await write(events(5), to: task.audit)
            try await task.sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
            try await task.sql("DELETE FROM audit_log WHERE seq = 2")
            #expect(AuditChain.verify(try await task.audit.entries(since: nil)) == .missing(expected: 2, found: 3))
        }
    }

    @Test("verify names an inserted row, even one with a well-formed hash and the uniqueness of seq lifted")
    func findsInsertions() async throws {
        try await withAuditTask { task, _ in
            try await write(events(5), to: task.audit)
            let entries = try await task.audit.entries(since: nil)
            // A forged entry that claims to follow entry 2, with its own hash computed correctly.
            let forged = AuditChain.entry(after: (entries[1].seq, entries[1].hash), event: AuditEvent(action: .conversationDeleted, userId: "alice", record: "c_9"))
            await #expect(throws: (any Error).self, "seq is unique") { try await task.audit.append([forged]) }
            try await task.sql("ALTER TABLE audit_log DROP CONSTRAINT audit_log_seq_key")
            try await task.audit.append([forged])
            #expect(AuditChain.verify(try await task.audit.entries(since: nil)) == .inserted(seq: 3))
        }
    }

    @Test("entries since a time are the later ones")
    func since() async throws {
        try await withAuditTask { task, _ in
            let start = Date(timeIntervalSince1970: 1_800_000_000)
            try await write(events(6, start: start), to: task.audit)
            #expect(try await task.audit.entries(since: start.addingTimeInterval(3)).map(\.seq) == [4, 5, 6])
        }
    }

    /// The event as stored: its time to the millisecond.
    func rounded(_ event: AuditEvent) -> AuditEvent {
        var copy = event
        copy.at = ms(event.at)
        return copy
    }
}
