import Foundation
import MedViewCore
import MedViewStore
import Testing

/// Behaviour specific to the SQLite store: persistence, migrations, pragmas and erasure on disk.
@Suite("SQLiteConversationStore")
struct SQLiteConversationStoreTests {
    let alice = "u_alice"

    /// Runs `body` with a fresh temporary directory, removed afterwards.
    private func withDirectory<T>(_ body: (TemporaryDirectory) async throws -> T) async throws -> T {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        return try await body(directory)
    }

    @Test func dataSurvivesCloseAndReopen() async throws {
        try await withDirectory { directory throws in
            // The parent directories do not exist yet.
            let path = directory.path("nested/deeper/store.sqlite")
            let conversation = Sample.conversation(userId: alice, title: "Persisted")
            let turn = Sample.turn(conversationId: conversation.id, userId: alice)
            let streaming = Sample.turn(conversationId: conversation.id, userId: alice, at: 2)
            let events = Sample.events(4)
            try await withSQLiteStore(at: path) { store throws in
                #expect(try await store.beginTurn(turn, newConversation: conversation) == .created)
                try await store.finishTurn(TurnCompletion(
                    streamId: turn.streamId, userId: alice, assistantText: "Stored answer", status: .complete, events: events
                ))
                #expect(try await store.beginTurn(streaming, newConversation: nil) == .created)
            }
            #expect(FileManager.default.fileExists(atPath: path))

            try await withSQLiteStore(at: path) { store throws in
                let read = try #require(try await store.conversation(id: conversation.id, userId: alice))
                #expect(read.rounded == conversation.bumped(to: streaming))
                let stored = try #require(try await store.turn(streamId: turn.streamId, userId: alice))
                #expect(stored.events == events)
                #expect(stored.assistantMessage.text == "Stored answer")
                #expect(stored.userMessage.rounded == turn.userMessage.rounded)
                let messages = try await store.messages(conversationId: conversation.id, userId: alice)
                #expect(messages.map(\.id) == [turn, streaming].flatMap { [$0.userMessage.id, $0.assistantMessage.id] })
                // The idempotency key survives too.
                #expect(try await store.beginTurn(turn, newConversation: nil).duplicate?.streamId == turn.streamId)
                // After a crash, the turn left streaming is failed on the next start.
                #expect(try await store.orphanedTurns(notAliveSince: .distantFuture, limit: 10).map(\.streamId) == [streaming.streamId])
            }
        }
    }

    @Test func datesKeepSubMillisecondPrecision() async throws {
        try await withDirectory { directory throws in
            let created = Date(timeIntervalSince1970: 1_750_000_000.123456)
            let conversation = Conversation(id: "c_1", userId: alice, title: "t", createdAt: created, updatedAt: created)
            try await withSQLiteStore(at: directory.path("store.sqlite")) { store throws in
                try await store.createConversation(conversation)
                let read = try #require(try await store.conversation(id: "c_1", userId: alice))
                #expect(abs(read.createdAt.timeIntervalSince(created)) < 0.000_01)
                let raw = try await store.rawQuery("SELECT typeof(created_at) AS type FROM conversations")
                #expect(raw.first?["type"] == "real")
            }
        }
    }

    @Test func connectionIsConfigured() async throws {
        try await withDirectory { directory throws in
            try await withSQLiteStore(at: directory.path("store.sqlite")) { store throws in
                #expect(try await store.rawQuery("PRAGMA journal_mode").first?["journal_mode"] == "wal")
                #expect(try await store.rawQuery("PRAGMA foreign_keys").first?["foreign_keys"] == "1")
                #expect(try await store.rawQuery("PRAGMA busy_timeout").first?["timeout"] == "5000")
                #expect(try await store.rawQuery("PRAGMA synchronous").first?["synchronous"] == "1")
                #expect(try await store.rawQuery("PRAGMA secure_delete").first?["secure_delete"] == "1")
            }
        }
    }

