import Logging
import MedViewProtocol
import ServiceLifecycle
import Synchronization

/// Makes the replay logs of running answers durable as they grow: every published event is
/// queued (a lock and an append; publishing never waits for the store) and written with the
/// events of every other running answer in one transaction, at most `interval` after it was
/// queued (group commit). So the time to first chunk does not include a write, and a process
/// killed mid-answer loses at most the events of its last interval (plus one commit).
///
/// Invariants: each stream's events reach the store in sequence order, and a stream's persisted
/// log is always a prefix of what its clients were sent (a batch that fails is retried, ahead of
/// anything newer, until it is written or its answer has ended; the ending stores the whole log
/// anyway). Once an answer's ending is stored, what is still queued of it is skipped
/// (``logStored(streamId:)``): the ending wrote those events with the rest, and most answers end
/// within one interval, so the journal writes only the events of answers still running when it
/// commits. The queue is bounded: past `maxQueuedEvents` (the store is down), whole streams
/// leave the queue, oldest first, and queue nothing more; they still store their whole log when
/// they end.
public final class StreamJournal: Service, Sendable {
    private struct Pending {
        var streamId: String
        var userId: String
        var conversationId: String
        var event: ServerEvent
    }

    private struct State {
        var queue: [Pending] = []
        /// Streams whose events were dropped while the queue was full: nothing more of them is
        /// queued (a gap would break the prefix invariant); their ending stores the whole log.
        var dropped: Set<String> = []
        /// Streams whose ending (with the whole log) is stored: the next flush skips their
        /// queued events. Every event of such a stream was queued before it was added here.
        var stored: Set<String> = []
        var stopped = false
    }

    /// How long an event may wait in the queue before it is written (the group-commit window).
    public let interval: Duration
    private let store: any ConversationStore
    private let maxQueuedEvents: Int
    private let logger: Logger
    private let state = Mutex(State())
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    /// - Parameters:
    ///   - interval: the group-commit window (the durability bound PROTOCOL.md states).
    ///   - maxQueuedEvents: events held while the store does not take writes.
    public init(store: any ConversationStore, interval: Duration = .milliseconds(20), maxQueuedEvents: Int = 50_000, logger: Logger) {
        self.store = store
        self.interval = interval
        self.maxQueuedEvents = maxQueuedEvents
        self.logger = logger
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues an event of a running answer (called by ``ResponseStream/publish(_:)``). The
    /// terminal event is not queued: the answer's ending stores the whole log with it.
    func record(_ event: ServerEvent, streamId: String, userId: String, conversationId: String) {
        guard !event.isTerminal else {
            state.withLock { _ = $0.dropped.remove(streamId) }
            return
        }
        let first = state.withLock { s -> Bool in
            guard !s.stopped, !s.dropped.contains(streamId) else { return false }
            guard s.queue.count < maxQueuedEvents else {
                s.dropped.insert(streamId)
                return false
            }
            s.queue.append(Pending(streamId: streamId, userId: userId, conversationId: conversationId, event: event))
            return s.queue.count == 1
        }
        if first { wake.yield() }
    }

    /// The answer's ending, with its whole replay log, is stored: the events still queued of it
    /// would only be written a second time (or skipped by the store as no longer running), so
    /// the next flush skips them (marked here in constant time: an answer's ending must not wait
    /// on a scan of the queue under the lock that every publish takes). Called before the
    /// terminal event is published, never for an ending the store refused (its events are still
    /// worth writing while it waits to be stored).
    func logStored(streamId: String) {
        state.withLock { s in
            s.dropped.remove(streamId)
            if !s.queue.isEmpty { s.stored.insert(streamId) }
        }
    }

    /// Events waiting to be written (tests and `/metrics`).
    public var queuedEvents: Int { state.withLock { $0.queue.count } }

    /// Writes queued events every `interval` while there are any, until graceful shutdown; then
    /// writes what is left once (best effort: the answers' endings hold their whole logs).
    public func run() async throws {
        for await _ in wakeups.cancelOnGracefulShutdown() {
            try? await Task.sleep(for: interval)
            while await flush() {
                if Task.isCancelled || Task.isShuttingDownGracefully { break }
                try? await Task.sleep(for: interval)
            }
        }
        state.withLock { $0.stopped = true }
        _ = await flush()
    }

    /// Writes every queued event in one call; returns whether more arrived meanwhile (so the
    /// caller waits one interval and writes again). On failure the batch goes back to the front.
    @discardableResult
    package func flush() async -> Bool {
        let (queued, stored) = state.withLock { s -> ([Pending], Set<String>) in
            defer {
                s.queue.removeAll(keepingCapacity: true)
                s.stored.removeAll(keepingCapacity: true)
            }
            return (s.queue, s.stored)
        }
        let batch = stored.isEmpty ? queued : queued.filter { !stored.contains($0.streamId) }
        guard !batch.isEmpty else { return state.withLock { !$0.queue.isEmpty } }
        let appends = Self.group(batch)
        do {
            try await store.appendStreamEvents(appends)
        } catch {
            logger.info("journal.append.failed", metadata: .failure(error, ["journal.events": "\(batch.count)"]))
            state.withLock { s in
                s.queue.insert(contentsOf: batch, at: 0)
                // Over the bound: give up on whole streams, oldest first (a stream loses all its
                // queued events, never some, so what is persisted stays a prefix).
                while s.queue.count > maxQueuedEvents, let oldest = s.queue.first?.streamId {
                    s.dropped.insert(oldest)
                    s.queue.removeAll { $0.streamId == oldest }
                }
            }
            return true
        }
        return state.withLock { !$0.queue.isEmpty }
    }

    /// The batch as one append per stream, events in order, encoded once here (off the hot path).
    private static func group(_ batch: [Pending]) -> [StreamAppend] {
        var order: [String] = []
        var byStream: [String: StreamAppend] = [:]
        for item in batch {
            let entry = StreamLogEntry(seq: item.event.seq ?? 0, json: item.event.jsonString())
            if byStream[item.streamId] == nil {
                order.append(item.streamId)
                byStream[item.streamId] = StreamAppend(streamId: item.streamId, userId: item.userId, conversationId: item.conversationId, events: [])
            }
            byStream[item.streamId]?.events.append(entry)
        }
        return order.compactMap { byStream[$0] }
    }
}
