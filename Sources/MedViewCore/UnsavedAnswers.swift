import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Answers whose ending the store could not write, kept in memory and written again until the
/// store takes them; and whether store writes are failing now (what `/readyz` reports).
///
/// Invariants: an answer is here from the moment its ending failed to be written until a write
/// of it succeeds or its conversation is erased; while one is here, or within `failureWindow` of
/// the last failed write, ``isFailing`` is true. What is kept is exactly what a client was told:
/// the text sent in chunks with status `failed`, and the replay log ending in the
/// `storage_unavailable` error, so a replay from here, a replay from the store after the retry,
/// and the live stream all agree.
///
/// As a `Service`, it retries every `retryInterval` until graceful shutdown, then once more. Put
/// it after the store in the service group, so that it stops (and makes its last attempt) before
/// the store closes. What is still unsaved when the process ends is lost from memory; the next
/// start marks those answers `failed` (with empty text), as after a crash.
public final class UnsavedAnswers: Service, Sendable {
    private struct Pending {
        var completion: TurnCompletion
        var conversationId: String
    }

    private struct State {
        var pending: [String: Pending] = [:]
        /// Stream ids in the order their write failed (retried in that order).
        var order: [String] = []
        var failingUntil: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    private let store: any ConversationStore
    private let retryInterval: Duration
    private let failureWindow: Duration
    private let observer: (any ChatObserver)?
    private let logger: Logger

    /// - Parameters:
    ///   - retryInterval: how often unsaved answers are written again.
    ///   - failureWindow: how long one failed write (with nothing left unsaved) keeps ``isFailing`` true.
    public init(store: any ConversationStore, retryInterval: Duration = .seconds(1), failureWindow: Duration = .seconds(10), observer: (any ChatObserver)? = nil, logger: Logger) {
        self.store = store
        self.retryInterval = retryInterval
        self.failureWindow = failureWindow
        self.observer = observer
        self.logger = logger
    }

    /// Whether store writes are failing: an answer waits to be written, or a write failed within
    /// the failure window.
    public var isFailing: Bool {
        state.withLock { s in
            if !s.pending.isEmpty { return true }
            guard let until = s.failingUntil else { return false }
            return ContinuousClock.now < until
        }
    }

    /// How many answers wait to be written.
    public var count: Int { state.withLock { $0.pending.count } }

    /// A store write failed during `operation` (counted, and reported by ``isFailing``).
    func writeFailed(_ operation: StoreOperation) {
        state.withLock { $0.failingUntil = .now + failureWindow }
        observer?.storeWriteFailed(operation: operation)
    }

    /// A store write succeeded: the failure window closes (answers still unsaved keep ``isFailing`` true).
    func writeSucceeded() {
        state.withLock { $0.failingUntil = nil }
    }

    /// Keeps an ending the store refused, to write it again later.
    func keep(_ completion: TurnCompletion, conversationId: String) {
        let count = state.withLock { s -> Int in
            if s.pending[completion.streamId] == nil { s.order.append(completion.streamId) }
            s.pending[completion.streamId] = Pending(completion: completion, conversationId: conversationId)
            return s.pending.count
        }
        observer?.unsavedAnswers(count)
    }

    /// The unsaved ending of `streamId` if it is the user's (to replay it).
    func completion(streamId: String, userId: String) -> TurnCompletion? {
        state.withLock { s in
            guard let pending = s.pending[streamId], pending.completion.userId == userId else { return nil }
            return pending.completion
        }
    }

    /// Forgets the conversation's unsaved answers (the conversation is being erased).
    func forget(conversationId: String, userId: String) {
        let count = state.withLock { s -> Int in
            let doomed = s.pending.filter { $0.value.conversationId == conversationId && $0.value.completion.userId == userId }.map(\.key)
            for id in doomed { s.pending[id] = nil }
            s.order.removeAll { s.pending[$0] == nil }
            return s.pending.count
        }
        observer?.unsavedAnswers(count)
    }

    /// Writes unsaved answers, oldest first, until one fails; returns how many are still unsaved.
    @discardableResult
    public func retry() async -> Int {
        while let next = state.withLock({ s in s.order.first.flatMap { s.pending[$0] } }) {
            do {
                try await store.finishTurn(next.completion)
            } catch {
                writeFailed(.retryUnsaved)
                logger.info("store.unsaved.retry_failed", metadata: .failure(error, ["stream.id": "\(next.completion.streamId)"]))
                return count
            }
            let remaining = state.withLock { s -> Int in
                s.failingUntil = nil
                // Written as it was when read; a newer version of the same answer cannot appear.
                s.pending[next.completion.streamId] = nil
                s.order.removeAll { $0 == next.completion.streamId }
                return s.pending.count
            }
            observer?.unsavedAnswers(remaining)
            logger.info("store.unsaved.written", metadata: ["stream.id": "\(next.completion.streamId)"])
        }
        return 0
    }

    /// Retries every `retryInterval` until graceful shutdown, then once more.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.retryInterval)
                if self.count > 0 { await self.retry() }
            }
        }
        let lost = await retry()
        if lost > 0 {
            logger.warning("store.unsaved.lost", metadata: ["streams.count": "\(lost)"])
        }
    }
}

/// Which store write failed (the dimension of the store-failure metric).
public enum StoreOperation: String, Sendable {
    /// Storing a new message (nothing was stored; the client was told at once).
    case beginTurn = "begin_turn"
    /// Storing an answer's ending (it is kept in memory and written again).
    case finishTurn = "finish_turn"
    /// Writing an unsaved answer again.
    case retryUnsaved = "retry_unsaved"
}
