import MedViewCore
import MedViewSafety
import MedViewModels
import MedViewProtocol
import Synchronization

/// Wraps a model and records every request, and what the store held when the model was called.
final class RecordingModel: ChatModel {
    let inner: any ChatModel
    let store: (any ConversationStore)?
    private let state = Mutex<(requests: [ModelRequest], userMessageStoredAtCall: [Bool])>(([], []))

    init(_ inner: any ChatModel = ScriptedModel(configuration: .init(deltaDelay: .zero)), store: (any ConversationStore)? = nil) {
        self.inner = inner
        self.store = store
    }

    var descriptor: ModelDescriptor { inner.descriptor }
    var requests: [ModelRequest] { state.withLock { $0.requests } }
    var calls: Int { state.withLock { $0.requests.count } }
    var userMessageStoredAtCall: [Bool] { state.withLock { $0.userMessageStoredAtCall } }

    func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
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

/// Collects a stream's events from `after` to the end.
func collect(_ stream: ResponseStream, after: Int = 0) async -> [ServerEvent] {
    var out: [ServerEvent] = []
    for await e in stream.subscribe(after: after) { out.append(e) }
    return out
}

func chunkText(_ events: [ServerEvent]) -> String {
    events.compactMap { if case .streamChunk(let c) = $0 { c.text } else { nil } }.joined()
}

/// Polls until `condition` holds (for store writes that follow the terminal event).
func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
    for _ in 0..<200 {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return false
}

/// The clinical checks every deployment runs, from the bundled data.
let clinicalSafety: any SafetyPolicy = ClinicalSafetyPolicy(detector: .shared, checker: .shared)
