import Foundation
import Logging
import MedViewCore
import MedViewStore
import ServiceLifecycle
import SQLiteNIO
import Synchronization
import Testing

/// An audit store whose appends never finish, to show that recording never waits for it.
actor StalledAuditStore: AuditStore {
    func last() -> (seq: Int64, hash: String)? { nil }
    func append(_ entries: [AuditEntry]) async throws {
        try await Task.sleep(for: .seconds(3600))
    }
    func entries(since: Date?) -> [AuditEntry] { [] }
    func close() {}
}

/// An audit store in memory that records each append's size.
actor CountingAuditStore: AuditStore {
    private let inner = InMemoryAuditStore()
    private(set) var appendSizes: [Int] = []

    func last() async -> (seq: Int64, hash: String)? { await inner.last() }
    func append(_ entries: [AuditEntry]) async throws {
        appendSizes.append(entries.count)
        try await inner.append(entries)
    }
    func entries(since: Date?) async throws -> [AuditEntry] { try await inner.entries(since: since) }
    func close() {}
}

@Suite(.timeLimit(.minutes(1))) struct AuditLogTests {
    let logger = Logger(label: "test")

    func temporaryPath() -> String {
        NSTemporaryDirectory() + "medview-audit-" + UUID().uuidString + "/audit.sqlite"
    }

    /// Records `events` through a running writer, stops it gracefully, and returns the file.
    func write(_ events: [AuditEvent], to path: String) async throws {
        let store = try await SQLiteAuditStore.open(path: path, logger: logger)
        let writer = AuditWriter(store: store, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [writer], logger: logger))
        let running = Task { try await group.run() }
        for event in events { writer.record(event) }
        await group.triggerGracefulShutdown()
        try await running.value
    }

    func events(_ count: Int, start: Date = Date(timeIntervalSince1970: 1_800_000_000)) -> [AuditEvent] {
        (0..<count).map { i in
            AuditEvent(at: start.addingTimeInterval(Double(i)), action: i % 2 == 0 ? .messageSent : .conversationRead, userId: "alice", channelId: "ws_\(i)", sourceAddress: "127.0.0.1", record: "c_\(i)")
        }
    }

    /// Runs raw SQL on the audit file, as someone with access to the disk would.
    func tamper(_ path: String, _ sql: String, _ binds: [SQLiteData] = []) async throws {
        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        _ = try await connection.query(sql, binds)
        try await connection.close()
    }

    func verify(_ path: String) async throws -> AuditChain.Verdict {
        let store = try await SQLiteAuditStore.open(path: path, logger: logger)
        defer { Task { try? await store.close() } }
        return AuditChain.verify(try await store.entries(since: nil))
    }

    @Test("events recorded before a graceful shutdown are all written, numbered and chained, and survive a restart")
    func writesAndChains() async throws {
        let path = temporaryPath()
        try await write(events(5), to: path)
        try await write(events(3, start: Date(timeIntervalSince1970: 1_900_000_000)), to: path)
        let store = try await SQLiteAuditStore.open(path: path, logger: logger)
        let entries = try await store.entries(since: nil)
        try await store.close()
        #expect(entries.map(\.seq) == Array(1...8))
        #expect(entries[0].previousHash == AuditChain.genesis)
        #expect(entries[5].previousHash == entries[4].hash)
        #expect(AuditChain.verify(entries) == .intact(count: 8))
        #expect(entries.map(\.event.record) == events(5).map(\.record) + events(3).map(\.record))
    }

    @Test("verify names the first edited entry")
    func findsEdits() async throws {
        let path = temporaryPath()
        try await write(events(5), to: path)
        try await tamper(path, "UPDATE audit_log SET user_id = 'mallory' WHERE seq = 3")
        #expect(try await verify(path) == .altered(seq: 3))
    }

    @Test("verify names the first deleted entry")
    func findsDeletions() async throws {
        let path = temporaryPath()
        try await write(events(5), to: path)
        try await tamper(path, "DELETE FROM audit_log WHERE seq = 2")
        #expect(try await verify(path) == .missing(expected: 2, found: 3))
        let tail = temporaryPath()
        try await write(events(5), to: tail)
        try await tamper(tail, "DELETE FROM audit_log WHERE seq = 5")
        // The last entry gone leaves a shorter chain: the count shows it, and appending goes on from 4.
        #expect(try await verify(tail) == .intact(count: 4))
    }

    @Test("verify names an inserted entry, even one with a well-formed hash")
    func findsInsertions() async throws {
        let path = temporaryPath()
        try await write(events(5), to: path)
        let store = try await SQLiteAuditStore.open(path: path, logger: logger)
        let entries = try await store.entries(since: nil)
        // A forged entry that claims to follow entry 2, with its own hash computed correctly.
        let forged = AuditChain.entry(after: (entries[1].seq, entries[1].hash), event: AuditEvent(action: .conversationDeleted, userId: "alice", record: "c_9"))
        try await store.append([forged])
        try await store.close()
        #expect(try await verify(path) == .inserted(seq: 3))
    }

    @Test("two processes appending to one audit file (a server and `keys rotate`) keep one chain")
    func twoWritersOneFile() async throws {
        let path = temporaryPath()
        let first = try await SQLiteAuditStore.open(path: path, logger: logger)
        let second = try await SQLiteAuditStore.open(path: path, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for store in [first, second] {
                group.addTask {
                    for round in 0..<20 { try await store.appendChained(self.events(3, start: Date(timeIntervalSince1970: 1_800_000_000 + Double(round)))) }
                }
            }
            try await group.waitForAll()
        }
        let entries = try await first.entries(since: nil)
        try await first.close()
        try await second.close()
        #expect(AuditChain.verify(entries) == .intact(count: 120))
    }

    @Test("a writer whose last entry is no longer the file's last chains after the other writer's, not its own")
    func staleHeadFallsBackToTheFile() async throws {
        let path = temporaryPath()
        let first = try await SQLiteAuditStore.open(path: path, logger: logger)
        let second = try await SQLiteAuditStore.open(path: path, logger: logger)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        try await first.appendChained(events(4, start: start))
        try await first.appendChained(events(4, start: start))
        try await second.appendChained(events(2, start: start))
        // `first` last wrote entry 8; the file's last is now 10.
        let appended = try await first.appendChained(events(5, start: start))
        #expect(appended.map(\.seq) == [11, 12, 13, 14, 15])
        let entries = try await first.entries(since: nil)
        try await first.close()
        try await second.close()
        #expect(AuditChain.verify(entries) == .intact(count: 15))
    }

    @Test("export since a time gives the later entries")
    func exportSince() async throws {
        let path = temporaryPath()
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        try await write(events(6, start: start), to: path)
        let store = try await SQLiteAuditStore.open(path: path, logger: logger)
        let later = try await store.entries(since: start.addingTimeInterval(3))
        try await store.close()
        #expect(later.map(\.seq) == [4, 5, 6])
    }

    @Test("events recorded within the gathering window are written together in one append, and a shutdown inside the window still writes them")
    func gathersEvents() async throws {
        let store = CountingAuditStore()
        // A long window, so that a loaded machine still records the later events inside it.
        let writer = AuditWriter(store: store, gatherWindow: .seconds(2), logger: logger)
        let group = ServiceGroup(configuration: .init(services: [writer], logger: logger))
        let running = Task { try await group.run() }
        // One request, then four more after the writer has woken for the first (without the
        // window, the first would be appended alone): one append.
        let five = events(5)
        writer.record(five[0])
        try await Task.sleep(for: .milliseconds(50))
        for event in five.dropFirst() { writer.record(event) }
        var written: [Int] = []
        for _ in 0..<800 {
            written = await store.appendSizes
            if written.reduce(0, +) == 5 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(written == [5])
        // Recorded just before a graceful shutdown, inside the next window: written before the store closes.
        for event in events(2, start: Date(timeIntervalSince1970: 1_900_000_000)) { writer.record(event) }
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(await store.appendSizes.reduce(0, +) == 7)
        let entries = try await store.entries(since: nil)
        #expect(AuditChain.verify(entries) == .intact(count: 7))
    }

    @Test("recording never waits for the store: a stalled store does not slow the caller, and a full buffer counts what it drops")
    func neverBlocks() async throws {
        let writer = AuditWriter(store: StalledAuditStore(), capacity: 1000, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [writer], logger: logger))
        let running = Task { try await group.run() }
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for event in events(5000) { writer.record(event) }
        }
        #expect(elapsed < .seconds(2))
        #expect(writer.dropped == 4000)
        running.cancel()
        _ = try? await running.value
    }
}
