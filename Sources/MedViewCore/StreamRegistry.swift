import Logging
import ServiceLifecycle
import Synchronization

/// The answers this process is streaming or has just streamed: reservation of a stream slot per
/// user, lookup by stream id and by client message id, the replay retention of finished answers,
/// and the drain on shutdown.
///
/// Invariants: a user never has more than `maxActiveStreamsPerUser` reserved slots; `running`
/// counts reservations not yet released, so a drain ends exactly when the last answer has stored
/// its ending; a finished answer stays findable for `retention`, then leaves memory (it stays in
/// the store); the replay logs of finished answers together hold at most `replayMemoryBytes`
/// (estimated), the oldest leaving memory first when a new one would exceed it. No timer per stream: expiries are kept in finishing order and removed on access
/// and by ``run()``.
///
/// As a `Service`, it sweeps expired answers while it runs and drains on graceful shutdown: it
/// stops taking new answers, waits up to `gracePeriod` for running ones, then cancels the rest
/// (their partial text is stored) and waits for them to end. Put it after the HTTP server in the
/// service group, so that it shuts down first, while clients are still connected.
public final class StreamRegistry: Service, Sendable {
    /// One reserved answer.
    final class Entry: Sendable {
        let stream: ResponseStream
        let clientKey: String
        let textDigest: String
        private let control = Mutex(Control())

        private struct Control {
            var cancelRequested = false
            var interrupted = false
            var modelTask: Task<TurnOutcome, Never>?
        }

        init(stream: ResponseStream, clientKey: String, textDigest: String) {
            self.stream = stream
            self.clientKey = clientKey
            self.textDigest = textDigest
        }

        /// Asks the run to stop: cancels the model now, or as soon as the run starts it.
        func requestCancel() {
            let task = control.withLock { c -> Task<TurnOutcome, Never>? in
                c.cancelRequested = true
                return c.modelTask
            }
            task?.cancel()
        }

        /// Stops the run as a shutdown does (a retryable `shutting_down` error, the partial text
        /// stored as failed): the process must stop now, not the patient (a Lambda invocation
        /// reaching its deadline).
        func requestInterrupt() {
            control.withLock { $0.interrupted = true }
            requestCancel()
        }

        /// Whether ``requestInterrupt()`` stopped the run.
        var isInterrupted: Bool { control.withLock { $0.interrupted } }

        /// Hands the model task to the entry; cancels it at once if a cancel came first.
        func attach(_ task: Task<TurnOutcome, Never>) {
            let cancelled = control.withLock { c -> Bool in
                c.modelTask = task
                return c.cancelRequested
            }
            if cancelled { task.cancel() }
        }
    }

    /// What ``reserve(userId:clientMessageId:conversationId:streamId:textDigest:)`` found.
    enum Reservation {
        /// The client key already has a live stream.
        case existing(Entry)
        /// A new slot, to be released with ``release(_:evict:)``.
        case reserved(Entry)
    }

    private struct State {
        var streams: [String: Entry] = [:]
        var byClientKey: [String: String] = [:]
        var activePerUser: [String: Int] = [:]
        var running = 0
        var acceptingNew = true
        /// Finished answers in the order they finished (so in expiry order).
        var expiries: [(at: ContinuousClock.Instant, entry: Entry, bytes: Int)] = []
        var expiryHead = 0
        /// Estimated bytes of the finished answers in `expiries` from `expiryHead` on.
        var retainedBytes = 0
        var idleWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0

        mutating func remove(_ entry: Entry) {
            guard streams[entry.stream.id] === entry else { return }
            streams[entry.stream.id] = nil
            if byClientKey[entry.clientKey] == entry.stream.id { byClientKey[entry.clientKey] = nil }
        }

        mutating func evictExpired(now: ContinuousClock.Instant, budget: Int = .max) {
            while expiryHead < expiries.count, expiries[expiryHead].at <= now || retainedBytes > budget {
                remove(expiries[expiryHead].entry)
                retainedBytes -= expiries[expiryHead].bytes
                expiryHead += 1
            }
            if expiryHead > 64, expiryHead * 2 > expiries.count {
                expiries.removeFirst(expiryHead)
                expiryHead = 0
            }
        }
    }

    private let state = Mutex(State())
    private let maxActiveStreamsPerUser: Int
    private let maxRunning: Int
    private let retention: Duration
    private let replayMemoryBytes: Int
    private let gracePeriod: Duration
    private let logger: Logger

    /// - Parameters:
    ///   - maxActiveStreamsPerUser: answers one user may have streaming at once.
    ///   - retention: how long a finished answer stays in memory for fast resume.
    ///   - replayMemoryBytes: estimated bytes the replay logs of finished answers may hold together.
    ///   - gracePeriod: how long a drain lets running answers finish before cancelling them.
    ///   - maxRunning: answers the process runs at once, all users together (admission control:
    ///     past it a new message is refused with `overloaded`).
    public init(maxActiveStreamsPerUser: Int, retention: Duration, replayMemoryBytes: Int = 64 << 20, gracePeriod: Duration = .seconds(20), maxRunning: Int = .max, logger: Logger) {
        self.maxActiveStreamsPerUser = maxActiveStreamsPerUser
        self.maxRunning = maxRunning
        self.retention = retention
        self.replayMemoryBytes = replayMemoryBytes
        self.gracePeriod = gracePeriod
        self.logger = logger
    }

