import Foundation
import MedViewCore
@testable import MedViewStore
import Testing

/// A new turn on SQLite is one statement (migration 5's `new_turns` trigger): what a patient
/// relies on when a message is stored that way, before the model is called.
@Suite("SQLite new turn in one statement", .timeLimit(.minutes(1)))
struct SQLiteBeginTurnTests {
    let alice = "u_alice"
    let bob = "u_bob"

    /// Row counts of the tables a turn writes, and the conversations' `updated_at`.
    private func snapshot(_ store: SQLiteConversationStore) async throws -> [[String: String]] {
        try await store.rawQuery("""
            SELECT (SELECT count(*) FROM conversations) AS conversations, (SELECT count(*) FROM turns) AS turns,
                   (SELECT count(*) FROM messages) AS messages,
                   (SELECT group_concat(id || '=' || updated_at, ',') FROM (SELECT id, updated_at FROM conversations ORDER BY id)) AS updated
            """)
    }

    @Test("a new message is stored by one statement and one commit, with no BEGIN or COMMIT sent")
    func newTurnIsOneStatement() async throws {
        try await withSQLiteStore { store throws in
            let conversation = Sample.conversation(userId: alice)
            let first = Sample.turn(conversationId: conversation.id, userId: alice)
            let (opened, openedCounts) = try await store.counting { try await store.beginTurn(first, newConversation: conversation) }
            #expect(opened == .created)
            var next = Sample.turn(conversationId: conversation.id, userId: alice, at: 5)
            next.ownerInstanceId = "i_this_process"
            let (continued, continuedCounts) = try await store.counting { try await store.beginTurn(next, newConversation: nil) }
            #expect(continued == .created)
            for counts in [openedCounts, continuedCounts] {
                #expect(counts.commits == 1)
                #expect(counts.writes == 1)
                #expect(counts.transactionStatements == 0)
            }
            // Everything a turn holds was written.
            let messages = try await store.messages(conversationId: conversation.id, userId: alice)
            #expect(messages.rounded == [first.userMessage, first.assistantMessage, next.userMessage, next.assistantMessage].rounded)
            #expect(try await store.conversation(id: conversation.id, userId: alice)?.rounded == conversation.rounded.bumped(to: next))
            #expect(try await store.turn(streamId: next.streamId, userId: alice)?.rounded == next.rounded)
            #expect(try await store.orphanedTurns(notAliveSince: .distantFuture, limit: 10).map(\.streamId) == [first.streamId, next.streamId])
        }
    }

    @Test("sending a message again returns the stored turn and changes nothing, not even the conversation's time")
    func duplicateSendReturnsTheStoredTurn() async throws {
        try await withSQLiteStore { store throws in
            let conversation = Sample.conversation(userId: alice)
            let first = Sample.turn(conversationId: conversation.id, userId: alice)
            #expect(try await store.beginTurn(first, newConversation: conversation) == .created)
            try await store.finishTurn(TurnCompletion(streamId: first.streamId, userId: alice, assistantText: "Rest.", status: .complete, events: Sample.events(2)))
            let before = try await snapshot(store)

            // A retry comes later, with fresh stream and message ids.
            let retry = Sample.turn(conversationId: conversation.id, userId: alice, clientMessageId: first.clientMessageId, at: 60)
            let stored = try #require(try await store.beginTurn(retry, newConversation: nil).duplicate)
            #expect(stored.streamId == first.streamId)
            #expect(stored.userMessage.rounded == first.userMessage.rounded)
            #expect(stored.assistantMessage.text == "Rest.")
            #expect(stored.events == Sample.events(2))
            #expect(try await snapshot(store) == before)

            // The same client message id from another user is that user's own new message.
            let theirs = Sample.conversation(userId: bob)
            let bobsTurn = Sample.turn(conversationId: theirs.id, userId: bob, clientMessageId: first.clientMessageId)
            #expect(try await store.beginTurn(bobsTurn, newConversation: theirs) == .created)
        }
    }

