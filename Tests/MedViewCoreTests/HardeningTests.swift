import Foundation
import Logging
@testable import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewTestSupport
import Synchronization
import Testing

/// A store whose writes of answer endings fail while `failing` is set (a full disk, as the engine
/// sees it), and whose writes of new turns wait while `holdingBegins` is set (a slow disk); it
/// also records what the journal appends and how many turns it stored.
final class FlakyFinishStore: ConversationStore {
    let inner = InMemoryConversationStore()
    let failing = Mutex(false)
    let holdingBegins = Mutex(false)
    let appends = Mutex<[StreamAppend]>([])
    let turnsStored = Mutex(0)

    func createConversation(_ conversation: Conversation) async throws { try await inner.createConversation(conversation) }
    func conversation(id: String, userId: String) async throws -> Conversation? { try await inner.conversation(id: id, userId: userId) }
    func conversations(userId: String, limit: Int) async throws -> [Conversation] { try await inner.conversations(userId: userId, limit: limit) }
    func deleteConversation(id: String, userId: String) async throws -> Bool { try await inner.deleteConversation(id: id, userId: userId) }
    func messages(conversationId: String, userId: String) async throws -> [StoredMessage] { try await inner.messages(conversationId: conversationId, userId: userId) }
    func beginTurn(_ turn: Turn, newConversation: Conversation?) async throws -> BeginTurnResult {
        while holdingBegins.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(2)) }
        let result = try await inner.beginTurn(turn, newConversation: newConversation)
        if case .created = result { turnsStored.withLock { $0 += 1 } }
        return result
    }
    func finishTurn(_ completion: TurnCompletion) async throws {
        if failing.withLock({ $0 }) { throw StoreError.unavailable("finishTurn failed: disk full") }
        try await inner.finishTurn(completion)
    }
    func turn(streamId: String, userId: String) async throws -> Turn? { try await inner.turn(streamId: streamId, userId: userId) }
    func turn(clientMessageId: String, userId: String) async throws -> Turn? { try await inner.turn(clientMessageId: clientMessageId, userId: userId) }
    func recentContext(conversationId: String, userId: String, limit: Int) async throws -> ConversationContext? { try await inner.recentContext(conversationId: conversationId, userId: userId, limit: limit) }
    func saveSafetyState(conversationId: String, userId: String, state: String) async throws { try await inner.saveSafetyState(conversationId: conversationId, userId: userId, state: state) }
    func appendStreamEvents(_ appends: [StreamAppend]) async throws {
        self.appends.withLock { $0 += appends }
        try await inner.appendStreamEvents(appends)
    }
    func streamEvents(streamId: String, userId: String, after seq: Int) async throws -> StreamEventsPage? { try await inner.streamEvents(streamId: streamId, userId: userId, after: seq) }
    func recordHeartbeat(instanceId: String, at date: Date) async throws { try await inner.recordHeartbeat(instanceId: instanceId, at: date) }
    func orphanedTurns(notAliveSince date: Date, limit: Int) async throws -> [Turn] { try await inner.orphanedTurns(notAliveSince: date, limit: limit) }
    func checkHealth() async throws {}
    func close() async throws {}
}

