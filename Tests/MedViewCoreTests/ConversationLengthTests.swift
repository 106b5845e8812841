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

@Suite(.timeLimit(.minutes(2)), .bundledSafetyData) struct ConversationLengthTests {
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
        // A new message reads the latest few messages (the cached window's check); the whole
        // window is read once, when the conversation's window is not cached yet.
        let limits = store.recentLimits.withLock { $0 }
        #expect(limits.count == 250)
        #expect(limits.filter { $0 == ContextWindowCache.probeMessages + 2 }.count >= 249)
        #expect(limits.allSatisfy { $0 == ContextWindowCache.probeMessages + 2 || $0 == 42 })
        // Every request carries at most the window of earlier messages plus the new one.
        let sizes = model.requests.map(\.messages.count)
        #expect(sizes.count == 251)
        #expect(sizes.max() ?? 0 <= 41)
        #expect(sizes.last == sizes[200], "the context stops growing")
    }

    @Test("the cached window gives the model exactly the context a full read gives, also when another process added turns")
    func cachedWindowMatchesTheStore() async throws {
        func run(cacheConversations: Int) async throws -> [[ModelMessage]] {
            let store = InMemoryConversationStore()
            let model = RecordingModel(ScriptedModel(configuration: .init(deltaDelay: .zero, reply: "Rest and drink water.")))
            var configuration = ChatConfiguration()
            configuration.usageLimits = nil
            configuration.contextWindowMessages = 10
            configuration.contextCacheConversations = cacheConversations
            let chat = ChatService(model: model, store: store, configuration: configuration, safety: NoSafetyPolicy(), logger: Logger(label: "test"))
            // "Another process": a second engine on the same store, with its own cache.
            let other = ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .zero, reply: "From the other task.")), store: store, configuration: configuration, safety: NoSafetyPolicy(), logger: Logger(label: "test"))
            let first = try await chat.send(userId: "carol", conversationId: nil, clientMessageId: "c0", text: "Hello (0)")
            _ = await collect(first.stream)
            for i in 1..<40 {
                // Some messages are answered elsewhere: one between two of ours, or two in a row.
                let engine = [5, 12, 13, 20, 27, 28, 29].contains(i) ? other : chat
                _ = await collect(try await engine.send(userId: "carol", conversationId: first.conversationId, clientMessageId: "c\(i)", text: "Question \(i)").stream)
            }
            return model.requests.map(\.messages)
        }
        let cached = try await run(cacheConversations: 100)
        let uncached = try await run(cacheConversations: 0)
        #expect(cached.count == uncached.count && cached.count > 20)
        for (a, b) in zip(cached, uncached) {
            #expect(a.map(\.text) == b.map(\.text))
        }
    }

    @Test("a window extends only when the store's latest messages start inside it and agree with its tail")
    func windowExtension() {
        func message(_ id: String) -> StoredMessage {
            StoredMessage(id: id, conversationId: "c", userId: "u", role: .user, text: id, status: .complete, streamId: "s", createdAt: Date())
        }
        let window = ["a", "b", "c", "d"].map(message)
        #expect(ContextWindowCache.extend(window, with: ["c", "d", "e", "f"].map(message), limit: 10)?.map(\.id) == ["a", "b", "c", "d", "e", "f"])
        #expect(ContextWindowCache.extend(window, with: ["c", "d", "e", "f"].map(message), limit: 3)?.map(\.id) == ["d", "e", "f"])
        #expect(ContextWindowCache.extend(window, with: ["e", "f", "g", "h"].map(message), limit: 10) == nil, "a gap: read again")
        #expect(ContextWindowCache.extend(window, with: ["c", "x", "e", "f"].map(message), limit: 10) == nil, "disagrees with the tail")
        #expect(ContextWindowCache.extend(window, with: [], limit: 10) == nil)
        #expect(ContextWindowCache.extend([], with: [], limit: 10) == [])

        let cache = ContextWindowCache(capacity: 10)
        cache.store(conversationId: "c", userId: "u", window: window)
        #expect(cache.window(conversationId: "c", userId: "mallory", probe: ["c", "d"].map(message), limit: 10) == nil, "another user's")
        #expect(cache.window(conversationId: "c", userId: "u", probe: ["c", "d"].map(message), limit: 10)?.count == 4)
        var streaming = message("e")
        streaming.status = .streaming
        cache.store(conversationId: "c", userId: "u", window: window + [streaming])
        #expect(cache.count == 0, "a window with an answer still streaming is not kept")
        for i in 0..<25 { cache.store(conversationId: "c\(i)", userId: "u", window: window) }
        #expect(cache.count <= 10)
    }

    @Test("the medication context kept with a cached window is the saved one: medicines named in the last message, or through another process, are warned about")
    func keptMedicationsFollowTheStore() async throws {
        let store = InMemoryConversationStore()
        var configuration = ChatConfiguration()
        configuration.usageLimits = nil
        let safety = ClinicalSafetyPolicy(detector: .shared, checker: .shared)
        let chat = ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .zero, reply: "Noted.")), store: store, configuration: configuration, safety: safety, logger: Logger(label: "test"))
        let other = ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .zero, reply: "Noted.")), store: store, configuration: configuration, safety: safety, logger: Logger(label: "test"))
        func warned(_ engine: ChatService, _ conversation: String?, _ id: String, _ text: String) async throws -> (String, [Set<String>]) {
            let result = try await engine.send(userId: "dana", conversationId: conversation, clientMessageId: id, text: text)
            let events = await collect(result.stream)
            return (result.conversationId, events.compactMap { event -> Set<String>? in
                if case .safetyWarning(let warning) = event { return Set(warning.drugs ?? []) }
                return nil
            })
        }
        let (conversation, _) = try await warned(chat, nil, "d0", "I take lithium.")
        for i in 1..<4 { _ = try await warned(chat, conversation, "d\(i)", "Thanks (\(i))") }
        // The last message changed the saved context; the next one (its window cached) sees it.
        _ = try await warned(chat, conversation, "d4", "My doctor also started me on methotrexate.")
        let (_, first) = try await warned(chat, conversation, "d5", "Can I take ibuprofen for my back?")
        #expect(first.contains(["lithium", "ibuprofen"]))
        #expect(first.contains(["methotrexate", "ibuprofen"]), "the medicine named in the previous message is in the context")
        // Another task answers a message that adds a medicine; this task's next message sees it.
        _ = try await warned(other, conversation, "d6", "And I was given warfarin last week.")
        let (_, second) = try await warned(chat, conversation, "d7", "Is naproxen any better?")
        #expect(second.contains(["warfarin", "naproxen"]), "the medicine saved by the other task is in the context")
    }

    @Test("a cached medication context is given back only for the same saved state and user")
    func keptMedicationsMatchTheirState() throws {
        let message = StoredMessage(id: "a", conversationId: "c", userId: "u", role: .user, text: "a", status: .complete, streamId: "s", createdAt: Date())
        let context = try JSONDecoder().decode(MedicationContext.self, from: Data(#"{"medicines":["lithium"],"warnedPairs":[],"lastMentioned":[]}"#.utf8))
        let cache = ContextWindowCache(capacity: 10)
        #expect(cache.medications(conversationId: "c", userId: "u", state: "s1") == nil, "nothing kept yet")
        cache.store(conversationId: "c", userId: "u", window: [message], medications: .init(state: "s1", context: context))
        #expect(cache.medications(conversationId: "c", userId: "u", state: "s1") == context)
        #expect(cache.medications(conversationId: "c", userId: "u", state: "s2") == nil, "the saved state changed: decode it again")
        #expect(cache.medications(conversationId: "c", userId: "mallory", state: "s1") == nil, "another user's")
        cache.store(conversationId: "c", userId: "u", window: [message])
        #expect(cache.medications(conversationId: "c", userId: "u", state: "s1") == nil, "a window kept without it")
        cache.store(conversationId: "c", userId: "u", window: [message], medications: .init(state: "s1", context: context))
        cache.remove(conversationId: "c")
        #expect(cache.medications(conversationId: "c", userId: "u", state: "s1") == nil, "an erased conversation")
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
        let chat = ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .seconds(1), reply: "One two three four five six seven eight nine ten.")), store: InMemoryConversationStore(), configuration: configuration, safety: NoSafetyPolicy(), logger: Logger(label: "test"))
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
        // Each admitted answer takes about 10 s (a delta a second), so an admission that queued
        // would take that long; a busy machine still decides all 20 well within it.
        #expect(decided < .seconds(8), "every patient is answered at once, not queued")
        for stream in admitted { _ = await collect(stream) }
        let later = try await chat.send(userId: "u-late", conversationId: nil, clientMessageId: "m", text: "Hello")
        #expect(await collect(later.stream).last.map { if case .streamEnd = $0 { true } else { false } } == true)
    }
}