    static func clientKey(userId: String, clientMessageId: String) -> String {
        userId + "\u{0}" + clientMessageId
    }

    /// Finds the live stream of a client key, or reserves a slot and registers a new stream.
    func reserve(userId: String, clientMessageId: String, conversationId: String, streamId: String, textDigest: String, journal: StreamJournal? = nil) throws(ChatError) -> Reservation {
        let key = Self.clientKey(userId: userId, clientMessageId: clientMessageId)
        let limit = maxActiveStreamsPerUser
        return try state.withLock { s throws(ChatError) -> Reservation in
            s.evictExpired(now: .now)
            if let existingId = s.byClientKey[key], let entry = s.streams[existingId] {
                return .existing(entry)
            }
            guard s.acceptingNew else { throw .shuttingDown }
            guard s.activePerUser[userId, default: 0] < limit else { throw .tooManyStreams(limit: limit) }
            // Admission control: a burst beyond what the process may run is refused at once,
            // with a typed retryable error, instead of queueing without bound.
            guard s.running < maxRunning else { throw .overloaded }
            let entry = Entry(stream: ResponseStream(id: streamId, userId: userId, conversationId: conversationId, journal: journal), clientKey: key, textDigest: textDigest)
            s.streams[streamId] = entry
            s.byClientKey[key] = streamId
            s.activePerUser[userId, default: 0] += 1
            s.running += 1
            return .reserved(entry)
        }
    }

    /// The live (or recently finished) stream with this id, if any.
    func entry(streamId: String) -> Entry? {
        state.withLock { s in
            s.evictExpired(now: .now)
            return s.streams[streamId]
        }
    }

    /// Frees the user's stream slot, once per reservation: when the terminal event is about to be
    /// published (a client that sees `stream.end` may send its next message at once).
    func releaseSlot(_ entry: Entry) {
        state.withLock { s in
            let user = entry.stream.userId
            s.activePerUser[user, default: 1] -= 1
            if s.activePerUser[user] == 0 { s.activePerUser[user] = nil }
        }
    }

    /// Ends a reservation whose slot is already free: the answer is no longer running (a drain
    /// waits for this, which comes after the store write), and it leaves memory now (`evict`) or
    /// after the retention.
    func release(_ entry: Entry, evict: Bool) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.running -= 1
            if evict || retention <= .zero {
                s.remove(entry)
            } else {
                let bytes = entry.stream.estimatedBytes
                s.expiries.append((at: .now + retention, entry: entry, bytes: bytes))
                s.retainedBytes += bytes
                s.evictExpired(now: .now, budget: replayMemoryBytes)
            }
            guard s.running == 0 else { return [] }
            defer { s.idleWaiters.removeAll() }
            return Array(s.idleWaiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Abandons a reservation before its stream started (store refused it, or it is a duplicate).
    func abandon(_ entry: Entry) {
        releaseSlot(entry)
        release(entry, evict: true)
    }

    /// Removes the conversation's answers from memory at once and returns them (to be cancelled).
    func removeConversation(id: String, userId: String) -> [Entry] {
        state.withLock { s in
            let doomed = s.streams.values.filter { $0.stream.conversationId == id && $0.stream.userId == userId }
            for entry in doomed { s.remove(entry) }
            return doomed
        }
    }

    /// Whether new answers are accepted (false while draining for shutdown).
    public var isAcceptingNew: Bool { state.withLock { $0.acceptingNew } }

    /// How many answers are running now.
    public var running: Int { state.withLock { $0.running } }

    /// Estimated bytes the replay logs of finished answers hold in memory now.
    public var retainedReplayBytes: Int { state.withLock { $0.retainedBytes } }

    /// Stops accepting answers, lets running ones finish for up to `gracePeriod`, then cancels the
    /// rest (they end with a retryable `shutting_down` error and their partial text stored) and
    /// returns when every answer has ended.
    public func drain(gracePeriod: Duration) async {
        let entries = state.withLock { s -> Int in
            s.acceptingNew = false
            return s.running
        }
        logger.info("shutdown.draining", metadata: ["streams.running": "\(entries)"])
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitUntilIdle() }
            group.addTask { try? await Task.sleep(for: gracePeriod) }
            await group.next()
            group.cancelAll()
        }
        let remaining = state.withLock { s in s.streams.values.filter { !$0.stream.isFinished } }
        for entry in remaining { entry.requestCancel() }
        await waitUntilIdle()
        logger.info("shutdown.drained", metadata: ["streams.cancelled": "\(remaining.count)"])
    }

    /// Returns when no answer is running, or when the calling task is cancelled.
    private func waitUntilIdle() async {
        let id = state.withLock { s -> Int in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.running == 0 || Task.isCancelled { return true }
                    s.idleWaiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.idleWaiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// Sweeps expired answers out of memory until graceful shutdown, then drains.
    public func run() async throws {
        let tick = min(max(retention, .milliseconds(10)), .seconds(1))
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: tick)
                self.state.withLock { $0.evictExpired(now: .now) }
            }
        }
        await drain(gracePeriod: gracePeriod)
    }
}