/// The model's call is made ready while the patient's message is stored, and sent only once it is.
@Suite(.timeLimit(.minutes(1)), .bundledSafetyData) struct ModelCallOrderTests {
    static let answer = OpenAIAnswerSample.events

    @Test("the provider gets a message's request only once the message is stored, and never the request of a message that was not stored")
    func requestWaitsForTheStore() async throws {
        let store = FlakyFinishStore()
        // How many turns the store had stored when each request reached the provider.
        let storedAtRequest = Mutex<[Int]>([])
        try await LoopbackHTTPServer.with(respond: { _ in
            storedAtRequest.withLock { $0.append(store.turnsStored.withLock { $0 }) }
            return .events(Self.answer)
        }) { server in
            let client = ModelHTTP1Client()
            defer { client.closeIdleConnections() }
            let model = OpenAICompatibleModel(configuration: .init(baseURL: server.baseURL + "/v1", model: "m"), client: .lean(client))
            let chat = ChatService(model: model, store: store, configuration: ChatConfiguration(), safety: NoSafetyPolicy(), logger: Logger(label: "test"))

            store.holdingBegins.withLock { $0 = true }
            let sending = Task { try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "How do I sleep better?") }
            try await Task.sleep(for: .milliseconds(300))
            #expect(server.requests.count == 0)
            store.holdingBegins.withLock { $0 = false }
            let result = try await sending.value
            #expect(chunkText(await collect(result.stream)) == "Rest and fluids.")
            #expect(storedAtRequest.withLock { $0 } == [1])

            // Not the patient's conversation: nothing stored, the call made ready is dropped unsent.
            await #expect(throws: ChatError.conversationNotFound) {
                _ = try await chat.send(userId: "alice", conversationId: "c_someone_else", clientMessageId: "m2", text: "And tonight?")
            }
            // The same message again, once the engine has let its stream go: the store finds it
            // stored, so it is re-attached and its new call is dropped unsent.
            _ = chat.registry.removeConversation(id: result.conversationId, userId: "alice")
            let again = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "How do I sleep better?")
            #expect(again.duplicate)
            #expect(server.requests.count == 1)
        }
    }

    @Test("with the request sent as the message is stored, emergency guidance still comes before the model's first words")
    func emergencyGuidanceComesFirst() async throws {
        try await LoopbackHTTPServer.with(respond: { _ in .events(Self.answer) }) { server in
            let client = ModelHTTP1Client()
            defer { client.closeIdleConnections() }
            let model = OpenAICompatibleModel(configuration: .init(baseURL: server.baseURL + "/v1", model: "m"), client: .lean(client))
            let chat = ChatService(model: model, store: FlakyFinishStore(), configuration: ChatConfiguration(), safety: clinicalSafety, logger: Logger(label: "test"))
            for id in 1...5 {
                let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "e\(id)", text: "crushing chest pain spreading to my left arm and I'm sweating")
                let events = await collect(result.stream)
                guard events.count > 2, case .streamStart = events[0], case .safetyAlert = events[1] else {
                    Issue.record("expected stream.start, then the alert: \(events.prefix(3))")
                    return
                }
                #expect(chunkText(events) == "Rest and fluids.")
            }
        }
    }
}

/// An OpenAI-compatible stream answering "Rest and fluids.".
enum OpenAIAnswerSample {
    static func chunk(_ content: String?, finish: String? = nil) -> String {
        let delta = content.map { #"{"content":"\#($0)"}"# } ?? "{}"
        let reason = finish.map { "\"\($0)\"" } ?? "null"
        return #"data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":\#(delta),"finish_reason":\#(reason)}]}"# + "\n\n"
    }
    static let events = chunk("Rest ") + chunk("and fluids.") + chunk(nil, finish: "stop") + "data: [DONE]\n\n"
}

@Suite(.timeLimit(.minutes(1))) struct StoreFailureTests {
    @Test("an answer the store refuses ends with a retryable storage_unavailable, never stream.end; its text is kept and written when the store works again")
    func failedFinishIsNotSuccess() async throws {
        let store = FlakyFinishStore()
        store.failing.withLock { $0 = true }
        let chat = ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .zero)), store: store, configuration: ChatConfiguration(), safety: NoSafetyPolicy(), logger: Logger(label: "test"))
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "How do I sleep better?")
        let events = await collect(result.stream)
        guard case .error(let error)? = events.last else {
            Issue.record("the terminal event must be an error, got \(String(describing: events.last))")
            return
        }
        #expect(error.code == .storageUnavailable)
        #expect(error.retryable)
        #expect(error.seq == events.count)
        #expect(!events.contains { if case .streamEnd = $0 { true } else { false } })
        #expect(chat.unsaved.isFailing)
        #expect(chat.unsaved.count == 1)

        // While unsaved, a replay (the registry has let it go) comes from memory, identical.
        _ = chat.registry.removeConversation(id: result.conversationId, userId: "alice")
        let replayed = try await chat.stream(id: result.stream.id, userId: "alice")
        #expect(replayed.events == events)

        // The store still fails: a retry keeps it.
        #expect(await chat.unsaved.retry() == 1)
        store.failing.withLock { $0 = false }
        #expect(await chat.unsaved.retry() == 0)
        #expect(!chat.unsaved.isFailing)
        let stored = try await store.messages(conversationId: result.conversationId, userId: "alice")
        let answer = try #require(stored.first { $0.role == .assistant })
        #expect(answer.status == .failed)
        #expect(answer.text == chunkText(events))
        #expect(!answer.text.isEmpty)
        let turn = try #require(try await store.turn(streamId: result.stream.id, userId: "alice"))
        #expect(try turn.events.map { try ServerEvent.decode($0.json) } == events)
    }

    @Test("erasing a conversation also forgets its unsaved answers")
    func eraseForgetsUnsaved() async throws {
        let store = FlakyFinishStore()
        store.failing.withLock { $0 = true }
        let chat = ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .zero)), store: store, configuration: ChatConfiguration(), safety: NoSafetyPolicy(), logger: Logger(label: "test"))
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "Hello")
        _ = await collect(result.stream)
        #expect(chat.unsaved.count == 1)
        _ = try await chat.deleteConversation(id: result.conversationId, userId: "alice")
        #expect(chat.unsaved.count == 0)
    }
}

