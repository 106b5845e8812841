import Foundation
import MedViewCore
@testable import MedViewStore
import Synchronization
import Testing

/// The SQLite store reads a conversation's context on its own read-only connection (issue 16):
/// a new message's context is read while the turn is stored, not after it.
@Suite("SQLite reads beside a write", .timeLimit(.minutes(1)))
struct SQLiteReaderTests {
    let alice = "u_alice"

    @Test("a conversation's context is read while a write transaction is open, and shows only what was committed")
    func contextDoesNotWaitForAWrite() async throws {
        try await withSQLiteStore { store throws in
            let conversation = Sample.conversation(userId: alice)
            let first = Sample.turn(conversationId: conversation.id, userId: alice)
            #expect(try await store.beginTurn(first, newConversation: conversation) == .created)
            try await store.saveSafetyState(conversationId: conversation.id, userId: alice, state: "committed")

            let (entered, enteredContinuation) = AsyncStream<Void>.makeStream()
            let (release, releaseContinuation) = AsyncStream<Void>.makeStream()
            let holding = Task {
                try await store.connection.transaction("hold") { connection in
                    _ = try await connection.query("UPDATE conversations SET safety_state = 'uncommitted' WHERE id = ?", [.text(conversation.id)])
                    enteredContinuation.yield()
                    for await _ in release { break }
                }
            }
            for await _ in entered { break }

            // The write holds the connection (and its lock) until released: the read must not wait.
            let read = Task { try await store.recentContext(conversationId: conversation.id, userId: alice, limit: 10) }
            // Were it to wait, only this watchdog would end the write (after 30 s), and say so.
            let finished = Mutex(false)
            let releasedByWatchdog = Mutex(false)
            let watchdog = Task {
                try? await Task.sleep(for: .seconds(30))
                guard !finished.withLock({ $0 }) else { return }
                releasedByWatchdog.withLock { $0 = true }
                releaseContinuation.yield()
            }
            let during = try await read.value
            finished.withLock { $0 = true }
            watchdog.cancel()
            #expect(!releasedByWatchdog.withLock { $0 }, "the read waited for the write")
            #expect(during?.safetyState == "committed")
            #expect(during?.messages.map(\.id) == [first.userMessage.id, first.assistantMessage.id])

            releaseContinuation.yield()
            try await holding.value
            let after = try await store.recentContext(conversationId: conversation.id, userId: alice, limit: 10)
            #expect(after?.safetyState == "uncommitted")
            // Another user's conversation is not found on the reader either.
            #expect(try await store.recentContext(conversationId: conversation.id, userId: "u_bob", limit: 10) == nil)
        }
    }
}
