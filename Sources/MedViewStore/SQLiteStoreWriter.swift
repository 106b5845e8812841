import Logging
import MedViewCore
import ServiceLifecycle
import Synchronization

/// The single writer of a ``SQLiteConversationStore``: commits new and finished turns together
/// (group commit), and as a `Service` flushes them and closes the database on shutdown.
///
/// Concurrent writes are committed together, so a burst of messages pays for one commit, not one
/// each: waiting new turns are written by one statement (its own transaction, one trip to
/// SQLite's thread; see ``TurnSQL/beginMany(_:on:)``), finished turns share one `BEGIN IMMEDIATE
/// … COMMIT`. New turns go first (they gate an answer's first chunk); finished turns follow in
/// bounded batches, so a new turn waits for at most one small transaction. If a batch fails
/// unexpectedly nothing of it is kept and each write is retried alone, so one bad write cannot
/// fail its neighbours.
///
/// Who commits:
/// - While ``run()`` runs (the writer added to the application's `ServiceGroup`), it commits in
///   the background and callers only wait for their result.
/// - Otherwise (tests and tools without a `ServiceGroup`), the first caller that finds no commit
///   running commits every queued write, its own included, before returning.
///
/// Invariants: at most one task commits at a time; a write is accepted only before ``close()``
/// starts, and every accepted write is committed (or fails) before the database closes.
public final class SQLiteStoreWriter: Service, Sendable {
    /// Finished turns written per transaction.
    static let finishesPerBatch = 32

    /// New turns written per statement.
    static let beginsPerBatch = TurnSQL.turnsPerStatement

    /// A `beginTurn` waiting for the group commit.
    private struct PendingBegin: Sendable {
        var turn: Turn
        var newConversation: Conversation?
        var result: PendingResult<BeginTurnResult>
        /// Called on the writer's thread once the turn is committed (not for a duplicate).
        var whenStored: (@Sendable () -> Void)?

        /// Tells whoever waits how the write went: `whenStored` first (when the turn was written),
        /// then the caller.
        func resolve(_ outcome: Result<BeginTurnResult, any Error>) {
            if case .success(.created) = outcome { whenStored?() }
            result.resolve(outcome)
        }
    }

    /// A `finishTurn` waiting for the group commit.
    private struct PendingFinish: Sendable {
        var completion: TurnCompletion
        var result: PendingResult<Void>
    }

    private struct State {
        var begins: [PendingBegin] = []
        var finishes: [PendingFinish] = []
        /// A task is committing queued writes; it commits until the queue is empty.
        var committing = false
        /// ``run()`` is committing in the background.
        var serviceRunning = false
        /// ``close()`` has started: no write is accepted any more.
        var closing = false
        /// Tasks waiting for the running commit to finish.
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// What a caller does after queueing a write.
    private enum Next {
        case wait, wakeService, commit
    }

    /// What a closing caller does next.
    private enum FlushStep {
        case done, waitForCommit, commit
    }

