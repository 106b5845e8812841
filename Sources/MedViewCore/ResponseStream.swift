import Foundation
import MedViewProtocol
import Synchronization

/// One answer as a sequence of events: numbering, replay log and fan-out.
///
/// Invariants:
/// - Events get `seq` 1, 2, 3, … with no gaps, in the order they are published.
/// - The log keeps every event, so a subscriber can start at any `seq` and see each later event once.
/// - After a terminal event (`stream.end` or a stream `error`) nothing more is published.
/// - Publishing never waits for a subscriber. A subscriber is a cursor into the shared log, so
///   its buffer is bounded by construction: a slow client holds no copy of the events, falls
///   behind, and catches up from the log at its own pace (the same path a resume takes),
///   without blocking the model or any other subscriber.
public final class ResponseStream: Sendable {
    public let id: String
    public let userId: String
    public let conversationId: String

    private struct State {
        var events: [ServerEvent] = []
        /// When each event was published (parallel to `events`; empty for replayed logs).
        var publishedAt: [ContinuousClock.Instant] = []
        var finished = false
        /// Estimated memory of the log (``estimatedBytes(of:)`` summed).
        var bytes = 0
        /// Suspended subscribers, resumed with `true` for news (or cancellation), `false` when
        /// their idle limit ran out (``interruptWait(_:)``).
        var waiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        /// Waits whose idle limit ran out before they began waiting (a timer that fired early).
        var interrupted: Set<UInt64> = []
        var nextWaiterId: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Where published events are made durable as they go (nil: only the ending stores the log).
    private let journal: StreamJournal?

    public init(id: String, userId: String, conversationId: String, journal: StreamJournal? = nil) {
        self.id = id
        self.userId = userId
        self.conversationId = conversationId
        self.journal = journal
    }

    /// Builds a stream from a stored replay log: finished, or (`finished: false`) still growing
    /// through ``appendLogged(_:)`` as another process publishes it.
    public init(id: String, userId: String, conversationId: String, replaying events: [ServerEvent], finished: Bool = true) {
        self.id = id
        self.userId = userId
        self.conversationId = conversationId
        self.journal = nil
        state.withLock {
            $0.events = events
            $0.bytes = events.reduce(0) { $0 + Self.estimatedBytes(of: $1) }
            $0.finished = finished || events.last?.isTerminal == true
        }
    }

    /// Appends an event read from the stored log of a stream another process runs, if it is the
    /// next one (its `seq` follows the last); returns whether it was appended.
    @discardableResult
    public func appendLogged(_ event: ServerEvent) -> Bool {
        let waiters: [CheckedContinuation<Bool, Never>]? = state.withLock { s in
            guard !s.finished, event.seq == s.events.count + 1 else { return nil }
            s.events.append(event)
            s.bytes += Self.estimatedBytes(of: event)
            if event.isTerminal { s.finished = true }
            defer { s.waiters.removeAll(keepingCapacity: true) }
            return Array(s.waiters.values)
        }
        guard let waiters else { return false }
        for w in waiters { w.resume(returning: true) }
        return true
    }

    /// Estimated bytes the replay log holds (what the registry's memory budget counts).
    public var estimatedBytes: Int { state.withLock { $0.bytes } }

    /// A cheap estimate of the memory one logged event holds: its text plus a fixed overhead.
    static func estimatedBytes(of event: ServerEvent) -> Int {
        switch event {
        case .streamChunk(let chunk): 96 + chunk.text.utf8.count
        case .safetyAlert(let alert): 256 + alert.guidance.utf8.count
        case .safetyWarning(let warning): 256 + warning.advice.utf8.count
        default: 256
        }
    }

    /// The sequence number the next published event gets.
    public var nextSeq: Int { state.withLock { $0.events.count + 1 } }

    /// Whether the terminal event has been published.
    public var isFinished: Bool { state.withLock { $0.finished } }

