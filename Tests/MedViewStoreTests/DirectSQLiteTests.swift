import Foundation
import Synchronization
import MedViewCore
@testable import MedViewStore
import Testing

/// The direct handles the SQLite store runs a message's statements on (issue 16): what must
/// hold although they skip SQLiteNIO's thread pool.
@Suite("SQLite direct handles", .timeLimit(.minutes(1)))
struct DirectSQLiteTests {
    let alice = "u_alice"

    @Test("while another process holds the write lock, a new message waits for it (off the caller's thread) and is stored once it is free, not refused")
    func busyDatabaseWaitsInsteadOfFailing() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("store.sqlite")
        try await withSQLiteStore(at: path) { store in
            let conversation = Sample.conversation(userId: alice)
            #expect(try await store.beginTurn(Sample.turn(conversationId: conversation.id, userId: alice), newConversation: conversation) == .created)

            // Another writer of the file (as `medview keys rotate` beside a server) takes the lock.
            let other = try DirectSQLite(path: path, readOnly: false)
            defer { other.close() }
            _ = try other.query("BEGIN IMMEDIATE")
            let next = Sample.turn(conversationId: conversation.id, userId: alice, at: 5)
            let finished = Mutex(false)
            let sending = Task {
                defer { finished.withLock { $0 = true } }
                return try await store.beginTurn(next, newConversation: nil)
            }
            try await Task.sleep(for: .milliseconds(300))
            // Still waiting: refused at once (busy) would have ended the task already.
            #expect(!finished.withLock { $0 })
            _ = try other.query("COMMIT")
            #expect(try await sending.value == .created)
            #expect(try await store.messages(conversationId: conversation.id, userId: alice).count == 4)
        }
    }

    @Test("the WAL is checkpointed as turns are written through the direct handle, so the file does not grow without bound")
    func walIsCheckpointed() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("store.sqlite")
        try await withSQLiteStore(at: path) { store in
            let conversation = Sample.conversation(userId: alice)
            _ = try await store.beginTurn(Sample.turn(conversationId: conversation.id, userId: alice), newConversation: conversation)
            // About 40 MB of messages: ten times the WAL size that asks for a checkpoint.
            let text = String(repeating: "Headache after the new tablets, worse in the morning. ", count: 300)
            for index in 0..<2_500 {
                let turn = Sample.turn(conversationId: conversation.id, userId: alice, text: text, at: Double(index + 2))
                _ = try await store.beginTurn(turn, newConversation: nil)
            }
            let wal = try #require(try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int)
            let pageSize = 4096
            #expect(wal < 5 * Int(DirectSQLite.checkpointPages) * pageSize, "WAL is \(wal) bytes")
        }
    }

    @Test("the WAL is checkpointed on a handle of its own, without the lock every write holds, and its thread ends when the store closes")
    func walIsCheckpointedBesideTheWrites() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("store.sqlite")
        let store = try await SQLiteConversationStore.open(path: path, logger: testLogger)
        let checkpointer = try #require(store.connection.checkpointer)
        #expect(checkpointer.completed.checkpoints == 0)
        let conversation = Sample.conversation(userId: alice)
        _ = try await store.beginTurn(Sample.turn(conversationId: conversation.id, userId: alice), newConversation: conversation)
        // Messages of about 5 KB until the WAL asks for a checkpoint and the checkpointer has
        // run one (the writer checkpoints itself only at four times that size, 16 MB).
        let text = String(repeating: "Headache after the new tablets, worse in the morning. ", count: 100)
        var index = 0
        while checkpointer.completed.checkpoints == 0 && index < 1_000 {
            index += 1
            _ = try await store.beginTurn(Sample.turn(conversationId: conversation.id, userId: alice, text: text, at: Double(index + 2)), newConversation: nil)
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while checkpointer.completed.checkpoints == 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(checkpointer.completed.checkpoints >= 1)
        #expect(checkpointer.completed.failures == 0)
        // A checkpoint runs while the store's lock is held, as it is for a write being committed:
        // it does not wait for it (it used to, so new turns waited behind a checkpoint).
        let before = checkpointer.completed.checkpoints
        let ranMeanwhile = try await store.connection.withConnection("test") { _ in
            checkpointer.request()
            let deadline = ContinuousClock.now + .seconds(20)
            while checkpointer.completed.checkpoints == before && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            return checkpointer.completed.checkpoints > before
        }
        #expect(ranMeanwhile)
        // What was checkpointed is in the database file: a new handle reads every turn after the
        // WAL is gone (the store's close checkpoints and removes it).
        #expect(checkpointer.isRunning)
        try await store.close()
        #expect(!checkpointer.isRunning)
        checkpointer.request() // after closing: ignored, no thread to wake
        let stored = try await withSQLiteStore(at: path) { reopened in
            try await reopened.messages(conversationId: conversation.id, userId: alice).count
        }
        #expect(stored == 2 * (index + 1))
    }

    @Test("no checkpoint starts during an erasure's own: one asked for meanwhile runs when it is done")
    func aCheckpointWaitsForAnErasure() async throws {
        try await withSQLiteStore { store in
            let checkpointer = try #require(store.connection.checkpointer)
            let conversation = Sample.conversation(userId: alice)
            _ = try await store.beginTurn(Sample.turn(conversationId: conversation.id, userId: alice), newConversation: conversation)
            let before = checkpointer.completed.checkpoints
            try await store.connection.withConnectionAlone("test") { connection in
                checkpointer.request()
                try await Task.sleep(for: .milliseconds(300))
                #expect(checkpointer.completed.checkpoints == before)
                // The erasure's checkpoint is not made busy by another.
                let result = try await connection.query("PRAGMA wal_checkpoint(TRUNCATE)", [])
                #expect(result.first?.column("busy")?.integer == 0)
            }
            let deadline = ContinuousClock.now + .seconds(20)
            while checkpointer.completed.checkpoints == before && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(checkpointer.completed.checkpoints == before + 1)
            // Erasing a conversation still leaves an empty WAL behind it.
            #expect(try await store.deleteConversation(id: conversation.id, userId: alice))
        }
    }

    @Test("compiled statements are kept up to a bound, and a statement dropped from the cache still runs")
    func statementCacheIsBounded() throws {
        try withScratchDatabase { db in
            _ = try db.query("CREATE TABLE t (n INTEGER, label TEXT)")
            for n in 0..<(DirectSQLite.cachedStatements * 2) {
                _ = try db.query("INSERT INTO t (n, label) VALUES (?, ?) -- \(n)", [.integer(n), .text("row \(n)")])
            }
            #expect(db.cachedCount <= DirectSQLite.cachedStatements)
            _ = try db.query("INSERT INTO t (n, label) VALUES (?, ?) -- 0", [.integer(-1), .null])
            let rows = try db.query("SELECT count(*) AS count, sum(n) AS total FROM t WHERE label IS NOT NULL")
            #expect(rows.first?.column("count")?.integer == DirectSQLite.cachedStatements * 2)
            #expect(try db.query("SELECT label FROM t WHERE n = ?", [.integer(-1)]).first?.column("label")?.isNull == true)
        }
    }

    @Test("a new message's context read is compiled once, not again for each conversation it reads")
    func contextReadIsCompiledOnce() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("store.sqlite")
        var conversations: [String] = []
        try await withSQLiteStore(at: path) { store in
            for n in 0..<6 {
                let conversation = Sample.conversation(userId: alice)
                _ = try await store.beginTurn(Sample.turn(conversationId: conversation.id, userId: alice, at: Double(n)), newConversation: conversation)
                conversations.append(conversation.id)
            }
        }
        let db = try DirectSQLite(path: path, readOnly: true)
        defer { db.close() }
        for (n, id) in (conversations + conversations).enumerated() {
            let context = try await ConversationSQL.recentContext(conversationId: id, userId: alice, limit: 4 + n % 2, on: db)
            #expect(context?.messages.count == 2)
        }
        // A bound LIMIT made SQLite compile the statement again at every run (12 here).
        #expect(db.recompilations == 0)
    }

    @Test("a failing statement is a typed error naming SQLite's result code, and the handle stays usable")
    func failureIsTyped() throws {
        try withScratchDatabase { db in
            _ = try db.query("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            _ = try db.query("INSERT INTO t (n) VALUES (?)", [.integer(1)])
            #expect(throws: DirectSQLite.Failure.code(19)) { // SQLITE_CONSTRAINT
                try db.query("INSERT INTO t (n) VALUES (?)", [.integer(1)])
            }
            #expect(throws: DirectSQLite.Failure.self) { try db.query("SELEC nonsense") }
            #expect(try db.query("SELECT count(*) AS c FROM t").first?.column("c")?.integer == 1)
        }
    }

    /// Runs `body` with a direct handle on an empty scratch file, removed afterwards.
    private func withScratchDatabase(_ body: (DirectSQLite) throws -> Void) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("scratch.sqlite")
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let db = try DirectSQLite(path: path, readOnly: false)
        defer { db.close() }
        try body(db)
    }
}
