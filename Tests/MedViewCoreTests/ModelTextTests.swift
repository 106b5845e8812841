import Logging
import MedViewCore
import MedViewProtocol
import Testing

/// A model whose answer carries control characters.
struct ControlCharacterModel: ChatModel {
    let descriptor = ModelDescriptor(provider: "scripted", id: "control", demo: true)
    func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        AsyncThrowingStream { continuation in
            for delta in ["Drink\u{0} water", " and\u{7} rest.\n", "\tSee a\u{1B} doctor\u{0}."] {
                continuation.yield(.delta(delta))
            }
            continuation.finish()
        }
    }
}

@Suite(.timeLimit(.minutes(1))) struct ModelTextTests {
    @Test("control characters in model text are removed before chunking, so what is sent is what is stored")
    func controlCharactersRemoved() async throws {
        let store = InMemoryConversationStore()
        let chat = ChatService(model: ControlCharacterModel(), store: store, configuration: ChatConfiguration(), safety: NoSafetyPolicy(), logger: Logger(label: "test"))
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "How should I rest?")
        let text = chunkText(await collect(result.stream))
        #expect(text == "Drink water and rest.\n\tSee a doctor.")
        #expect(try await eventually {
            try await store.messages(conversationId: result.conversationId, userId: "alice").last?.text == text
        })
    }
}
