import Foundation
import MedViewCore
import Synchronization
import Testing

/// The behaviour every ``ConversationStore`` must show, as reusable checks.
///
/// Each check takes a factory that makes a fresh, empty store, and tears the store down itself.
/// Run them all with ``Check/allCases`` (see the per-implementation suites).
enum ConversationStoreConformance {
    /// One named check, so that a parameterized test reports each by name.
    enum Check: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case createListAndRead
        case userIsolation
        case beginTurnRequiresConversation
        case duplicateBeginTurn
        case concurrentDuplicates
        case concurrentWriters
        case failedBeginTurnWritesNothing
        case finishTurn
        case messageOrder
        case deleteErasesEverything
        case orphanedTurns
        case recentContextAndSafetyState
        case durableReplayLog
        case healthAndClose
        case textIsStoredExactly
        case beginTurnWithWorkMeanwhile

        var testDescription: String { rawValue }

        func run(_ makeStore: StoreFactory) async throws {
            switch self {
            case .createListAndRead: try await ConversationStoreConformance.createListAndRead(makeStore)
            case .userIsolation: try await ConversationStoreConformance.userIsolation(makeStore)
            case .beginTurnRequiresConversation: try await ConversationStoreConformance.beginTurnRequiresConversation(makeStore)
            case .duplicateBeginTurn: try await ConversationStoreConformance.duplicateBeginTurn(makeStore)
            case .concurrentDuplicates: try await ConversationStoreConformance.concurrentDuplicates(makeStore)
            case .concurrentWriters: try await ConversationStoreConformance.concurrentWriters(makeStore)
            case .failedBeginTurnWritesNothing: try await ConversationStoreConformance.failedBeginTurnWritesNothing(makeStore)
            case .finishTurn: try await ConversationStoreConformance.finishTurn(makeStore)
            case .messageOrder: try await ConversationStoreConformance.messageOrder(makeStore)
            case .deleteErasesEverything: try await ConversationStoreConformance.deleteErasesEverything(makeStore)
            case .orphanedTurns: try await ConversationStoreConformance.orphanedTurns(makeStore)
            case .recentContextAndSafetyState: try await ConversationStoreConformance.recentContextAndSafetyState(makeStore)
            case .durableReplayLog: try await ConversationStoreConformance.durableReplayLog(makeStore)
            case .healthAndClose: try await ConversationStoreConformance.healthAndClose(makeStore)
            case .textIsStoredExactly: try await ConversationStoreConformance.textIsStoredExactly(makeStore)
            case .beginTurnWithWorkMeanwhile: try await ConversationStoreConformance.beginTurnWithWorkMeanwhile(makeStore)
            }
        }
    }

    static let alice = "u_alice"
    static let bob = "u_bob"

    /// Text comes back exactly as it was stored: U+0000, other control characters and
    /// zero-width characters included, in conversation titles, user messages, answers and
    /// client message ids (the engine refuses such text from patients, but a model's answer can
    /// hold anything, and a store must never cut what it was given).
    static func textIsStoredExactly(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            // A store that cannot hold U+0000 (PostgreSQL text) must refuse it with an error and
            // keep nothing, never cut the text; the rest of the check then runs without NUL.
            // (The engine never hands a store NUL: patients' text with it is refused at the edge,
            // and model text is cleaned before it is chunked.)
            var nul = "\u{0}"
            do {
                try await store.createConversation(Sample.conversation(userId: alice, title: "Probe\u{0}nul", at: 1))
                #expect(try await store.conversations(userId: alice, limit: 10).map(\.title) == ["Probe\u{0}nul"])
                _ = try await store.deleteConversation(id: try #require(try await store.conversations(userId: alice, limit: 10).first?.id), userId: alice)
            } catch {
                #expect(try await store.conversations(userId: alice, limit: 10).isEmpty, "a refused write must keep nothing")
                nul = ""
            }
            // Ids are stored in clear even where text is encrypted (so an encrypted PostgreSQL
            // store holds NUL in text but not in ids): probe ids separately, with a read.
            var idNul = "\u{0}"
            do {
                _ = try await store.turn(clientMessageId: "probe\u{0}", userId: alice)
            } catch {
                idNul = ""
            }
            let odd = "before\(nul)after \u{1}\u{7F}\u{200B}\u{FEFF} é 👩‍👩‍👧 \(nul)"
            let titled = Sample.conversation(userId: alice, title: "Title\(nul)hidden")
            try await store.createConversation(titled)
            #expect(try await store.conversation(id: titled.id, userId: alice)?.title == "Title\(nul)hidden")
            #expect(try await store.conversations(userId: alice, limit: 10).map(\.title) == ["Title\(nul)hidden"])

            let opening = Sample.conversation(userId: alice, title: "Opened\(nul)by a turn", at: 5)
            let turn = Sample.turn(conversationId: opening.id, userId: alice, clientMessageId: "id\(idNul)1", text: odd, at: 5)
            #expect(try await store.beginTurn(turn, newConversation: opening) == .created)
            try await store.finishTurn(TurnCompletion(streamId: turn.streamId, userId: alice, assistantText: "answer\(nul)tail", status: .complete, events: Sample.events(2)))
            #expect(try await store.conversation(id: opening.id, userId: alice)?.title == "Opened\(nul)by a turn")
            let messages = try await store.messages(conversationId: opening.id, userId: alice)
            #expect(messages.map(\.text) == [odd, "answer\(nul)tail"])
            let read = try #require(try await store.turn(streamId: turn.streamId, userId: alice))
            #expect(read.userMessage.text == odd)
            #expect(read.assistantMessage.text == "answer\(nul)tail")
            #expect(read.clientMessageId == "id\(idNul)1")
            #expect(try await store.turn(clientMessageId: "id\(idNul)1", userId: alice)?.streamId == turn.streamId)
            #expect(try await store.turn(clientMessageId: "id", userId: alice) == nil)
            // The same id again is a duplicate, found by its full id.
            let again = Sample.turn(conversationId: opening.id, userId: alice, clientMessageId: "id\(idNul)1", text: odd, at: 6)
            guard case .duplicate(let stored) = try await store.beginTurn(again, newConversation: nil) else {
                Issue.record("the same client message id must be a duplicate")
                return
            }
            #expect(stored.streamId == turn.streamId)
        }
    }

    /// Conversations are listed most recently updated first, read back intact (to the
    /// millisecond), and a new turn moves its conversation to the top.
    static func createListAndRead(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let first = Sample.conversation(userId: alice, title: "First", at: 0)
            let second = Sample.conversation(userId: alice, title: "Second", at: 10)
            let third = Sample.conversation(userId: alice, title: "Third", at: 5)
            for conversation in [first, second, third] {
                try await store.createConversation(conversation)
            }

            #expect(try await store.conversations(userId: alice, limit: 10).rounded == [second, third, first].rounded)
            #expect(try await store.conversations(userId: alice, limit: 2).map(\.id) == [second.id, third.id])
            #expect(try await store.conversations(userId: alice, limit: 0).isEmpty)

            let read = try #require(try await store.conversation(id: first.id, userId: alice))
            #expect(read.rounded == first.rounded)
            #expect(abs(read.createdAt.timeIntervalSince(first.createdAt)) < 0.001)
            #expect(try await store.conversation(id: "c_missing", userId: alice) == nil)
            #expect(try await store.messages(conversationId: first.id, userId: alice).isEmpty)

            // A turn in the oldest conversation makes it the most recent.
            let turn = Sample.turn(conversationId: first.id, userId: alice, at: 20)
            #expect(try await store.beginTurn(turn, newConversation: nil) == .created)
            let listed = try await store.conversations(userId: alice, limit: 10)
            #expect(listed.map(\.id) == [first.id, second.id, third.id])
            #expect(ms(listed[0].updatedAt) == ms(turn.assistantMessage.createdAt))
            #expect(ms(listed[0].createdAt) == ms(first.createdAt))

            // A turn that brings its own new conversation creates it.
            let fresh = Sample.conversation(userId: alice, title: "Fresh", at: 30)
            let opening = Sample.turn(conversationId: fresh.id, userId: alice, at: 30)
            #expect(try await store.beginTurn(opening, newConversation: fresh) == .created)
            let stored = try #require(try await store.conversation(id: fresh.id, userId: alice))
            #expect(stored.title == "Fresh")
            #expect(try await store.conversations(userId: alice, limit: 1).map(\.id) == [fresh.id])
            #expect(try await store.messages(conversationId: fresh.id, userId: alice).map(\.id)
                == [opening.userMessage.id, opening.assistantMessage.id])
        }
    }

    /// Another user's conversation answers as if it did not exist, everywhere.
    static func userIsolation(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let conversation = Sample.conversation(userId: alice)
            try await store.createConversation(conversation)
            let turn = Sample.turn(conversationId: conversation.id, userId: alice)
            _ = try await store.beginTurn(turn, newConversation: nil)
            let messagesBefore = try await store.messages(conversationId: conversation.id, userId: alice)
            #expect(messagesBefore.count == 2)

            #expect(try await store.conversation(id: conversation.id, userId: bob) == nil)
            #expect(try await store.conversations(userId: bob, limit: 10).isEmpty)
            #expect(try await store.messages(conversationId: conversation.id, userId: bob).isEmpty)
            #expect(try await store.turn(streamId: turn.streamId, userId: bob) == nil)
            #expect(try await store.deleteConversation(id: conversation.id, userId: bob) == false)
            #expect(try await store.conversation(id: conversation.id, userId: alice) != nil)

            let intrusion = Sample.turn(conversationId: conversation.id, userId: bob)
            await #expect(throws: StoreError.conversationNotFound) {
                try await store.beginTurn(intrusion, newConversation: nil)
            }
            #expect(try await store.turn(streamId: intrusion.streamId, userId: bob) == nil)

            // Bob cannot finish Alice's stream either.
            try await store.finishTurn(TurnCompletion(
                streamId: turn.streamId, userId: bob, assistantText: "overwritten", status: .complete, events: Sample.events(2)
            ))
            let untouched = try #require(try await store.turn(streamId: turn.streamId, userId: alice))
            #expect(untouched.assistantMessage.text == "")
            #expect(untouched.assistantMessage.status == .streaming)
            #expect(untouched.events.isEmpty)
            #expect(try await store.messages(conversationId: conversation.id, userId: alice) == messagesBefore)

            // The same client message id is a separate key for another user.
            let bobs = Sample.conversation(userId: bob)
            let bobTurn = Sample.turn(conversationId: bobs.id, userId: bob, clientMessageId: turn.clientMessageId)
            #expect(try await store.beginTurn(bobTurn, newConversation: bobs) == .created)
            #expect(try await store.conversations(userId: bob, limit: 10).map(\.id) == [bobs.id])
            #expect(try await store.conversations(userId: alice, limit: 10).map(\.id) == [conversation.id])
        }
    }

    /// A turn in a conversation that does not exist is refused and writes nothing.
    static func beginTurnRequiresConversation(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let turn = Sample.turn(conversationId: "c_missing", userId: alice)
            await #expect(throws: StoreError.conversationNotFound) {
                try await store.beginTurn(turn, newConversation: nil)
            }
            #expect(try await store.turn(streamId: turn.streamId, userId: alice) == nil)
            #expect(try await store.conversations(userId: alice, limit: 10).isEmpty)
            // The client message id was not consumed.
            let conversation = Sample.conversation(id: "c_missing", userId: alice)
            #expect(try await store.beginTurn(turn, newConversation: conversation) == .created)
        }
    }

    /// `beginTurn(_:newConversation:whenStored:meanwhile:)` (what the engine does beside the
    /// write): the write does not wait for the work beside it (that work sees the turn stored,
    /// else it gives up after 30 s: generous, as a test process whose other suites hold Swift's
    /// threads can delay the write for seconds), and the work's result comes back with a new
    /// turn, with a duplicate, not with a missing conversation. `whenStored` is called once for
    /// the new turn, before `beginTurn` returns, and only once the turn is stored (a read begun
    /// from it finds the turn: the engine sends the model's request from there); never for a
    /// duplicate or a missing conversation.
    static func beginTurnWithWorkMeanwhile(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let conversation = Sample.conversation(userId: alice)
            let turn = Sample.turn(conversationId: conversation.id, userId: alice)
            // The reads begun when the store said the turn was stored.
            let told = Mutex<[Task<Bool, Never>]>([])
            let whenStored: @Sendable () -> Void = {
                told.withLock { $0.append(Task { (try? await store.turn(streamId: turn.streamId, userId: alice)) != nil }) }
            }
            let (result, sawTurnStored) = try await store.beginTurn(turn, newConversation: conversation, whenStored: whenStored) { () async -> Bool in
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline {
                    if (try? await store.turn(streamId: turn.streamId, userId: alice)) != nil { return true }
                    try? await Task.sleep(for: .milliseconds(1))
                }
                return false
            }
            #expect(result == .created)
            #expect(sawTurnStored)
            #expect(try await store.messages(conversationId: conversation.id, userId: alice).count == 2)
            let reads = told.withLock { $0 }
            #expect(reads.count == 1)
            for read in reads { #expect(await read.value) }

            let notTold = Atomic(0)
            let retry = Sample.turn(conversationId: conversation.id, userId: alice, clientMessageId: turn.clientMessageId, at: 50)
            let (again, answer) = try await store.beginTurn(retry, newConversation: nil, whenStored: { notTold.add(1, ordering: .relaxed) }) { 42 }
            #expect(try #require(again.duplicate).rounded == turn.rounded)
            #expect(answer == 42)
            #expect(try await store.turn(streamId: retry.streamId, userId: alice) == nil)

            let stray = Sample.turn(conversationId: "c_missing", userId: alice)
            await #expect(throws: StoreError.conversationNotFound) {
                _ = try await store.beginTurn(stray, newConversation: nil, whenStored: { notTold.add(1, ordering: .relaxed) }) { 0 }
            }
            #expect(try await store.turn(streamId: stray.streamId, userId: alice) == nil)
            #expect(notTold.load(ordering: .relaxed) == 0)
        }
    }

    /// Beginning the same client message id again returns the stored turn and writes nothing.
    static func duplicateBeginTurn(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let conversation = Sample.conversation(userId: alice)
            let turn = Sample.turn(conversationId: conversation.id, userId: alice)
            #expect(try await store.beginTurn(turn, newConversation: conversation) == .created)

            let again = try #require(try await store.beginTurn(turn, newConversation: nil).duplicate)
            #expect(again.rounded == turn.rounded)

            // A retry with fresh stream and message ids (and even a fresh conversation) still
            // answers with the original turn and creates nothing.
            let retryConversation = Sample.conversation(userId: alice, at: 50)
            let retry = Sample.turn(conversationId: retryConversation.id, userId: alice, clientMessageId: turn.clientMessageId, at: 50)
            let duplicate = try #require(try await store.beginTurn(retry, newConversation: retryConversation).duplicate)
            #expect(duplicate.rounded == turn.rounded)
            #expect(try await store.conversation(id: retryConversation.id, userId: alice) == nil)
            #expect(try await store.turn(streamId: retry.streamId, userId: alice) == nil)
            #expect(try await store.messages(conversationId: conversation.id, userId: alice).count == 2)
            #expect(try await store.conversations(userId: alice, limit: 10).map(\.rounded) == [conversation.rounded.bumped(to: turn)])

            // Once finished, the duplicate carries the answer and the replay log.
            let events = Sample.events(3)
            try await store.finishTurn(TurnCompletion(
                streamId: turn.streamId, userId: alice, assistantText: "Drink water.", status: .complete, events: events
            ))
            let finished = try #require(try await store.beginTurn(turn, newConversation: nil).duplicate)
            #expect(finished.assistantMessage.text == "Drink water.")
            #expect(finished.assistantMessage.status == .complete)
            #expect(finished.events == events)
        }
    }

    /// Racing `beginTurn` calls with one client message id yield exactly one `.created`.
    static func concurrentDuplicates(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let conversation = Sample.conversation(userId: alice)
            try await store.createConversation(conversation)
            let attempts = (0..<8).map { _ in
                Sample.turn(conversationId: conversation.id, userId: alice, clientMessageId: "m_same")
            }
            let results = try await withThrowingTaskGroup(of: BeginTurnResult.self) { group in
                for attempt in attempts {
                    group.addTask { try await store.beginTurn(attempt, newConversation: nil) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter(\.isCreated).count == 1)
            let duplicates = results.compactMap(\.duplicate)
            #expect(duplicates.count == attempts.count - 1)
            let winner = try #require(duplicates.first?.streamId)
            #expect(attempts.contains { $0.streamId == winner })
            #expect(duplicates.allSatisfy { $0.streamId == winner })
            #expect(try await store.messages(conversationId: conversation.id, userId: alice).count == 2)

            // Retries that each propose a new conversation leave exactly one conversation.
            let retries = (0..<6).map { index in
                let proposed = Sample.conversation(userId: bob, at: Double(index))
                return (Sample.turn(conversationId: proposed.id, userId: bob, clientMessageId: "m_new"), proposed)
            }
            let opened = try await withThrowingTaskGroup(of: BeginTurnResult.self) { group in
                for (turn, proposed) in retries {
                    group.addTask { try await store.beginTurn(turn, newConversation: proposed) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(opened.filter(\.isCreated).count == 1)
            #expect(try await store.conversations(userId: bob, limit: 10).count == 1)
        }
    }

    /// Many writers at once (each beginning and finishing turns in its own conversation, plus
    /// readers) all succeed and leave consistent data.
    static func concurrentWriters(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let writers = 12
            let turnsPerWriter = 3
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        let conversation = Sample.conversation(userId: alice, at: Double(writer))
                        for index in 0..<turnsPerWriter {
                            let turn = Sample.turn(conversationId: conversation.id, userId: alice, at: Double(index))
                            let result = try await store.beginTurn(turn, newConversation: index == 0 ? conversation : nil)
                            #expect(result == .created)
                            try await store.finishTurn(TurnCompletion(
                                streamId: turn.streamId, userId: alice, assistantText: "answer \(index)",
                                status: .complete, events: Sample.events(4)
                            ))
                            _ = try await store.conversations(userId: alice, limit: 5)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let conversations = try await store.conversations(userId: alice, limit: 100)
            #expect(conversations.count == writers)
            for conversation in conversations {
                let messages = try await store.messages(conversationId: conversation.id, userId: alice)
                #expect(messages.count == 2 * turnsPerWriter)
                #expect(messages.filter { $0.role == .assistant }.map(\.text) == (0..<turnsPerWriter).map { "answer \($0)" })
            }
            #expect(try await store.orphanedTurns(notAliveSince: .distantFuture, limit: 100).isEmpty)
        }
    }

    /// A `beginTurn` that fails part-way (here: a stream id already in use) writes nothing, and
    /// its error carries no user text.
    static func failedBeginTurnWritesNothing(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let conversation = Sample.conversation(userId: alice)
            let turn = Sample.turn(conversationId: conversation.id, userId: alice)
            _ = try await store.beginTurn(turn, newConversation: conversation)

            let secret = "Confidential title 7Q"
            let proposed = Sample.conversation(userId: alice, title: secret, at: 40)
            let clash = Sample.turn(conversationId: proposed.id, userId: alice, streamId: turn.streamId, text: "secret text 9Z", at: 40)
            do {
                _ = try await store.beginTurn(clash, newConversation: proposed)
                Issue.record("a turn reusing a stream id was accepted")
            } catch {
                #expect(error is StoreError)
                #expect(!"\(error)".contains("7Q"))
                #expect(!"\(error)".contains("9Z"))
            }
            #expect(try await store.conversation(id: proposed.id, userId: alice) == nil)
            #expect(try await store.conversations(userId: alice, limit: 10).map(\.id) == [conversation.id])
            #expect(try await store.messages(conversationId: conversation.id, userId: alice).count == 2)
            // The client message id was not consumed by the failed attempt.
            let retry = Sample.turn(conversationId: conversation.id, userId: alice, clientMessageId: clash.clientMessageId)
            #expect(try await store.beginTurn(retry, newConversation: nil) == .created)
        }
    }

    /// `finishTurn` stores text, status and the replay log; `turn` returns them to the owner only.
    static func finishTurn(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let conversation = Sample.conversation(userId: alice)
            let turn = Sample.turn(conversationId: conversation.id, userId: alice)
            _ = try await store.beginTurn(turn, newConversation: conversation)

            let streaming = try #require(try await store.turn(streamId: turn.streamId, userId: alice))
            #expect(streaming.rounded == turn.rounded)
            #expect(streaming.assistantMessage.status == .streaming)
            #expect(streaming.events.isEmpty)

            let events = Sample.events(5)
            try await store.finishTurn(TurnCompletion(
                streamId: turn.streamId, userId: alice, assistantText: "Keep a sleep diary.", status: .complete,
                events: events.reversed()
            ))
            let finished = try #require(try await store.turn(streamId: turn.streamId, userId: alice))
            #expect(finished.assistantMessage.text == "Keep a sleep diary.")
            #expect(finished.assistantMessage.status == .complete)
            #expect(finished.events == events)
            #expect(finished.userMessage.rounded == turn.userMessage.rounded)
            #expect(finished.clientMessageId == turn.clientMessageId)
            #expect(finished.conversationId == conversation.id)
            #expect(try await store.turn(streamId: turn.streamId, userId: bob) == nil)
            #expect(try await store.turn(streamId: "s_missing", userId: alice) == nil)

            let messages = try await store.messages(conversationId: conversation.id, userId: alice)
            #expect(messages.map(\.role) == [.user, .assistant])
            #expect(messages.map(\.text) == [turn.userMessage.text, "Keep a sleep diary."])
            #expect(messages.map(\.status) == [.complete, .complete])
            #expect(messages.allSatisfy { $0.streamId == turn.streamId && $0.conversationId == conversation.id && $0.userId == alice })

            // Finishing again does nothing: the first ending stored wins (a recovered answer's
            // late ending from a process taken for dead must not overwrite it).
            try await store.finishTurn(TurnCompletion(
                streamId: turn.streamId, userId: alice, assistantText: "Keep a", status: .cancelled, events: Sample.events(2)
            ))
            let kept = try #require(try await store.turn(streamId: turn.streamId, userId: alice))
            #expect(kept.assistantMessage.status == .complete)
            #expect(kept.assistantMessage.text == "Keep a sleep diary.")
            #expect(kept.events == events)

            // A long replay log survives intact and in order.
            let long = Sample.turn(conversationId: conversation.id, userId: alice, at: 5)
            _ = try await store.beginTurn(long, newConversation: nil)
            let manyEvents = Sample.events(450)
            try await store.finishTurn(TurnCompletion(
                streamId: long.streamId, userId: alice, assistantText: String(repeating: "word ", count: 2000),
                status: .failed, events: manyEvents
            ))
            let longTurn = try #require(try await store.turn(streamId: long.streamId, userId: alice))
            #expect(longTurn.events == manyEvents)
            #expect(longTurn.assistantMessage.status == .failed)

            // Finishing a stream nobody owns is a no-op, not an error.
            try await store.finishTurn(TurnCompletion(
                streamId: "s_missing", userId: alice, assistantText: "x", status: .complete, events: []
            ))
            #expect(try await store.turn(streamId: "s_missing", userId: alice) == nil)
        }
    }

    /// Messages come back in write order (user before assistant, turns in order), whatever
    /// their timestamps and whichever turn finished first.
    static func messageOrder(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let conversation = Sample.conversation(userId: alice)
            let other = Sample.conversation(userId: alice)
            try await store.createConversation(conversation)
            try await store.createConversation(other)
            // Timestamps run backwards and collide, so ordering by time would be wrong.
            let turns = [100.0, 50.0, 50.0].map { Sample.turn(conversationId: conversation.id, userId: alice, at: $0) }
            for (index, turn) in turns.enumerated() {
                _ = try await store.beginTurn(turn, newConversation: nil)
                _ = try await store.beginTurn(Sample.turn(conversationId: other.id, userId: alice, at: Double(index)), newConversation: nil)
            }
            for turn in turns.reversed() {
                try await store.finishTurn(TurnCompletion(
                    streamId: turn.streamId, userId: alice, assistantText: "answer", status: .complete, events: Sample.events(1)
                ))
            }
            let expected = turns.flatMap { [$0.userMessage.id, $0.assistantMessage.id] }
            let messages = try await store.messages(conversationId: conversation.id, userId: alice)
            #expect(messages.map(\.id) == expected)
            #expect(messages.map(\.role) == [.user, .assistant, .user, .assistant, .user, .assistant])
            #expect(try await store.messages(conversationId: other.id, userId: alice).count == 6)
        }
    }

    /// Deleting a conversation erases its turns, messages and replay logs, and nothing else.
    static func deleteErasesEverything(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let doomed = Sample.conversation(userId: alice, at: 10)
            let kept = Sample.conversation(userId: alice, at: 0)
            try await store.createConversation(kept)
            let doomedTurns = [1.0, 2.0].map { Sample.turn(conversationId: doomed.id, userId: alice, at: $0) }
            _ = try await store.beginTurn(doomedTurns[0], newConversation: doomed)
            _ = try await store.beginTurn(doomedTurns[1], newConversation: nil)
            let keptTurn = Sample.turn(conversationId: kept.id, userId: alice, at: 3)
            _ = try await store.beginTurn(keptTurn, newConversation: nil)
            for turn in doomedTurns + [keptTurn] {
                try await store.finishTurn(TurnCompletion(
                    streamId: turn.streamId, userId: alice, assistantText: "answer", status: .complete, events: Sample.events(3)
                ))
            }

            #expect(try await store.deleteConversation(id: doomed.id, userId: bob) == false)
            #expect(try await store.deleteConversation(id: doomed.id, userId: alice) == true)

            #expect(try await store.conversation(id: doomed.id, userId: alice) == nil)
            #expect(try await store.conversations(userId: alice, limit: 10).map(\.id) == [kept.id])
            #expect(try await store.messages(conversationId: doomed.id, userId: alice).isEmpty)
            for turn in doomedTurns {
                #expect(try await store.turn(streamId: turn.streamId, userId: alice) == nil)
            }
            #expect(try await store.deleteConversation(id: doomed.id, userId: alice) == false)

            // The kept conversation is whole.
            #expect(try await store.messages(conversationId: kept.id, userId: alice).count == 2)
            #expect(try await store.turn(streamId: keptTurn.streamId, userId: alice)?.events == Sample.events(3))

            // Nothing can be added to the erased conversation, and a late finish does not revive it.
            await #expect(throws: StoreError.conversationNotFound) {
                try await store.beginTurn(Sample.turn(conversationId: doomed.id, userId: alice), newConversation: nil)
            }
            try await store.finishTurn(TurnCompletion(
                streamId: doomedTurns[0].streamId, userId: alice, assistantText: "late", status: .complete, events: Sample.events(1)
            ))
            #expect(try await store.turn(streamId: doomedTurns[0].streamId, userId: alice) == nil)

            // Its client message ids went with it.
            let reused = Sample.turn(conversationId: kept.id, userId: alice, clientMessageId: doomedTurns[0].clientMessageId)
            #expect(try await store.beginTurn(reused, newConversation: nil) == .created)
        }
    }

    /// A new answer's read is bounded: the latest messages in order, whether older ones exist,
    /// and the safety state saved for the conversation (only the owner's, erased with it).
    static func recentContextAndSafetyState(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let conversation = Sample.conversation(userId: alice)
            try await store.createConversation(conversation)
            var ids: [String] = []
            for i in 0..<7 {
                let turn = Sample.turn(conversationId: conversation.id, userId: alice, at: Double(i + 1))
                _ = try await store.beginTurn(turn, newConversation: nil)
                ids += [turn.userMessage.id, turn.assistantMessage.id]
            }
            let recent = try #require(try await store.recentContext(conversationId: conversation.id, userId: alice, limit: 5))
            #expect(recent.messages.map(\.id) == Array(ids.suffix(5)))
            #expect(recent.hasOlder)
            #expect(recent.safetyState == nil)
            let all = try #require(try await store.recentContext(conversationId: conversation.id, userId: alice, limit: 14))
            #expect(all.messages.map(\.id) == ids)
            #expect(!all.hasOlder)
            #expect(try await store.recentContext(conversationId: conversation.id, userId: bob, limit: 5) == nil)

            let state = #"{"medicines":["warfarin"],"note":"ünïcode ✓"}"#
            try await store.saveSafetyState(conversationId: conversation.id, userId: alice, state: state)
            try await store.saveSafetyState(conversationId: conversation.id, userId: bob, state: "{}") // not bob's: ignored
            #expect(try await store.recentContext(conversationId: conversation.id, userId: alice, limit: 1)?.safetyState == state)
            let newer = #"{"medicines":["warfarin","ibuprofen"]}"#
            try await store.saveSafetyState(conversationId: conversation.id, userId: alice, state: newer)
            #expect(try await store.recentContext(conversationId: conversation.id, userId: alice, limit: 1)?.safetyState == newer)
            #expect(try await store.deleteConversation(id: conversation.id, userId: alice))
            #expect(try await store.recentContext(conversationId: conversation.id, userId: alice, limit: 1) == nil)
        }
    }

    /// Turns still streaming whose owner is silent (no heartbeat since the date, none at all, or
    /// no owner recorded) are orphans, with their persisted events; finished turns and turns of
    /// live owners are not.
    static func orphanedTurns(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let conversation = Sample.conversation(userId: alice)
            try await store.createConversation(conversation)
            func begin(_ owner: String?, at seconds: Double) async throws -> Turn {
                var turn = Sample.turn(conversationId: conversation.id, userId: alice, at: seconds)
                turn.ownerInstanceId = owner
                #expect(try await store.beginTurn(turn, newConversation: nil) == .created)
                return turn
            }
            let live = try await begin("i_live", at: 1)
            let dead = try await begin("i_dead", at: 2)
            let unknown = try await begin("i_never_beat", at: 3)
            let legacy = try await begin(nil, at: 4)
            let finished = try await begin("i_dead", at: 5)
            try await store.finishTurn(TurnCompletion(streamId: finished.streamId, userId: alice, assistantText: "done", status: .complete, events: Sample.events(1)))
            try await store.recordHeartbeat(instanceId: "i_live", at: Sample.date(100))
            try await store.recordHeartbeat(instanceId: "i_dead", at: Sample.date(40))
            // A heartbeat never moves back.
            try await store.recordHeartbeat(instanceId: "i_live", at: Sample.date(10))
            try await store.appendStreamEvents([StreamAppend(streamId: dead.streamId, userId: alice, conversationId: conversation.id, events: Sample.events(3))])

            let orphans = try await store.orphanedTurns(notAliveSince: Sample.date(50), limit: 10)
            #expect(orphans.map(\.streamId) == [dead, unknown, legacy].map(\.streamId))
            #expect(orphans.first?.events == Sample.events(3))
            #expect(orphans.first?.ownerInstanceId == "i_dead")
            #expect(try await store.orphanedTurns(notAliveSince: Sample.date(50), limit: 2).count == 2)
            #expect(try await store.orphanedTurns(notAliveSince: Sample.date(30), limit: 10).map(\.streamId) == [unknown, legacy].map(\.streamId))
            #expect(try await store.orphanedTurns(notAliveSince: .distantFuture, limit: 10).count == 4)
            #expect(try await store.turn(streamId: live.streamId, userId: alice)?.ownerInstanceId == "i_live")
        }
    }

    /// The replay log grows while the answer streams: appends skip events already stored, only
    /// reach the user's own running streams, and are read back after any sequence number; the
    /// ending replaces the log, and nothing is appended after it.
    static func durableReplayLog(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            let conversation = Sample.conversation(userId: alice)
            let turn = Sample.turn(conversationId: conversation.id, userId: alice)
            _ = try await store.beginTurn(turn, newConversation: conversation)
            let bobs = Sample.conversation(userId: bob)
            let bobTurn = Sample.turn(conversationId: bobs.id, userId: bob)
            _ = try await store.beginTurn(bobTurn, newConversation: bobs)
            let all = Sample.events(6)
            func append(_ events: ArraySlice<StreamLogEntry>, to t: Turn, as user: String) async throws {
                try await store.appendStreamEvents([StreamAppend(streamId: t.streamId, userId: user, conversationId: t.conversationId, events: Array(events))])
            }
            try await append(all[0..<3], to: turn, as: alice)
            try await append(all[1..<5], to: turn, as: alice) // overlaps: 2 and 3 are kept once
            try await append(all[0..<2], to: bobTurn, as: alice) // not alice's stream: dropped
            try await store.appendStreamEvents([])

            let page = try #require(try await store.streamEvents(streamId: turn.streamId, userId: alice, after: 2))
            #expect(page.events == Array(all[2..<5]))
            #expect(page.status == .streaming)
            #expect(page.conversationId == conversation.id)
            #expect(try await store.streamEvents(streamId: turn.streamId, userId: alice, after: 0)?.events == Array(all[0..<5]))
            #expect(try await store.streamEvents(streamId: turn.streamId, userId: bob, after: 0) == nil)
            #expect(try await store.streamEvents(streamId: bobTurn.streamId, userId: bob, after: 0)?.events == [])
            #expect(try await store.turn(streamId: turn.streamId, userId: alice)?.events == Array(all[0..<5]))

            try await store.finishTurn(TurnCompletion(streamId: turn.streamId, userId: alice, assistantText: "text", status: .complete, events: all))
            try await append(all[0..<6], to: turn, as: alice)
            try await store.appendStreamEvents([StreamAppend(streamId: turn.streamId, userId: alice, conversationId: conversation.id, events: [StreamLogEntry(seq: 7, json: "{}")])])
            let finished = try #require(try await store.streamEvents(streamId: turn.streamId, userId: alice, after: 0))
            #expect(finished.status == .complete)
            #expect(finished.events == all)

            // An ending shorter than what the journal appended (the guard replaced the answer's
            // tail) cuts the log at its end and overwrites the rows it rewrote.
            let cutTurn = Sample.turn(conversationId: conversation.id, userId: alice, at: 7)
            _ = try await store.beginTurn(cutTurn, newConversation: nil)
            try await append(all[0..<5], to: cutTurn, as: alice)
            let ending = [all[0], all[1], StreamLogEntry(seq: 3, json: #"{"type":"stream.end","seq":3}"#)]
            try await store.finishTurn(TurnCompletion(streamId: cutTurn.streamId, userId: alice, assistantText: "replaced", status: .complete, events: ending))
            #expect(try await store.streamEvents(streamId: cutTurn.streamId, userId: alice, after: 0)?.events == ending)
        }
    }

    /// A healthy store passes `checkHealth`; a closed one refuses calls; closing twice is fine.
    static func healthAndClose(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store throws in
            try await store.checkHealth()
            try await store.close()
            do {
                try await store.checkHealth()
                Issue.record("a closed store reported healthy")
            } catch {
                #expect(error is StoreError)
            }
            await #expect(throws: StoreError.self) {
                try await store.conversations(userId: alice, limit: 10)
            }
            try await store.close()
        }
    }
}

extension Conversation {
    /// The conversation as it should read after `turn` was begun in it.
    func bumped(to turn: Turn) -> Conversation {
        var copy = self
        copy.updatedAt = ms(max(updatedAt, turn.userMessage.createdAt, turn.assistantMessage.createdAt))
        return copy
    }
}
