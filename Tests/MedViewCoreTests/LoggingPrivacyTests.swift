import Logging
import MedViewCore
import MedViewModels
import MedViewProtocol
import Synchronization
import Testing

/// Keeps every log record in memory so a test can read what would have been written.
final class CapturedLogs: Sendable {
    let lines = Mutex<[String]>([])

    func handler(label: String) -> any LogHandler { Handler(sink: self) }

    struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.lines.withLock { $0.append("\(event.message) \(all)") }
        }
    }
}

/// A model that fails with provider text full of identifiers.
struct LeakyFailingModel: ChatModel {
    let descriptor = ModelDescriptor(provider: "test", id: "leaky", demo: true)

    func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        AsyncThrowingStream { continuation in
            continuation.finish(throwing: ModelError(kind: .failed, retryable: false, detail: "upstream said: patient jane.doe@example.com, phone 415-555-0134, MRN 12345678"))
        }
    }
}

@Suite(.timeLimit(.minutes(1)), .bundledSafetyData) struct LoggingPrivacyTests {
    @Test("logs carry ids and codes, never the message text, and identifiers in provider errors are scrubbed")
    func noPHIInLogs() async throws {
        let logs = CapturedLogs()
        let logger = Logger(label: "test", factory: logs.handler)
        let chat = ChatService(model: LeakyFailingModel(), store: InMemoryConversationStore(), configuration: ChatConfiguration(), safety: clinicalSafety, logger: logger)
        let secret = "my ssn is 123-45-6789 and I feel dizzy"
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: secret)
        _ = await collect(result.stream)
        _ = try await eventually { !logs.lines.withLock { $0 }.filter { $0.contains("model.failed") }.isEmpty }
        let all = logs.lines.withLock { $0 }.joined(separator: "\n")
        #expect(all.contains("model.failed"))
        #expect(all.contains(result.stream.id))
        #expect(!all.contains("dizzy"))
        #expect(!all.contains("123-45-6789"))
        #expect(!all.contains("jane.doe@example.com"))
        #expect(!all.contains("415-555-0134"))
        #expect(!all.contains("12345678"))
    }

    @Test("a store failure's log line names the operation and the store's code (so a storage_unavailable can be diagnosed), never the message text")
    func storeFailureDetailIsLogged() async throws {
        let logs = CapturedLogs()
        let logger = Logger(label: "test", factory: logs.handler)
        let store = FlakyFinishStore()
        store.failing.withLock { $0 = true }
        let chat = ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .zero)), store: store, configuration: ChatConfiguration(), safety: NoSafetyPolicy(), logger: logger)
        let secret = "my ssn is 123-45-6789 and I feel dizzy"
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: secret)
        _ = await collect(result.stream)
        _ = try await eventually { logs.lines.withLock { $0 }.contains { $0.contains("store.finish_turn.failed") } }
        let line = try #require(logs.lines.withLock { $0 }.first { $0.contains("store.finish_turn.failed") })
        #expect(line.contains("finishTurn failed: disk full"))
        #expect(line.contains("StoreError"))
        #expect(line.contains(result.stream.id))
        let all = logs.lines.withLock { $0 }.joined(separator: "\n")
        #expect(!all.contains("dizzy"))
        #expect(!all.contains("123-45-6789"))
    }
}