@Suite(.timeLimit(.minutes(1))) struct TextRulesTests {
    func chat() -> ChatService {
        ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .zero)), store: InMemoryConversationStore(), configuration: ChatConfiguration(), safety: NoSafetyPolicy(), logger: Logger(label: "test"))
    }

    @Test("a message of only zero-width or invisible characters is refused as empty")
    func invisibleIsEmpty() async throws {
        let chat = chat()
        for text in ["\u{200B}", "\u{200B}\u{200C}\u{200D}", "\u{FEFF}\u{2060}", " \u{00AD}\u{180E}\u{3164} ", "\u{FE0F}\u{034F}", "\u{115F}\u{1160}\u{FFA0}"] {
            await #expect(throws: ChatError.emptyMessage) {
                _ = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m-\(text.unicodeScalars.count)", text: text)
            }
        }
        #expect(try TextRules.title("\u{200B}\u{200D} ") == nil)
        #expect(try TextRules.title(" Sleep\u{200B} ") == "Sleep")
    }

    @Test("U+0000 and other control characters (but tab, line feed, carriage return) are refused as invalid_text")
    func controlCharacters() async throws {
        let chat = chat()
        for text in ["before\u{0}after", "bell\u{7}", "esc\u{1B}[31m", "del\u{7F}", "c1\u{85}"] {
            await #expect(throws: ChatError.invalidText) {
                _ = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "c-\(text.utf8.count)", text: text)
            }
        }
        #expect(ChatError.invalidText.code == .invalidText)
        #expect(throws: ChatError.invalidText) { _ = try TextRules.title("Ti\u{0}tle") }
        let ok = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "ok", text: "line one\nline two\ttabbed\r\n")
        #expect(!ok.duplicate)
    }
}

