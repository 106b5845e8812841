import Foundation
import Logging
@testable import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewSafety
import MedViewTestSupport
import Synchronization
import Testing

/// A store that counts full-history reads and the bounded reads a new answer makes.
final class HistoryCountingStore: ConversationStore {
    let inner = InMemoryConversationStore()
    let fullReads = Mutex(0)
    let recentLimits = Mutex<[Int]>([])

    func createConversation(_ conversation: Conversation) async throws { try await inner.createConversation(conversation) }
    func conversation(id: String, userId: String) async throws -> Conversation? { try await inner.conversation(id: id, userId: userId) }
    func conversations(userId: String, limit: Int) async throws -> [Conversation] { try await inner.conversations(userId: userId, limit: limit) }
    func deleteConversation(id: String, userId: String) async throws -> Bool { try await inner.deleteConversation(id: id, userId: userId) }
    func messages(conversationId: String, userId: String) async throws -> [StoredMessage] {
        fullReads.withLock { $0 += 1 }
        return try await inner.messages(conversationId: conversationId, userId: userId)
    }
    func recentContext(conversationId: String, userId: String, limit: Int) async throws -> ConversationContext? {
        recentLimits.withLock { $0.append(limit) }
        return try await inner.recentContext(conversationId: conversationId, userId: userId, limit: limit)
    }
    func saveSafetyState(conversationId: String, userId: String, state: String) async throws { try await inner.saveSafetyState(conversationId: conversationId, userId: userId, state: state) }
    func beginTurn(_ turn: Turn, newConversation: Conversation?) async throws -> BeginTurnResult { try await inner.beginTurn(turn, newConversation: newConversation) }
    func finishTurn(_ completion: TurnCompletion) async throws { try await inner.finishTurn(completion) }
    func turn(streamId: String, userId: String) async throws -> Turn? { try await inner.turn(streamId: streamId, userId: userId) }
    func turn(clientMessageId: String, userId: String) async throws -> Turn? { try await inner.turn(clientMessageId: clientMessageId, userId: userId) }
    func appendStreamEvents(_ appends: [StreamAppend]) async throws { try await inner.appendStreamEvents(appends) }
    func streamEvents(streamId: String, userId: String, after seq: Int) async throws -> StreamEventsPage? { try await inner.streamEvents(streamId: streamId, userId: userId, after: seq) }
    func recordHeartbeat(instanceId: String, at date: Date) async throws { try await inner.recordHeartbeat(instanceId: instanceId, at: date) }
    func orphanedTurns(notAliveSince date: Date, limit: Int) async throws -> [Turn] { try await inner.orphanedTurns(notAliveSince: date, limit: limit) }
    func checkHealth() async throws {}
    func close() async throws {}
}

