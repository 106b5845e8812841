import MedViewCore
import MedViewModels
import MedViewProtocol
import Synchronization

/// Wraps a model and records every request (its system prompt and messages), and, given a
/// store, whether the patient's message was already stored when the model was called.
/// The one recording model of every test target.
public final class RecordingModel: ChatModel {
    public let inner: any ChatModel
    public let store: (any ConversationStore)?
    private let state = Mutex<(requests: [ModelRequest], userMessageStoredAtCall: [Bool])>(([], []))

    public init(_ inner: any ChatModel = ScriptedModel(configuration: .init(deltaDelay: .zero)), store: (any ConversationStore)? = nil) {
        self.inner = inner
        self.store = store
    }

    public var descriptor: ModelDescriptor { inner.descriptor }
    public var requests: [ModelRequest] { state.withLock { $0.requests } }
    /// The system prompt of every request, in order.
    public var systemPrompts: [String] { state.withLock { $0.requests.map(\.system) } }
    public var calls: Int { state.withLock { $0.requests.count } }
    public var userMessageStoredAtCall: [Bool] { state.withLock { $0.userMessageStoredAtCall } }

    public func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        state.withLock { $0.requests.append(request) }
        guard let store else { return inner.stream(request) }
        // Check the store before any delta flows.
        let inner = self.inner
        return AsyncThrowingStream { continuation in
            let task = Task {
                let text = request.messages.last?.text ?? ""
                var stored = false
                for c in (try? await store.conversations(userId: "alice", limit: 100)) ?? [] {
                    let messages = (try? await store.messages(conversationId: c.id, userId: "alice")) ?? []
                    if messages.contains(where: { $0.role == .user && $0.text == text }) { stored = true }
                }
                self.state.withLock { $0.userMessageStoredAtCall.append(stored) }
                do {
                    for try await e in inner.stream(request) { continuation.yield(e) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