@Suite(.timeLimit(.minutes(1))) struct UsageLimiterTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("the token bucket admits a burst, then refuses with the seconds until the next message fits, and refills at the rate")
    func tokenBucket() async throws {
        let limiter = InMemoryUsageLimiter(limits: UsageLimits(messagesPerMinute: 6, burst: 3))
        for _ in 0..<3 { try await limiter.admitMessage(userId: "alice", now: t0) }
        await #expect(throws: ChatError.rateLimited(.messageRate, retryAfter: 10)) {
            try await limiter.admitMessage(userId: "alice", now: t0)
        }
        // Other users have their own bucket.
        try await limiter.admitMessage(userId: "bob", now: t0)
        await #expect(throws: ChatError.rateLimited(.messageRate, retryAfter: 4)) {
            try await limiter.admitMessage(userId: "alice", now: t0 + 6)
        }
        try await limiter.admitMessage(userId: "alice", now: t0 + 10)
    }

    @Test("the daily output budget refuses until the next UTC day once spent")
    func dailyBudget() async throws {
        let limiter = InMemoryUsageLimiter(limits: UsageLimits(messagesPerMinute: 600, burst: 100, dailyOutputTokens: 100))
        let midnight = Date(timeIntervalSince1970: (t0.timeIntervalSince1970 / 86_400).rounded(.up) * 86_400)
        let now = midnight - 3600
        try await limiter.admitMessage(userId: "alice", now: now)
        await limiter.recordOutput(userId: "alice", tokens: 100, now: now)
        await #expect(throws: ChatError.rateLimited(.dailyOutputBudget, retryAfter: 3600)) {
            try await limiter.admitMessage(userId: "alice", now: now)
        }
        try await limiter.admitMessage(userId: "bob", now: now)
        try await limiter.admitMessage(userId: "alice", now: midnight + 1)
    }

    @Test("the chat service consults the limiter: a flood is refused as rate_limited with retryAfter; a re-sent message still re-attaches")
    func serviceRefusesFlood() async throws {
        var configuration = ChatConfiguration()
        configuration.usageLimits = UsageLimits(messagesPerMinute: 1, burst: 2)
        let chat = ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .zero)), store: InMemoryConversationStore(), configuration: configuration, safety: NoSafetyPolicy(), logger: Logger(label: "test"))
        let first = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "1", text: "One")
        _ = await collect(first.stream)
        let second = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "2", text: "Two")
        _ = await collect(second.stream)
        do {
            _ = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "3", text: "Three")
            Issue.record("the third message must be refused")
        } catch {
            guard case .rateLimited(.messageRate, let seconds) = error else { Issue.record("unexpected \(error)"); return }
            #expect((1...60).contains(seconds))
            #expect(error.code == .rateLimited)
            #expect(error.retryAfter == seconds)
        }
        let again = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "1", text: "One")
        #expect(again.duplicate)
        _ = try await chat.send(userId: "bob", conversationId: nil, clientMessageId: "1", text: "One")
    }

    @Test("the daily output budget counts the tokens of each answer")
    func serviceBudget() async throws {
        var configuration = ChatConfiguration()
        configuration.usageLimits = UsageLimits(messagesPerMinute: 600, burst: 100, dailyOutputTokens: 5)
        let chat = ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .zero)), store: InMemoryConversationStore(), configuration: configuration, safety: NoSafetyPolicy(), logger: Logger(label: "test"))
        let first = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "1", text: "One")
        _ = await collect(first.stream)
        _ = try await eventually { chat.registry.running == 0 }
        await #expect {
            _ = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "2", text: "Two")
        } throws: { error in
            guard case ChatError.rateLimited(.dailyOutputBudget, let seconds) = error else { return false }
            return seconds >= 1 && seconds <= 86_400
        }
    }
}

@Suite(.timeLimit(.minutes(1))) struct ReplayMemoryTests {
    @Test("finished answers' replay logs are bounded by bytes across streams: the oldest leave memory first, and resume then comes from the store")
    func byteBudget() async throws {
        var configuration = ChatConfiguration()
        configuration.replayMemoryBytes = 6_000
        let store = InMemoryConversationStore()
        let chat = ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .zero)), store: store, configuration: configuration, safety: NoSafetyPolicy(), logger: Logger(label: "test"))
        var results: [SendResult] = []
        for i in 0..<4 {
            let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m\(i)", text: "Question \(i) [[repeat:6]]")
            _ = await collect(result.stream)
            _ = try await eventually { chat.registry.running == 0 }
            results.append(result)
            #expect(chat.registry.retainedReplayBytes <= 6_000)
        }
        #expect(results[0].stream.estimatedBytes > 1_500)
        // The oldest left memory; the newest is still there.
        #expect(chat.registry.entry(streamId: results[0].stream.id) == nil)
        #expect(chat.registry.entry(streamId: results[3].stream.id) != nil)
        // Resume still works, from the store.
        let resumed = try await chat.stream(id: results[0].stream.id, userId: "alice")
        #expect(resumed !== results[0].stream)
        #expect(resumed.events == results[0].stream.events)
    }
}