    @Test("a message naming another user's conversation is refused and writes nothing there")
    func foreignConversationIsRefused() async throws {
        try await withSQLiteStore { store throws in
            let theirs = Sample.conversation(userId: bob)
            #expect(try await store.beginTurn(Sample.turn(conversationId: theirs.id, userId: bob), newConversation: theirs) == .created)
            let before = try await snapshot(store)
            let intrusion = Sample.turn(conversationId: theirs.id, userId: alice, at: 90)
            await #expect(throws: StoreError.conversationNotFound) {
                try await store.beginTurn(intrusion, newConversation: nil)
            }
            #expect(try await snapshot(store) == before)
            #expect(try await store.turn(clientMessageId: intrusion.clientMessageId, userId: alice) == nil)
        }
    }

    @Test("a turn that fails at its last write leaves nothing behind, and the messages sent with it are stored")
    func failureMidTurnWritesNothing() async throws {
        try await withSQLiteStore { store throws in
            let conversation = Sample.conversation(userId: alice)
            let first = Sample.turn(conversationId: conversation.id, userId: alice)
            #expect(try await store.beginTurn(first, newConversation: conversation) == .created)
            let before = try await snapshot(store)

            // The new conversation, the turn and the user message are written before the
            // assistant message, whose id is taken.
            let proposed = Sample.conversation(userId: alice, title: "Secret title 4K", at: 30)
            var clash = Sample.turn(conversationId: proposed.id, userId: alice, text: "secret text 8P", at: 30)
            clash.assistantMessage.id = first.userMessage.id
            do {
                _ = try await store.beginTurn(clash, newConversation: proposed)
                Issue.record("a turn reusing a message id was accepted")
            } catch {
                #expect(error is StoreError)
                #expect(!"\(error)".contains("4K") && !"\(error)".contains("8P"))
            }
            #expect(try await snapshot(store) == before)
            #expect(try await store.conversation(id: proposed.id, userId: alice) == nil)
            #expect(try await store.rawQuery("SELECT count(*) AS n FROM messages WHERE id = ?", [clash.userMessage.id]).first?["n"] == "0")

            // Sent together with others (committed in one statement, or alone after it fails),
            // it fails alone.
            let others = (0..<12).map { Sample.turn(conversationId: conversation.id, userId: alice, at: 40 + Double($0)) }
            let failing = clash
            let results = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
                group.addTask { (failing.streamId, (try? await store.beginTurn(failing, newConversation: proposed)) != nil) }
                for turn in others {
                    group.addTask { (turn.streamId, try await store.beginTurn(turn, newConversation: nil) == .created) }
                }
                return try await group.reduce(into: [String: Bool]()) { $0[$1.0] = $1.1 }
            }
            #expect(results[clash.streamId] == false)
            #expect(others.allSatisfy { results[$0.streamId] == true })
            #expect(try await store.messages(conversationId: conversation.id, userId: alice).count == 2 + 2 * others.count)
            #expect(try await store.conversation(id: proposed.id, userId: alice) == nil)

            // The client message id was not consumed.
            let retry = Sample.turn(conversationId: conversation.id, userId: alice, clientMessageId: clash.clientMessageId, at: 70)
            #expect(try await store.beginTurn(retry, newConversation: nil) == .created)
        }
    }

    @Test("messages sent at once are stored by one statement, and each sender gets the answer a lone send would get")
    func batchIsOneStatement() async throws {
        try await withSQLiteStore { store throws in
            let mine = Sample.conversation(userId: alice)
            let theirs = Sample.conversation(userId: bob)
            let earlier = Sample.turn(conversationId: mine.id, userId: alice)
            #expect(try await store.beginTurn(earlier, newConversation: mine) == .created)
            #expect(try await store.beginTurn(Sample.turn(conversationId: theirs.id, userId: bob), newConversation: theirs) == .created)
            let before = try await snapshot(store)

            let opened = Sample.conversation(userId: alice, at: 20)
            let fresh = Sample.turn(conversationId: mine.id, userId: alice, clientMessageId: "twice", at: 21)
            let items: [(turn: Turn, newConversation: Conversation?)] = [
                (Sample.turn(conversationId: mine.id, userId: alice, clientMessageId: earlier.clientMessageId, at: 20), nil),
                (Sample.turn(conversationId: theirs.id, userId: alice, at: 20), nil),
                (fresh, nil),
                (Sample.turn(conversationId: mine.id, userId: alice, clientMessageId: "twice", at: 22), nil),
                (Sample.turn(conversationId: opened.id, userId: alice, at: 23), opened),
                (Sample.turn(conversationId: theirs.id, userId: bob, at: 24), nil),
            ]
            let (results, counts) = try await store.counting {
                try await store.connection.withConnection("test") { connection in
                    try await TurnSQL.beginMany(items, on: connection)
                }
            }
            #expect(counts.writes == 1)
            #expect(counts.commits == 1)
            #expect(counts.transactionStatements == 0)
            #expect(try results[0].get().duplicate?.streamId == earlier.streamId)
            #expect(throws: StoreError.conversationNotFound) { try results[1].get() }
            #expect(try results[2].get() == .created)
            #expect(try results[3].get().duplicate?.streamId == fresh.streamId)
            #expect(try results[4].get() == .created)
            #expect(try results[5].get() == .created)

            // Exactly the three new turns were written.
            let after = try await snapshot(store)
            #expect(after.first?["turns"] == "5")
            #expect(after.first?["messages"] == "10")
            #expect(after.first?["conversations"] == "3")
            #expect(after != before)
            #expect(try await store.messages(conversationId: mine.id, userId: alice).map(\.id) == [earlier.userMessage.id, earlier.assistantMessage.id, fresh.userMessage.id, fresh.assistantMessage.id])
            #expect(try await store.conversation(id: mine.id, userId: alice)?.rounded == mine.rounded.bumped(to: fresh))
            #expect(try await store.conversation(id: opened.id, userId: alice)?.rounded == opened.rounded.bumped(to: items[4].turn))
            #expect(try await store.conversation(id: theirs.id, userId: bob)?.rounded == theirs.rounded.bumped(to: items[5].turn))

            // A turn failing part-way fails the statement, and none of its batch is kept (the
            // writer then retries each turn alone).
            var clash = Sample.turn(conversationId: mine.id, userId: alice, at: 30)
            clash.assistantMessage.id = earlier.userMessage.id
            let good = Sample.turn(conversationId: mine.id, userId: alice, at: 31)
            await #expect(throws: (any Error).self) {
                try await store.connection.withConnection("test") { connection in
                    try await TurnSQL.beginMany([(good, nil), (clash, nil)], on: connection)
                }
            }
            #expect(try await snapshot(store) == after)
        }
    }

    @Test("a database last migrated by the previous build upgrades, keeps its turns and takes new ones")
    func databaseFromPreviousMigrationUpgrades() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("store.sqlite")
        let previous = SQLiteMigration.all.filter { $0.version <= 4 }
        let conversation = Sample.conversation(userId: alice)
        let theirs = Sample.conversation(userId: bob)
        var old = Sample.turn(conversationId: conversation.id, userId: alice)
        old.ownerInstanceId = "i_old"
        try await withSQLiteStore(at: path, migrations: previous) { store throws in
            // Rows as the build before migration 5 wrote them.
            try await store.createConversation(conversation)
            try await store.createConversation(theirs)
            _ = try await store.rawQuery(
                "INSERT INTO turns (stream_id, user_id, conversation_id, client_message_id, owner_instance) VALUES (?, ?, ?, ?, ?)",
                [old.streamId, alice, conversation.id, old.clientMessageId, "i_old"]
            )
            for (message, role, status) in [(old.userMessage, "user", "complete"), (old.assistantMessage, "assistant", "streaming")] {
                _ = try await store.rawQuery(
                    "INSERT INTO messages (id, conversation_id, stream_id, user_id, role, text, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, CAST(? AS REAL))",
                    [message.id, conversation.id, old.streamId, alice, role, message.text, status, "\(message.createdAt.timeIntervalSince1970)"]
                )
            }
            #expect(try await store.rawQuery("SELECT name FROM sqlite_master WHERE name = 'new_turns'").isEmpty)
        }
        try await withSQLiteStore(at: path) { store throws in
            let versions = try await store.rawQuery("SELECT version FROM schema_migrations ORDER BY version")
            #expect(versions.map { $0["version"] } == SQLiteMigration.all.map { "\($0.version)" })
            #expect(try await store.turn(streamId: old.streamId, userId: alice)?.rounded == old.rounded)
            // The old turn's client message id is still taken.
            let resend = Sample.turn(conversationId: conversation.id, userId: alice, clientMessageId: old.clientMessageId, at: 20)
            #expect(try await store.beginTurn(resend, newConversation: nil).duplicate?.streamId == old.streamId)
            // A new message in the old conversation follows the old one.
            let next = Sample.turn(conversationId: conversation.id, userId: alice, at: 30)
            #expect(try await store.beginTurn(next, newConversation: nil) == .created)
            let messages = try await store.messages(conversationId: conversation.id, userId: alice)
            #expect(messages.map(\.id) == [old.userMessage.id, old.assistantMessage.id, next.userMessage.id, next.assistantMessage.id])
            #expect(try await store.conversation(id: conversation.id, userId: alice)?.rounded == conversation.rounded.bumped(to: next))
            await #expect(throws: StoreError.conversationNotFound) {
                try await store.beginTurn(Sample.turn(conversationId: theirs.id, userId: alice, at: 40), newConversation: nil)
            }
        }
        // The previous build can still open the upgraded file (a deploy rolled back) and read it.
        try await withSQLiteStore(at: path, migrations: previous) { store throws in
            #expect(try await store.messages(conversationId: conversation.id, userId: alice).count == 4)
        }
    }
}