    /// When the event with sequence number `seq` was published, if it was published live.
    public func publishedAt(seq: Int) -> ContinuousClock.Instant? {
        state.withLock { s in seq >= 1 && seq <= s.publishedAt.count ? s.publishedAt[seq - 1] : nil }
    }

    /// Every event published so far.
    public var events: [ServerEvent] { state.withLock { $0.events } }

    /// Publishes the event `make(seq)` builds for the next sequence number; returns it, or `nil`
    /// when the stream has already ended.
    @discardableResult
    public func publish(_ make: (Int) -> ServerEvent) -> ServerEvent? {
        let (event, waiters): (ServerEvent?, [CheckedContinuation<Bool, Never>]) = state.withLock { s in
            guard !s.finished else { return (nil, []) }
            let event = make(s.events.count + 1)
            s.events.append(event)
            s.bytes += Self.estimatedBytes(of: event)
            s.publishedAt.append(.now)
            if event.isTerminal { s.finished = true }
            // Queued under the stream's lock, so the journal sees its events in sequence order.
            journal?.record(event, streamId: id, userId: userId, conversationId: conversationId)
            let w = Array(s.waiters.values)
            s.waiters.removeAll(keepingCapacity: true)
            return (event, w)
        }
        for w in waiters { w.resume(returning: true) }
        return event
    }

    /// The store has this stream's whole replay log (its ending was stored): the journal need
    /// not write what it still holds of it.
    func logStored() {
        journal?.logStored(streamId: id)
    }

    /// What a subscriber gets when it asks for the event after `seq`.
    public enum Next: Sendable, Equatable {
        case event(ServerEvent)
        /// The stream ended and the subscriber has seen every event.
        case finished
        /// Nothing new arrived within the timeout (used for keep-alives).
        case timeout
    }

    /// The first event with a sequence number greater than `seq`, waiting for it if needed.
    ///
    /// Returns `.finished` once everything has been seen, `.timeout` after `timeout` without news,
    /// and `.finished` if the calling task is cancelled.
    public func next(after seq: Int, timeout: Duration? = nil) async -> Next {
        switch await nextBatch(after: seq, limit: 1, timeout: timeout) {
        case .events(let events): .event(events[0])
        case .finished: .finished
        case .timeout: .timeout
        }
    }

    /// What a subscriber gets when it asks for everything after a `seq`.
    public enum Batch: Sendable, Equatable {
        /// Every event published after the `seq` asked for (at least one, at most the limit).
        case events([ServerEvent])
        /// The stream ended and the subscriber has seen every event.
        case finished
        /// Nothing new arrived within the timeout (used for keep-alives).
        case timeout
    }

    /// Every event after `seq` that is already published (up to `limit`), waiting only when there
    /// is none: a writer that fell behind catches up in one write, and waits (with its timeout
    /// timer) once per batch instead of once per event. Cancellation ends it as ``next(after:timeout:)``.
    public func nextBatch(after seq: Int, limit: Int = 64, timeout: Duration? = nil) async -> Batch {
        while true {
            if Task.isCancelled { return .finished }
            if let immediate = immediateBatch(after: seq, limit: limit) { return immediate }
            let woke = await waitForChange(knownCount: seq, timeout: timeout)
            if !woke { return .timeout }
        }
    }

    /// What ``nextBatch(after:limit:timeout:)`` returns without waiting, if anything.
    fileprivate func immediateBatch(after seq: Int, limit: Int) -> Batch? {
        state.withLock { s in
            if seq < s.events.count { return .events(Array(s.events[seq..<min(s.events.count, seq + max(1, limit))])) }
            if s.finished { return .finished }
            return nil
        }
    }