    @Test func migrationsAreRecordedAndRunOnce() async throws {
        try await withDirectory { directory throws in
            let path = directory.path("store.sqlite")
            let query = "SELECT version, applied_at FROM schema_migrations ORDER BY version"
            let first = try await withSQLiteStore(at: path) { store throws in
                try await store.rawQuery(query)
            }
            #expect(first.map { $0["version"] } == SQLiteMigration.all.map { "\($0.version)" })
            #expect(first.allSatisfy { ($0["applied_at"] ?? "").hasPrefix("20") })

            // Reopening applies nothing (re-running migration 1 would fail: its tables exist).
            let second = try await withSQLiteStore(at: path) { store throws in
                try await store.rawQuery(query)
            }
            #expect(second == first)

            // A new migration is applied alone, once.
            let next = (SQLiteMigration.all.map(\.version).max() ?? 0) + 1
            let extended = SQLiteMigration.all + [SQLiteMigration(version: next, statements: [
                "CREATE TABLE migration_probe (id INTEGER PRIMARY KEY)",
                "INSERT INTO migration_probe (id) VALUES (1)",
            ])]
            let third = try await withSQLiteStore(at: path, migrations: extended) { store throws in
                #expect(try await store.rawQuery("SELECT count(*) AS n FROM migration_probe").first?["n"] == "1")
                return try await store.rawQuery(query)
            }
            #expect(Array(third.prefix(first.count)) == first)
            #expect(third.map { $0["version"] } == extended.map { "\($0.version)" })
            try await withSQLiteStore(at: path, migrations: extended) { store throws in
                #expect(try await store.rawQuery("SELECT count(*) AS n FROM migration_probe").first?["n"] == "1")
                #expect(try await store.rawQuery(query) == third)
            }
        }
    }

