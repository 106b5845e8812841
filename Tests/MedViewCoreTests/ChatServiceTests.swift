import Logging
import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewTestSupport
import Testing

@Suite(.timeLimit(.minutes(1)), .bundledSafetyData) struct ChatServiceTests {
    let store = InMemoryConversationStore()

    func service(_ model: any ChatModel, _ tweak: (inout ChatConfiguration) -> Void = { _ in }) -> ChatService {
        var configuration = ChatConfiguration()
        tweak(&configuration)
        return ChatService(model: model, store: store, configuration: configuration, safety: clinicalSafety, logger: Logger(label: "test"))
    }

    func stored(_ conversationId: String, user: String = "alice") async throws -> [StoredMessage] {
        try await store.messages(conversationId: conversationId, userId: user)
    }

    /// Waits for the assistant message of `streamId` to leave status `streaming`.
    func finalAssistant(_ conversationId: String, streamId: String) async throws -> StoredMessage? {
        _ = try await eventually {
            try await stored(conversationId).contains { $0.streamId == streamId && $0.role == .assistant && $0.status != .streaming }
        }
        return try await stored(conversationId).first { $0.streamId == streamId && $0.role == .assistant }
    }

    @Test("the user message is stored before the model is called, and the answer is stored complete")
    func storesBeforeModel() async throws {
        let model = RecordingModel(store: store)
        let chat = service(model)
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "How much water should I drink?")
        let events = await collect(result.stream)
        #expect(model.userMessageStoredAtCall == [true])
        #expect(events.map(\.seq) == Array(1...events.count))
        guard case .streamStart = events.first, case .streamEnd(let end) = events.last else {
            Issue.record("stream must start with stream.start and end with stream.end")
            return
        }
        #expect(end.finishReason == .complete)
        let answer = try await finalAssistant(result.conversationId, streamId: result.stream.id)
        #expect(answer?.status == .complete)
        #expect(answer?.text == chunkText(events))
        #expect(!chunkText(events).isEmpty)
    }

    @Test("retrying a send with the same id re-attaches to the same stream and never calls the model twice")
    func idempotent() async throws {
        let model = RecordingModel()
        let chat = service(model)
        let first = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "Hi [[delay:5]]")
        let second = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "Hi [[delay:5]]")
        #expect(second.duplicate)
        #expect(second.stream.id == first.stream.id)
        #expect(await collect(second.stream) == (await collect(first.stream)))
        #expect(model.calls == 1)
        #expect(try await stored(first.conversationId).count == 2)
        await #expect(throws: ChatError.idempotencyConflict) {
            _ = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "Something else")
        }
        #expect(ChatError.idempotencyConflict.code == .idempotencyConflict)
        #expect(ChatError.idempotencyConflict.message == "This message id was already used for a different message.")
    }

    @Test("a retry after the stream left memory is answered from the stored log")
    func idempotentAfterEviction() async throws {
        let model = RecordingModel()
        let chat = service(model) { $0.replayRetention = .zero }
        let first = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "Hi")
        let events = await collect(first.stream)
        _ = try await finalAssistant(first.conversationId, streamId: first.stream.id)
        try await Task.sleep(for: .milliseconds(50))
        let again = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "Hi")
        #expect(again.duplicate)
        #expect(await collect(again.stream) == events)
        #expect(model.calls == 1)
    }

    @Test("the configured output-token limit and temperature reach the model")
    func inferenceParameters() async throws {
        let model = RecordingModel()
        let chat = service(model) {
            $0.maxOutputTokens = 77
            $0.temperature = 0.4
        }
        let sent = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "Hi")
        _ = await collect(sent.stream)
        let request = try #require(model.requests.last)
        #expect(request.maxOutputTokens == 77)
        #expect(request.temperature == 0.4)
        let defaultModel = RecordingModel()
        let defaults = service(defaultModel)
        _ = await collect(try await defaults.send(userId: "alice", conversationId: nil, clientMessageId: "m2", text: "Hi").stream)
        #expect(defaultModel.requests.last?.temperature == nil)
        #expect(defaultModel.requests.last?.maxOutputTokens == ChatConfiguration().maxOutputTokens)
    }

    @Test("earlier turns go to the model, within the context budget")
    func context() async throws {
        let model = RecordingModel()
        // Room for the system prompt and about 300 tokens of turns.
        let chat = service(model) { $0.contextBudgetTokens = ContextBuilder.estimateTokens(ChatConfiguration.defaultSystemPrompt) + 300 }
        let first = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "First question")
        _ = await collect(first.stream)
        _ = try await finalAssistant(first.conversationId, streamId: first.stream.id)
        let second = try await chat.send(userId: "alice", conversationId: first.conversationId, clientMessageId: "m2", text: "Second question")
        _ = await collect(second.stream)
        let request = try #require(model.requests.last)
        #expect(request.system == ChatConfiguration.defaultSystemPrompt)
        #expect(request.messages.map(\.role) == [.user, .assistant, .user])
        #expect(request.messages.first?.text == "First question")
        #expect(request.messages.last?.text == "Second question")

        // A long history is trimmed from the oldest end and still starts with a user turn.
        let long = String(repeating: "word ", count: 200)
        let third = try await chat.send(userId: "alice", conversationId: first.conversationId, clientMessageId: "m3", text: long + "[[say:ok]]")
        _ = await collect(third.stream)
        _ = try await finalAssistant(first.conversationId, streamId: third.stream.id)
        let fourth = try await chat.send(userId: "alice", conversationId: first.conversationId, clientMessageId: "m4", text: "Fourth")
        _ = await collect(fourth.stream)
        let trimmed = try #require(model.requests.last)
        #expect(trimmed.messages.first?.role == .user)
        #expect(trimmed.messages.count < 7)
        #expect(trimmed.messages.last?.text == "Fourth")
    }

    @Test("a failure before the first delta ends the stream with a retryable error and a failed message")
    func failBefore() async throws {
        let chat = service(ScriptedModel(configuration: .init(deltaDelay: .zero)))
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "[[fail:before]]")
        let events = await collect(result.stream)
        #expect(events.count == 2)
        guard case .error(let error) = events.last else { Issue.record("expected error"); return }
        #expect(error.code == .modelUnavailable)
        #expect(error.retryable)
        #expect(error.seq == 2)
        let answer = try await finalAssistant(result.conversationId, streamId: result.stream.id)
        #expect(answer?.status == .failed)
        #expect(answer?.text == "")
    }

    @Test("a mid-stream failure keeps the partial answer and says it is retryable")
    func failMid() async throws {
        let chat = service(ScriptedModel(configuration: .init(deltaDelay: .milliseconds(1))))
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "[[fail:after:10]]")
        let events = await collect(result.stream)
        guard case .error(let error) = events.last else { Issue.record("expected error"); return }
        #expect(error.code == .modelError)
        #expect(error.retryable)
        let partial = chunkText(events)
        #expect(!partial.isEmpty)
        let answer = try await finalAssistant(result.conversationId, streamId: result.stream.id)
        #expect(answer?.status == .failed)
        #expect(answer?.text == partial)
    }

    @Test("throttling is reported as model_throttled, retryable")
    func throttled() async throws {
        let chat = service(ScriptedModel(configuration: .init(deltaDelay: .zero)))
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "[[throttle]]")
        guard case .error(let error) = await collect(result.stream).last else { Issue.record("expected error"); return }
        #expect(error.code == .modelThrottled)
        #expect(error.retryable)
    }

    @Test("cancel stops the model, ends with finish reason cancelled, and stores the partial text")
    func cancel() async throws {
        let chat = service(ScriptedModel(configuration: .init(deltaDelay: .milliseconds(5))))
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "[[repeat:50]]")
        var seen: [ServerEvent] = []
        for await e in result.stream.subscribe(after: 0) {
            seen.append(e)
            if case .streamChunk = e, seen.count == 3 {
                try await chat.cancel(streamId: result.stream.id, userId: "alice")
            }
        }
        guard case .streamEnd(let end) = seen.last else { Issue.record("expected stream.end"); return }
        #expect(end.finishReason == .cancelled)
        let answer = try await finalAssistant(result.conversationId, streamId: result.stream.id)
        #expect(answer?.status == .cancelled)
        #expect(answer?.text == chunkText(seen))
        #expect(chunkText(seen).count < ScriptedModel.paragraphs.map(\.count).min()! * 50)
    }

    @Test("another user's stream and conversation answer not-found")
    func isolation() async throws {
        let chat = service(ScriptedModel(configuration: .init(deltaDelay: .zero)))
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "Hi")
        _ = await collect(result.stream)
        await #expect(throws: ChatError.self) { _ = try await chat.stream(id: result.stream.id, userId: "mallory") }
        await #expect(throws: ChatError.self) { try await chat.cancel(streamId: result.stream.id, userId: "mallory") }
        do {
            _ = try await chat.send(userId: "mallory", conversationId: result.conversationId, clientMessageId: "x", text: "Hi")
            Issue.record("sending into another user's conversation must fail")
        } catch {
            #expect(error.code == .notFound)
        }
        // The same client id under another user is a different message.
        let other = try await chat.send(userId: "mallory", conversationId: nil, clientMessageId: "m1", text: "Hi")
        #expect(!other.duplicate)
        #expect(other.stream.id != result.stream.id)
    }

    @Test("input limits give typed errors")
    func limits() async throws {
        let chat = service(ScriptedModel(configuration: .init(deltaDelay: .milliseconds(20)))) {
            $0.maxMessageCharacters = 100
            $0.maxActiveStreamsPerUser = 1
        }
        await #expect(throws: ChatError.emptyMessage) {
            _ = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "a", text: "  \n ")
        }
        #expect(ChatError.emptyMessage.code == .emptyMessage)
        #expect(ChatError.emptyMessage.message == "The message is empty.")
        do {
            _ = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "b", text: String(repeating: "x", count: 101))
            Issue.record("expected message_too_large")
        } catch {
            #expect(error.code == .messageTooLarge)
        }
        let running = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "c", text: "[[repeat:5]]")
        do {
            _ = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "d", text: "Hi")
            Issue.record("expected too_many_streams")
        } catch {
            #expect(error.code == .tooManyStreams)
            #expect(error.code.retryable)
        }
        _ = await collect(running.stream)
        // The slot is free again once the stream ended.
        _ = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "e", text: "Hi")
    }

    @Test("draining lets short answers finish and ends long ones with a retryable shutting_down error, partial text kept")
    func drain() async throws {
        let chat = service(ScriptedModel(configuration: .init(deltaDelay: .milliseconds(5))))
        let long = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "[[repeat:200]]")
        try await Task.sleep(for: .milliseconds(60))
        await chat.drain(gracePeriod: .milliseconds(50))
        let events = await collect(long.stream)
        guard case .error(let error) = events.last else { Issue.record("expected error"); return }
        #expect(error.code == .shuttingDown)
        #expect(error.retryable)
        let answer = try await finalAssistant(long.conversationId, streamId: long.stream.id)
        #expect(answer?.status == .failed)
        #expect(answer?.text == chunkText(events))
        do {
            _ = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m2", text: "Hi")
            Issue.record("a draining service must refuse new messages")
        } catch {
            #expect(error.code == .shuttingDown)
        }
    }

    @Test("the first words go out at once, before a slow model fills a chunk")
    func firstChunkIsPrompt() async throws {
        let chat = service(ScriptedModel(configuration: .init(deltaDelay: .milliseconds(200), scalarsPerDelta: 12))) {
            $0.chunking = .init(maxCharacters: 256, maxDelay: .seconds(3600))
        }
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "[[say:Hello there, friend of mine.]]")
        for await e in result.stream.subscribe(after: 0) {
            if case .streamChunk(let c) = e {
                #expect(c.text == "Hello ")
                // Without the early flush this chunk waits for the hour's flush; 45 s leaves room for a loaded machine.
                #expect(clock.now - start < .seconds(45))
                break
            }
        }
        try await chat.cancel(streamId: result.stream.id, userId: "alice")
    }
}
