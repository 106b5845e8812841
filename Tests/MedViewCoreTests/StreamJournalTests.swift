import Foundation
import Logging
@testable import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewTestSupport
import Synchronization
import Testing

/// Streams a first delta, then waits until `release()` before the rest.
final class HeldModel: ChatModel {
    let descriptor = ModelDescriptor(provider: "held", id: "held", demo: true)
    private let gate = AsyncStream<Void>.makeStream()

    func release() { gate.continuation.yield(()) }

    func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        let gate = gate.stream
        return AsyncThrowingStream { continuation in
            let task = Task {
                continuation.yield(.delta("Rest and fluids help most colds. "))
                for await _ in gate { break }
                continuation.yield(.delta("See a clinician if a fever lasts more than three days."))
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// The journal (durable replay logs of running answers) writes only what is not stored yet.
@Suite(.timeLimit(.minutes(1))) struct StreamJournalTests {
    /// A journal whose timer never fires in a test: it writes only when the test flushes it.
    func journal(_ store: any ConversationStore) -> StreamJournal {
        StreamJournal(store: store, interval: .seconds(3600), logger: Logger(label: "test"))
    }

    /// One whole answer from the scripted model, through a chat service with `journal`.
    func answer(_ store: FlakyFinishStore, _ journal: StreamJournal) async throws -> (stream: ResponseStream, events: [ServerEvent]) {
        let chat = ChatService(model: ScriptedModel(configuration: .init(deltaDelay: .zero)), store: store, configuration: ChatConfiguration(), safety: NoSafetyPolicy(), logger: Logger(label: "test"), journal: journal)
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "How do I sleep better?")
        return (result.stream, await collect(result.stream))
    }

    @Test("an answer whose ending is stored leaves the journal's queue: its events are not written a second time")
    func storedEndingLeavesQueue() async throws {
        let store = FlakyFinishStore()
        let journal = journal(store)
        let (stream, events) = try await answer(store, journal)
        guard case .streamEnd? = events.last else {
            Issue.record("the answer must end with stream.end, got \(String(describing: events.last))")
            return
        }
        #expect(await journal.flush() == false)
        #expect(store.appends.withLock { $0.isEmpty })
        #expect(journal.queuedEvents == 0)
        // The ending holds the whole log.
        let turn = try #require(try await store.turn(streamId: stream.id, userId: "alice"))
        #expect(try turn.events.map { try ServerEvent.decode($0.json) } == events)
    }

    @Test("a running answer's events are journaled, in order, and what the flush wrote is a prefix of what was sent")
    func runningAnswerIsJournaled() async throws {
        let store = FlakyFinishStore()
        let journal = journal(store)
        let model = HeldModel()
        let chat = ChatService(model: model, store: store, configuration: ChatConfiguration(), safety: NoSafetyPolicy(), logger: Logger(label: "test"), journal: journal)
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "I have a cold.")
        // Wait for the first chunk (the model is held after its first delta).
        var seen: [ServerEvent] = []
        for await event in result.stream.subscribe(after: 0) {
            seen.append(event)
            if case .streamChunk = event { break }
        }
        #expect(journal.queuedEvents >= 2)
        #expect(await journal.flush() == false)
        let written = store.appends.withLock { $0 }
        #expect(written.map(\.streamId) == [result.stream.id])
        let writtenEvents = try written.flatMap(\.events).map { try ServerEvent.decode($0.json) }
        // Everything published so far (at least what this subscriber saw), in order.
        #expect(writtenEvents.count >= seen.count)
        #expect(writtenEvents == Array(result.stream.events.prefix(writtenEvents.count)))
        #expect(writtenEvents.contains { if case .streamChunk = $0 { true } else { false } })
        let running = try #require(try await store.streamEvents(streamId: result.stream.id, userId: "alice", after: 0))
        #expect(running.events.count == writtenEvents.count)

        model.release()
        let events = await collect(result.stream)
        guard case .streamEnd? = events.last else {
            Issue.record("the answer must end with stream.end, got \(String(describing: events.last))")
            return
        }
        // What was queued after the first flush is skipped: the ending stored it.
        #expect(await journal.flush() == false)
        #expect(store.appends.withLock { $0.count } == 1)
        #expect(journal.queuedEvents == 0)
    }

    @Test("an ending the store refused keeps its events in the journal, which writes them once the store takes writes")
    func refusedEndingKeepsEvents() async throws {
        let store = FlakyFinishStore()
        store.failing.withLock { $0 = true }
        let journal = journal(store)
        let (stream, events) = try await answer(store, journal)
        if case .error(let error)? = events.last {
            #expect(error.code == .storageUnavailable)
        } else {
            Issue.record("the terminal event must be a storage_unavailable error, got \(String(describing: events.last))")
        }
        #expect(journal.queuedEvents == events.count - 1)
        #expect(await journal.flush() == false)
        let written = try store.appends.withLock { $0 }.flatMap(\.events).map { try ServerEvent.decode($0.json) }
        #expect(written == Array(events.dropLast()))
        let stored = try #require(try await store.streamEvents(streamId: stream.id, userId: "alice", after: 0))
        #expect(stored.events.count == events.count - 1)
    }
}