    private let state = Mutex(State())
    private let connection: StoreConnection
    private let logger: Logger
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(connection: StoreConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: - Service

    /// Commits queued writes in the background until graceful shutdown (or cancellation), then
    /// commits every write still queued and closes the database.
    ///
    /// Add the writer to the `ServiceGroup` before the services that write (the stream registry,
    /// the HTTP server): a group shuts down in reverse order, so the writer stops last, after
    /// every answer has finished and been handed to it. Run it once.
    public func run() async throws {
        state.withLock { $0.serviceRunning = true }
        logger.debug("store.writer.started")
        // Writes queued before this point are committed by the callers that queued them.
        for await _ in wakeups.cancelOnGracefulShutdown() {
            await commitIfIdle()
        }
        try await close()
        logger.debug("store.writer.stopped")
    }

    /// Whether ``run()`` is committing in the background (tests wait for this).
    package var isRunningAsService: Bool {
        state.withLock { $0.serviceRunning && !$0.closing }
    }

    // MARK: - Writes

    /// Queues a new turn for the next group commit and returns its result once committed.
    /// - Throws: ``StoreError/conversationNotFound``, or ``StoreError/unavailable(_:)`` if the
    ///   writer is closed or the commit failed.
    func begin(_ turn: Turn, newConversation: Conversation?) async throws -> BeginTurnResult {
        let result = PendingResult<BeginTurnResult>()
        try await submit { $0.begins.append(PendingBegin(turn: turn, newConversation: newConversation, result: result)) }
        return try await result.value
    }

    /// Queues a new turn for the next group commit without waiting for it, when someone else
    /// commits it (the writer runs as a service, or a commit is running); `nil` otherwise (the
    /// caller would have to commit it: use ``begin(_:newConversation:)``).
    /// - Throws: ``StoreError/unavailable(_:)`` if the writer is closed.
    /// `whenStored` is called on the writer's thread as soon as the turn is committed.
    func queueBegin(_ turn: Turn, newConversation: Conversation?, whenStored: @escaping @Sendable () -> Void) throws -> PendingResult<BeginTurnResult>? {
        let result = PendingResult<BeginTurnResult>()
        guard let next = try queue(callerMayCommit: false, { $0.begins.append(PendingBegin(turn: turn, newConversation: newConversation, result: result, whenStored: whenStored)) }) else { return nil }
        if case .wakeService = next { wake.yield() }
        return result
    }

    /// Queues a finished turn for the next group commit and returns once it is committed.
    /// - Throws: ``StoreError/unavailable(_:)`` if the writer is closed or the commit failed.
    func finish(_ completion: TurnCompletion) async throws {
        let result = PendingResult<Void>()
        try await submit { $0.finishes.append(PendingFinish(completion: completion, result: result)) }
        try await result.value
    }

    /// Stops accepting writes, commits every write already accepted, and closes the database.
    /// Closing twice is harmless.
    func close() async throws {
        state.withLock { $0.closing = true }
        await flush()
        try await connection.close()
    }

    // MARK: - Scheduling

    /// Queues a write with `enqueue` and makes sure someone commits it.
    private func submit(_ enqueue: (inout State) -> Void) async throws {
        guard let next = try queue(callerMayCommit: true, enqueue) else { return }
        switch next {
        case .wait: break
        case .wakeService: wake.yield()
        case .commit: await commitQueued()
        }
    }

    /// Queues a write with `enqueue` and says who commits it: a running commit, the service, or
    /// (when neither does and `callerMayCommit`) the caller, now marked as committing. `nil`, with
    /// nothing queued, when only the caller could commit it and may not.
    private func queue(callerMayCommit: Bool, _ enqueue: (inout State) -> Void) throws -> Next? {
        try state.withLock { state throws(StoreError) -> Next? in
            guard !state.closing else { throw StoreError.unavailable("store is closed") }
            guard state.committing || state.serviceRunning || callerMayCommit else { return nil }
            enqueue(&state)
            if state.committing { return .wait }
            if state.serviceRunning { return .wakeService }
            state.committing = true
            return .commit
        }
    }

    /// Commits the queue unless another task is already doing so.
    private func commitIfIdle() async {
        let start = state.withLock { state -> Bool in
            if state.committing { return false }
            state.committing = true
            return true
        }
        if start { await commitQueued() }
    }

    /// Returns once no write is queued and no commit runs, committing queued writes itself when
    /// nobody else is.
    private func flush() async {
        while true {
            let step = state.withLock { state -> FlushStep in
                if state.committing { return .waitForCommit }
                if state.begins.isEmpty, state.finishes.isEmpty { return .done }
                state.committing = true
                return .commit
            }
            switch step {
            case .done:
                return
            case .commit:
                await commitQueued()
            case .waitForCommit:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let waiting = state.withLock { state -> Bool in
                        guard state.committing else { return false }
                        state.idleWaiters.append(continuation)
                        return true
                    }
                    if !waiting { continuation.resume() }
                }
            }
        }
    }

