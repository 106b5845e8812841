import Foundation
import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewServer
import Synchronization
import Testing
import MedViewTestSupport

/// A store that records the order of the writes that matter for shutdown, and refuses to be
/// used after it is closed.
final class ShutdownRecordingStore: ConversationStore {
    private let inner = InMemoryConversationStore()
    /// `finish:<status>:<text>` for every stored ending, then `close`; `after-close:<op>` if anything came later.
    let operations = Mutex<[String]>([])
    private let closed = Mutex(false)

    private func note(_ op: String) {
        let isClosed = closed.withLock { $0 }
        operations.withLock { $0.append(isClosed ? "after-close:" + op : op) }
    }

    func createConversation(_ conversation: Conversation) async throws { note("create"); try await inner.createConversation(conversation) }
    func conversation(id: String, userId: String) async throws -> Conversation? { try await inner.conversation(id: id, userId: userId) }
    func conversations(userId: String, limit: Int) async throws -> [Conversation] { try await inner.conversations(userId: userId, limit: limit) }
    func deleteConversation(id: String, userId: String) async throws -> Bool { note("delete"); return try await inner.deleteConversation(id: id, userId: userId) }
    func messages(conversationId: String, userId: String) async throws -> [StoredMessage] { try await inner.messages(conversationId: conversationId, userId: userId) }
    func beginTurn(_ turn: Turn, newConversation: Conversation?) async throws -> BeginTurnResult { note("begin"); return try await inner.beginTurn(turn, newConversation: newConversation) }
    func finishTurn(_ completion: TurnCompletion) async throws {
        note("finish:\(completion.status.rawValue):\(completion.assistantText)")
        try await inner.finishTurn(completion)
    }
    func turn(streamId: String, userId: String) async throws -> Turn? { try await inner.turn(streamId: streamId, userId: userId) }
    func turn(clientMessageId: String, userId: String) async throws -> Turn? { try await inner.turn(clientMessageId: clientMessageId, userId: userId) }
    func recentContext(conversationId: String, userId: String, limit: Int) async throws -> ConversationContext? { try await inner.recentContext(conversationId: conversationId, userId: userId, limit: limit) }
    func saveSafetyState(conversationId: String, userId: String, state: String) async throws { try await inner.saveSafetyState(conversationId: conversationId, userId: userId, state: state) }
    func appendStreamEvents(_ appends: [StreamAppend]) async throws { try await inner.appendStreamEvents(appends) }
    func streamEvents(streamId: String, userId: String, after seq: Int) async throws -> StreamEventsPage? { try await inner.streamEvents(streamId: streamId, userId: userId, after: seq) }
    func recordHeartbeat(instanceId: String, at date: Date) async throws { try await inner.recordHeartbeat(instanceId: instanceId, at: date) }
    func orphanedTurns(notAliveSince date: Date, limit: Int) async throws -> [Turn] { try await inner.orphanedTurns(notAliveSince: date, limit: limit) }
    func checkHealth() async throws {}
    func close() async throws {
        note("close")
        closed.withLock { $0 = true }
    }
}

@Suite(.timeLimit(.minutes(1))) struct LifecycleTests {
    /// Sends a long, slow answer, reads its first chunks, stops the application as SIGTERM does,
    /// and returns what the client saw and what the store recorded, in order.
    func stopWhileStreaming(gracePeriod: Duration) async throws -> (events: [ServerEvent], operations: [String]) {
        let store = ShutdownRecordingStore()
        let events = try await LiveServer.with(store: store, configure: { $0.limits.shutdownGracePeriod = gracePeriod }) { server in
            let ws = try await server.connect("alice")
            // A few seconds long, so a busy machine still stops it mid-answer.
            ws.send(.chatSend(ChatSend(id: "m1", text: "How can I sleep better? [[delay:10]] [[repeat:5]]")))
            let streamId = try #require(ack(try await ws.next())?.streamId)
            var events: [ServerEvent] = []
            while chunks(events).count < 2 {
                let event = try await ws.next()
                if event.streamId == streamId, event.seq != nil { events.append(event) }
            }
            // The way SIGTERM stops it: the service group's graceful shutdown, while the answer streams.
            let stopping = Task { try await server.shutdown() }
            events += try await ws.readStream(streamId)
            try await stopping.value
            return events
        }
        return (events, store.operations.withLock { $0 })
    }

    @Test("SIGTERM while an answer streams: the client gets the rest of it, it is stored complete, and the store closes last")
    func shutdownLetsAnswersFinish() async throws {
        let (events, operations) = try await stopWhileStreaming(gracePeriod: .seconds(50))
        guard case .streamEnd(let end) = events.last else {
            Issue.record("expected stream.end, got \(String(describing: events.last))")
            return
        }
        #expect(end.finishReason == .complete)
        let text = chunks(events).map(\.text).joined()
        #expect(operations.last == "close")
        #expect(operations.contains("finish:complete:" + text))
        #expect(!operations.contains { $0.hasPrefix("after-close") })
        #expect(events.map { $0.seq ?? 0 } == Array(1...events.count))
    }

    @Test("SIGTERM past the grace period: the client gets a typed shutting_down error, the partial text is stored as failed, and the store closes last")
    func shutdownCancelsAfterGracePeriod() async throws {
        let (events, operations) = try await stopWhileStreaming(gracePeriod: .milliseconds(100))
        guard case .error(let error) = events.last else {
            Issue.record("expected an error event, got \(String(describing: events.last))")
            return
        }
        #expect(error.code == .shuttingDown)
        #expect(error.retryable)
        let text = chunks(events).map(\.text).joined()
        #expect(!text.isEmpty)
        #expect(operations.last == "close")
        #expect(operations.contains("finish:failed:" + text))
        #expect(!operations.contains { $0.hasPrefix("after-close") })
    }
}