    @Test func failingMigrationLeavesNoTrace() async throws {
        try await withDirectory { directory throws in
            let path = directory.path("store.sqlite")
            let broken = SQLiteMigration.all + [SQLiteMigration(version: 99, statements: [
                "CREATE TABLE half_done (id INTEGER PRIMARY KEY)",
                "THIS IS NOT SQL",
            ])]
            await #expect(throws: StoreError.self) {
                try await SQLiteConversationStore.open(path: path, logger: testLogger, migrations: broken)
            }
            try await withSQLiteStore(at: path) { store throws in
                let versions = try await store.rawQuery("SELECT version FROM schema_migrations ORDER BY version")
                #expect(versions.map { $0["version"] } == SQLiteMigration.all.map { "\($0.version)" })
                let table = try await store.rawQuery("SELECT name FROM sqlite_master WHERE name = 'half_done'")
                #expect(table.isEmpty)
            }
        }
    }

    @Test func fileWrittenByMigrationOneOpens() async throws {
        try await withDirectory { directory throws in
            let path = directory.path("store.sqlite")
            let conversation = Sample.conversation(userId: alice)
            let turn = Sample.turn(conversationId: conversation.id, userId: alice)
            try await withSQLiteStore(at: path, migrations: Array(SQLiteMigration.all.prefix(1))) { store throws in
                // Rows as a build that knew only migration 1 wrote them (today's code writes newer columns).
                try await store.createConversation(conversation)
                _ = try await store.rawQuery("INSERT INTO turns (stream_id, user_id, conversation_id, client_message_id) VALUES (?, ?, ?, ?)", [turn.streamId, alice, conversation.id, turn.clientMessageId])
                for (message, role, text, status) in [(turn.userMessage, "user", turn.userMessage.text, "complete"), (turn.assistantMessage, "assistant", "", "streaming")] {
                    _ = try await store.rawQuery(
                        "INSERT INTO messages (id, conversation_id, stream_id, user_id, role, text, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, CAST(? AS REAL))",
                        [message.id, conversation.id, turn.streamId, alice, role, text, status, "\(message.createdAt.timeIntervalSince1970)"]
                    )
                }
                let versions = try await store.rawQuery("SELECT version FROM schema_migrations")
                #expect(versions.map { $0["version"] } == ["1"])
            }
            try await withSQLiteStore(at: path) { store throws in
                let versions = try await store.rawQuery("SELECT version FROM schema_migrations ORDER BY version")
                #expect(versions.map { $0["version"] } == SQLiteMigration.all.map { "\($0.version)" })
                let index = try await store.rawQuery("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'messages_streaming'")
                #expect(index.count == 1)
                #expect(try await store.turn(streamId: turn.streamId, userId: alice)?.rounded == turn.rounded)
                #expect(try await store.orphanedTurns(notAliveSince: .distantFuture, limit: 10).map(\.streamId) == [turn.streamId])
            }
        }
    }

    @Test func deleteLeavesNothingInTablesOrFiles() async throws {
        try await withDirectory { directory throws in
            let path = directory.path("store.sqlite")
            let marker = "ERASEME"
            let doomed = Sample.conversation(userId: alice, title: "\(marker) title")
            let kept = Sample.conversation(userId: alice, title: "kept")
            let turns = (0..<3).map { index in
                Sample.turn(conversationId: doomed.id, userId: alice, text: "\(marker) question \(index)", at: Double(index))
            }
            let keptTurn = Sample.turn(conversationId: kept.id, userId: alice, text: "kept question")
            try await withSQLiteStore(at: path) { store throws in
                _ = try await store.beginTurn(keptTurn, newConversation: kept)
                for (index, turn) in turns.enumerated() {
                    _ = try await store.beginTurn(turn, newConversation: index == 0 ? doomed : nil)
                    try await store.finishTurn(TurnCompletion(
                        streamId: turn.streamId, userId: alice, assistantText: "\(marker) answer", status: .complete,
                        events: [StreamLogEntry(seq: 1, json: #"{"delta":"\#(marker)"}"#)]
                    ))
                }
                #expect(try await store.deleteConversation(id: doomed.id, userId: alice))

                for (table, column) in [("conversations", "id"), ("turns", "conversation_id"), ("messages", "conversation_id")] {
                    let rows = try await store.rawQuery("SELECT count(*) AS n FROM \(table) WHERE \(column) = ?", [doomed.id])
                    #expect(rows.first?["n"] == "0", "\(table) still holds rows")
                }
                for turn in turns {
                    for table in ["turns", "messages", "stream_events"] {
                        let rows = try await store.rawQuery("SELECT count(*) AS n FROM \(table) WHERE stream_id = ?", [turn.streamId])
                        #expect(rows.first?["n"] == "0", "\(table) still holds rows")
                    }
                }
                for (table, column) in [("conversations", "title"), ("messages", "text"), ("stream_events", "json")] {
                    let rows = try await store.rawQuery("SELECT count(*) AS n FROM \(table) WHERE instr(\(column), ?) > 0", [marker])
                    #expect(rows.first?["n"] == "0", "\(table) still holds the text")
                }
                #expect(try await store.messages(conversationId: kept.id, userId: alice).count == 2)

                // Not even the bytes remain, in the database or its write-ahead log.
                for suffix in ["", "-wal"] {
                    let file = path + suffix
                    guard let data = FileManager.default.contents(atPath: file) else { continue }
                    #expect(data.range(of: Data(marker.utf8)) == nil, "\(file) still contains erased text")
                }
            }
        }
    }

    @Test func unusablePathIsUnavailable() async throws {
        try await withDirectory { directory throws in
            // A regular file where the parent directory should be.
            let blocker = directory.path("blocker")
            #expect(FileManager.default.createFile(atPath: blocker, contents: Data("x".utf8)))
            do {
                let store = try await SQLiteConversationStore.open(path: blocker + "/store.sqlite", logger: testLogger)
                try? await store.close()
                Issue.record("opened a database under a regular file")
            } catch let error as StoreError {
                guard case .unavailable = error else {
                    Issue.record("unexpected error \(error)")
                    return
                }
            }
        }
    }
}