@Suite(.timeLimit(.minutes(2))) struct ConversationLengthTests {
    @Test("a long conversation sends the model a bounded context, reads no full history, and still warns about a medicine named hundreds of messages ago")
    func longConversationIsFlat() async throws {
        let store = HistoryCountingStore()
        let model = RecordingModel(ScriptedModel(configuration: .init(deltaDelay: .zero, reply: "Sleep at regular times.")))
        var configuration = ChatConfiguration()
        configuration.usageLimits = nil
        configuration.contextWindowMessages = 40
        let chat = ChatService(model: model, store: store, configuration: configuration, safety: ClinicalSafetyPolicy(detector: .shared, checker: .shared), logger: Logger(label: "test"))

        let first = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m0", text: "I take warfarin every evening.")
        _ = await collect(first.stream)
        let conversation = first.conversationId
        for i in 1..<250 {
            let result = try await chat.send(userId: "alice", conversationId: conversation, clientMessageId: "m\(i)", text: "How can I sleep better tonight? (\(i))")
            _ = await collect(result.stream)
        }
        let last = try await chat.send(userId: "alice", conversationId: conversation, clientMessageId: "m-last", text: "Can I take ibuprofen for a headache?")
        let events = await collect(last.stream)

        // The warning comes from the medication context kept for the conversation, not from
        // re-reading 500 messages: the warfarin message is far outside the window.
        let warnings = events.compactMap { event -> SafetyWarning? in
            if case .safetyWarning(let warning) = event { return warning }
            return nil
        }
        #expect(warnings.contains { Set($0.drugs ?? []) == ["warfarin", "ibuprofen"] })
        #expect(store.fullReads.withLock { $0 } == 0, "no full-history read on the hot path")
        #expect(store.recentLimits.withLock { $0 }.allSatisfy { $0 == 42 })
        // Every request carries at most the window of earlier messages plus the new one.
        let sizes = model.requests.map(\.messages.count)
        #expect(sizes.count == 251)
        #expect(sizes.max() ?? 0 <= 41)
        #expect(sizes.last == sizes[200], "the context stops growing")
    }

    @Test("a conversation stored before the medication context was kept rebuilds it once from its history")
    func legacyConversationRebuildsOnce() async throws {
        let store = HistoryCountingStore()
        var configuration = ChatConfiguration()
        configuration.usageLimits = nil
        configuration.contextWindowMessages = 4
        let chat = ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .zero, reply: "Noted.")), store: store, configuration: configuration, safety: ClinicalSafetyPolicy(detector: .shared, checker: .shared), logger: Logger(label: "test"))
        let first = try await chat.send(userId: "bob", conversationId: nil, clientMessageId: "b0", text: "I take warfarin.")
        _ = await collect(first.stream)
        for i in 1..<6 {
            _ = await collect(try await chat.send(userId: "bob", conversationId: first.conversationId, clientMessageId: "b\(i)", text: "Thanks (\(i))").stream)
        }
        // As if stored by an older build: no saved state.
        try await store.inner.saveSafetyState(conversationId: first.conversationId, userId: "bob", state: "not json")
        let before = store.fullReads.withLock { $0 }
        let events = await collect(try await chat.send(userId: "bob", conversationId: first.conversationId, clientMessageId: "b-last", text: "Is aspirin ok for my knee?").stream)
        #expect(events.contains { if case .safetyWarning = $0 { return true } else { return false } })
        #expect(store.fullReads.withLock { $0 } == before + 1, "rebuilt from the history once")
        _ = await collect(try await chat.send(userId: "bob", conversationId: first.conversationId, clientMessageId: "b-next", text: "And tonight?").stream)
        #expect(store.fullReads.withLock { $0 } == before + 1, "then kept")
    }
}

@Suite(.timeLimit(.minutes(1))) struct AdmissionTests {
    @Test("a burst beyond what the process runs gets a typed, retryable overloaded at once; a slot that frees admits again")
    func burstIsRefusedWithOverloaded() async throws {
        var configuration = ChatConfiguration()
        configuration.usageLimits = nil
        configuration.maxRunningAnswers = 3
        let chat = ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .milliseconds(30), reply: "One two three four five six seven eight nine ten.")), store: InMemoryConversationStore(), configuration: configuration, safety: NoSafetyPolicy(), logger: Logger(label: "test"))
        let clock = ContinuousClock()
        let started = clock.now
        let outcomes = await withTaskGroup(of: Result<ResponseStream, ChatError>.self) { group in
            for user in 0..<20 {
                group.addTask {
                    do throws(ChatError) {
                        return .success(try await chat.send(userId: "u\(user)", conversationId: nil, clientMessageId: "m", text: "Hello").stream)
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var all: [Result<ResponseStream, ChatError>] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        let decided = clock.now - started
        let admitted = outcomes.compactMap { try? $0.get() }
        let refused = outcomes.compactMap { outcome -> ChatError? in
            if case .failure(let error) = outcome { return error }
            return nil
        }
        #expect(admitted.count == 3)
        #expect(refused.count == 17 && refused.allSatisfy { $0 == .overloaded })
        #expect(ChatError.overloaded.code == .overloaded && ErrorCode.overloaded.retryable && ErrorCode.overloaded.httpStatus == 503)
        #expect(decided < .seconds(5), "every patient is answered at once, not queued")
        for stream in admitted { _ = await collect(stream) }
        let later = try await chat.send(userId: "u-late", conversationId: nil, clientMessageId: "m", text: "Hello")
        #expect(await collect(later.stream).last.map { if case .streamEnd = $0 { true } else { false } } == true)
    }
}