    /// Commits queued writes in batches until none are left: waiting new turns first (up to one
    /// statement's worth at a time), then finished turns in bounded batches. The caller must have
    /// set `committing`; this clears it.
    private func commitQueued() async {
        while true {
            let (begins, finishes, idle) = state.withLock { state -> ([PendingBegin], [PendingFinish], [CheckedContinuation<Void, Never>]) in
                if !state.begins.isEmpty {
                    let batch = Array(state.begins.prefix(Self.beginsPerBatch))
                    state.begins.removeFirst(batch.count)
                    return (batch, [], [])
                }
                if state.finishes.isEmpty {
                    state.committing = false
                    defer { state.idleWaiters.removeAll() }
                    return ([], [], state.idleWaiters)
                }
                let batch = Array(state.finishes.prefix(Self.finishesPerBatch))
                state.finishes.removeFirst(batch.count)
                return ([], batch, [])
            }
            if !begins.isEmpty {
                await commitBegins(begins)
            } else if !finishes.isEmpty {
                await commitFinishes(finishes)
            } else {
                for waiter in idle { waiter.resume() }
                return
            }
        }
    }

    /// Whether a batch of `count` writes runs on the committing task's own thread: a lone write
    /// with nothing else queued (a quiet service, where a thread hop would be most of its time).
    /// Bigger batches, or a busy queue, run on SQLite's thread pool and leave the few threads of
    /// Swift's tasks to the answers (50 clients: first chunk p50 40.9–47.0 ms with every batch on
    /// the pool, 48.9–62.9 ms with every batch inline).
    private func isLoneWrite(_ count: Int) -> Bool {
        count == 1 && state.withLock { $0.begins.isEmpty && $0.finishes.isEmpty }
    }

    /// Commits new turns in one statement (no explicit transaction: the statement is one, and
    /// all or nothing); if it fails, each alone.
    private func commitBegins(_ batch: [PendingBegin]) async {
        do {
            let results = try await connection.withWriter("beginTurn", inline: isLoneWrite(batch.count)) { connection in
                try await TurnSQL.beginMany(batch.map { ($0.turn, $0.newConversation) }, on: connection)
            }
            for (item, result) in zip(batch, results) {
                item.resolve(result.mapError { $0 as any Error })
            }
            logger.debug("store.writer.committed", metadata: ["store.operation": "beginTurn", "batch.size": "\(batch.count)"])
        } catch {
            logger.debug("store.writer.batch_retried", metadata: ["store.operation": "beginTurn", "batch.size": "\(batch.count)"])
            for item in batch {
                do {
                    let result = try await connection.withWriter("beginTurn", inline: false) { connection in
                        try await TurnSQL.beginMany([(item.turn, item.newConversation)], on: connection)[0].get()
                    }
                    item.resolve(.success(result))
                } catch {
                    item.resolve(.failure(error))
                }
            }
        }
    }

    /// Commits finished turns in one transaction; on an unexpected failure, each alone.
    private func commitFinishes(_ batch: [PendingFinish]) async {
        do {
            try await connection.writerTransaction("finishTurn", inline: isLoneWrite(batch.count)) { connection in
                try await TurnSQL.finishMany(batch.map(\.completion), on: connection)
            }
            for item in batch { item.result.resolve(.success(())) }
            logger.debug("store.writer.committed", metadata: ["store.operation": "finishTurn", "batch.size": "\(batch.count)"])
        } catch {
            logger.debug("store.writer.batch_retried", metadata: ["store.operation": "finishTurn", "batch.size": "\(batch.count)"])
            for item in batch {
                do {
                    try await connection.writerTransaction("finishTurn", inline: false) { connection in
                        try await TurnSQL.finishMany([item.completion], on: connection)
                    }
                    item.result.resolve(.success(()))
                } catch {
                    item.result.resolve(.failure(error))
                }
            }
        }
    }
}