    /// Events after `seq` as an async sequence that ends with the stream (or when the task is cancelled).
    public func subscribe(after seq: Int) -> AsyncStream<ServerEvent> {
        AsyncStream { continuation in
            let task = Task {
                var last = seq
                while case .event(let event) = await self.next(after: last) {
                    last = event.seq ?? last + 1
                    continuation.yield(event)
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// A reader of this stream whose waits end with `.timeout` after `idle` without news (for
    /// keep-alives), timed by `timer` (``IdleReader``).
    public func reader(idle: Duration, timer: CoarseTimer) -> IdleReader {
        IdleReader(stream: self, idle: idle, timer: timer)
    }

    /// Suspends until the log grows past `knownCount` or the stream ends. Returns `false` on timeout.
    private func waitForChange(knownCount: Int, timeout: Duration?) async -> Bool {
        let waiterId = makeWaiterId()
        // The timer ends the wait only if nothing else ended it first.
        let timer: Task<Void, Never>? = timeout.map { timeout in
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                guard !Task.isCancelled else { return }
                self?.interruptWait(waiterId)
            }
        }
        let woke = await wait(knownCount: knownCount, waiterId: waiterId)
        timer?.cancel()
        return woke
    }

    /// A new id for ``wait(knownCount:waiterId:)``.
    func makeWaiterId() -> UInt64 {
        state.withLock { s in
            s.nextWaiterId &+= 1
            return s.nextWaiterId
        }
    }

    /// Suspends until the log grows past `knownCount`, the stream ends, the task is cancelled
    /// (all `true`) or ``interruptWait(_:)`` ends the wait (`false`).
    func wait(knownCount: Int, waiterId: UInt64) async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let resumeNow = state.withLock { s -> Bool? in
                    if s.interrupted.remove(waiterId) != nil { return false }
                    if knownCount < s.events.count || s.finished || Task.isCancelled { return true }
                    s.waiters[waiterId] = c
                    return nil
                }
                if let resumeNow { c.resume(returning: resumeNow) }
            }
        } onCancel: {
            let w = state.withLock { $0.waiters.removeValue(forKey: waiterId) }
            w?.resume(returning: true)
        }
    }

    /// Ends the wait `waiterId` with a timeout: at once if it is waiting, or as soon as it begins
    /// (a timer may fire before its waiter got to wait). A timer that fires just as its wait ended
    /// with news leaves the id behind, unused, until the stream is released (a few bytes, rarely).
    func interruptWait(_ waiterId: UInt64) {
        let w: CheckedContinuation<Bool, Never>? = state.withLock { s in
            if let w = s.waiters.removeValue(forKey: waiterId) { return w }
            s.interrupted.insert(waiterId)
            return nil
        }
        w?.resume(returning: false)
    }
}

/// Reads a ``ResponseStream`` batch by batch as ``ResponseStream/nextBatch(after:limit:timeout:)``
/// does, a wait ending with `.timeout` once it has lasted `idle` without news, but timed by a
/// shared ``CoarseTimer`` instead of a task, a sleeping task and a Dispatch timer per wait.
///
/// A fast answer's reader waits three or four times in a few milliseconds (for `stream.start`, the
/// chunks, the ending): each wait arms the shared timer and disarms it when news comes, a
/// dictionary update each. The timeout comes within one of the timer's ticks after `idle`.
public struct IdleReader: Sendable {
    private let stream: ResponseStream
    private let idle: Duration
    private let timer: CoarseTimer

    fileprivate init(stream: ResponseStream, idle: Duration, timer: CoarseTimer) {
        self.stream = stream
        self.idle = idle
        self.timer = timer
    }

    /// Every event after `seq` already published (up to `limit`), waiting when there is none:
    /// `.timeout` when the wait lasted `idle`, `.finished` at the end or when the task is cancelled.
    public func nextBatch(after seq: Int, limit: Int = 64) async -> ResponseStream.Batch {
        while true {
            if Task.isCancelled { return .finished }
            if let immediate = stream.immediateBatch(after: seq, limit: limit) { return immediate }
            let id = stream.makeWaiterId()
            let token = timer.schedule(at: .now + idle) { [stream] in stream.interruptWait(id) }
            let woke = await stream.wait(knownCount: seq, waiterId: id)
            timer.cancel(token)
            if !woke { return .timeout }
        }
    }
}
