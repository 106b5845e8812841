import Foundation
import Logging
import MedViewProtocol
import MedViewSafety

/// Observes the stream engine for metrics. Implementations must be cheap and never block.
public protocol ChatObserver: Sendable {
    /// The first chunk of a stream was published. `total` runs from `send` being called;
    /// `serverAdded` leaves out the model's own time: it is the time from `send` to the model
    /// being called plus the time from the model delta that completed the chunk to its publication.
    func firstChunk(total: Duration, serverAdded: Duration)
    /// A stream ended with `status`.
    func streamEnded(status: MessageStatus)
    /// A `safety.alert` was published `after` the message reached ``ChatService/send(userId:conversationId:clientMessageId:text:)``.
    func alertPublished(after: Duration)
    /// A store write failed (``UnsavedAnswers``).
    func storeWriteFailed(operation: StoreOperation)
    /// `count` answers now wait in memory to be written to the store.
    func unsavedAnswers(_ count: Int)
    /// A chunk was published `gap` after the previous chunk of the same answer.
    func chunkPublished(gap: Duration)
    /// A `safety.alert` of `category` was published (counts only: never text).
    func safetyAlert(category: String)
    /// A `safety.warning` of `category` was published.
    func safetyWarning(category: String)
    /// An answer ended with a typed `error` event of wire code `code`.
    func streamError(code: String)
    /// The model of `provider` was called for an answer.
    func modelCalled(provider: String)
    /// The model's first delta arrived `after` it was called.
    func modelFirstDelta(provider: String, after: Duration)
    /// A model call ended throttled (after any retries).
    func modelThrottled(provider: String)
}

extension ChatObserver {
    public func chunkPublished(gap: Duration) {}
    public func safetyAlert(category: String) {}
    public func safetyWarning(category: String) {}
    public func streamError(code: String) {}
    public func modelCalled(provider: String) {}
    public func modelFirstDelta(provider: String, after: Duration) {}
    public func modelThrottled(provider: String) {}
    public func alertPublished(after: Duration) {}
    public func storeWriteFailed(operation: StoreOperation) {}
    public func unsavedAnswers(_ count: Int) {}
}

/// The result of ``ChatService/send(userId:conversationId:clientMessageId:text:)``.
public struct SendResult: Sendable {
    public var stream: ResponseStream
    public var conversationId: String
    /// `true` when the client message id was seen before and this re-attaches to its stream.
    public var duplicate: Bool
}

/// The stream engine's entry point: takes a patient's message, stores it, and starts its answer;
/// finds, cancels and erases answers. It composes the parts that do the work:
/// ``StreamRegistry`` (slots, lookup, retention, drain), ``Idempotency`` (what a repeated send
/// gets), ``TurnRunner`` (one answer) and the injected ``SafetyPolicy``.
///
/// Invariants: the user message is stored before the model is called; every stream ends with
/// exactly one terminal event and its assistant message is stored with status complete,
/// cancelled or failed (with the partial text the client received); a client message id seen
/// before never calls the model again.
public final class ChatService: Sendable {
    public let model: any ChatModel
    public let store: any ConversationStore
    public let configuration: ChatConfiguration
    /// The answers of this process; run it as a `Service` (it sweeps and drains).
    public let registry: StreamRegistry
    /// Answers whose ending the store refused, written again until it takes them; run it as a
    /// `Service` after the store. Its ``UnsavedAnswers/isFailing`` is the store's write health.
    public let unsaved: UnsavedAnswers
    /// The per-user limits consulted before a new answer starts.
    public let limiter: any UsageLimiter
    /// Makes each answer's replay log durable as it grows (nil: stored when the answer ends).
    public let journal: StreamJournal?
    /// Answers other processes stream, followed through the shared store (nil: one process).
    public let followers: StreamFollowers?
    /// This process's id, recorded on the turns it begins (see ``StreamRecovery``).
    public let instanceId: String?
    private let safety: any SafetyPolicy
    private let runner: TurnRunner
    /// Recent conversations' context windows (`nil` when ``ChatConfiguration/contextCacheConversations`` is 0).
    private let windows: ContextWindowCache?
    private let logger: Logger

    /// - Parameters:
    ///   - safety: the clinical checks (``ClinicalSafetyPolicy`` in every deployment; ``NoSafetyPolicy`` only to measure the engine alone).
    ///   - registry: the process's stream registry; by default one built from `configuration`.
    ///   - limiter: the per-user limits; by default ``InMemoryUsageLimiter`` with `configuration.usageLimits`.
    ///   - journal: the durable replay log's group commit (run it as a `Service` after the store).
    ///   - followers: how answers of other processes sharing the store are resumed.
    ///   - instanceId: this process's id (``StreamRecovery/instanceId``).
    public init(model: any ChatModel, store: any ConversationStore, configuration: ChatConfiguration, safety: any SafetyPolicy, logger: Logger, observer: (any ChatObserver)? = nil, registry: StreamRegistry? = nil, limiter: (any UsageLimiter)? = nil, journal: StreamJournal? = nil, followers: StreamFollowers? = nil, instanceId: String? = nil) {
        self.journal = journal
        self.followers = followers
        self.instanceId = instanceId
        self.model = model
        self.store = store
        self.configuration = configuration
        self.safety = safety
        self.logger = logger
        let registry = registry ?? StreamRegistry(maxActiveStreamsPerUser: configuration.maxActiveStreamsPerUser, retention: configuration.replayRetention, replayMemoryBytes: configuration.replayMemoryBytes, maxRunning: configuration.maxRunningAnswers, logger: logger)
        self.registry = registry
        let unsaved = UnsavedAnswers(store: store, retryInterval: configuration.storeRetryInterval, observer: observer, logger: logger)
        self.unsaved = unsaved
        let limiter = limiter ?? configuration.usageLimits.map { InMemoryUsageLimiter(limits: $0) } ?? UnlimitedUsage()
        self.limiter = limiter
        let windows = configuration.contextCacheConversations > 0 ? ContextWindowCache(capacity: configuration.contextCacheConversations) : nil
        self.windows = windows
        self.runner = TurnRunner(
            model: model,
            store: store,
            safety: safety,
            contextBuilder: ContextBuilder(systemPrompt: configuration.systemPrompt, budgetTokens: configuration.contextBudgetTokens, maxOutputTokens: configuration.maxOutputTokens, temperature: configuration.temperature),
            chunking: configuration.chunking,
            flushTimer: CoarseTimer(tick: CoarseTimer.tick(for: configuration.chunking.maxDelay)),
            contextWindowMessages: configuration.contextWindowMessages,
            windows: windows,
            registry: registry,
            unsaved: unsaved,
            limiter: limiter,
            observer: observer,
            logger: logger
        )
    }

    /// Sends a patient's message and starts (or re-attaches to) its answer.
    public func send(userId: String, conversationId: String?, clientMessageId: String, text: String) async throws(ChatError) -> SendResult {
        let started = ContinuousClock.now
        try TextRules.validateMessage(text)
        guard text.count <= configuration.maxMessageCharacters else { throw .messageTooLarge(limit: configuration.maxMessageCharacters) }
        let digest = Idempotency.digest(text)
        let streamId = Identifier.make("s")
        let conversation = conversationId ?? Identifier.make("c")

        let reservation: StreamRegistry.Reservation
        do throws(ChatError) {
            reservation = try registry.reserve(userId: userId, clientMessageId: clientMessageId, conversationId: conversation, streamId: streamId, textDigest: digest, journal: journal)
            if case .reserved(let entry) = reservation {
                // Only a new answer counts against the user's limits; a re-sent message does not.
                do throws(ChatError) {
                    try await limiter.admitMessage(userId: userId, now: Date())
                } catch {
                    registry.abandon(entry)
                    throw error
                }
            }
        } catch {
            // A retry of a message whose stream already left memory is a re-attach, not a new
            // answer: the limits that refused a new stream do not apply to it.
            guard let stored = try? await store.turn(clientMessageId: clientMessageId, userId: userId) else { throw error }
            return try await reattach(.stored(stored), userId: userId, digest: digest)
        }
        let entry: StreamRegistry.Entry
        switch reservation {
        case .existing(let live):
            return try await reattach(.live(live), userId: userId, digest: digest)
        case .reserved(let reserved):
            entry = reserved
        }

        let now = Date()
        let newConversation = conversationId == nil
            ? Conversation(id: conversation, userId: userId, title: Self.title(for: text), createdAt: now, updatedAt: now)
            : nil
        let turn = Turn(
            streamId: streamId, userId: userId, conversationId: conversation, clientMessageId: clientMessageId,
            userMessage: StoredMessage(id: Identifier.make("m"), conversationId: conversation, userId: userId, role: .user, text: text, status: .complete, streamId: streamId, createdAt: now),
            assistantMessage: StoredMessage(id: Identifier.make("m"), conversationId: conversation, userId: userId, role: .assistant, text: "", status: .streaming, streamId: streamId, createdAt: now),
            events: [],
            ownerInstanceId: instanceId
        )
        let result: BeginTurnResult
        let prepared: TurnRunner.Prepared
        // What the answer needs that does not depend on this turn's messages being stored is
        // worked out while they are stored (``TurnRunner/prepare(_:isNewConversation:gate:)``),
        // the model call made ready included (a connection taken, the request signed; nothing
        // sent). The store is handed the turn first, so its write starts at once, and this task
        // does the rest meanwhile. The request is sent only once the turn is stored: by the gate,
        // from the store's writer the moment it commits (or from here, when the call is ready
        // after that).
        let isNewConversation = newConversation != nil
        let gate = ModelCallGate()
        do {
            (result, prepared) = try await store.beginTurn(turn, newConversation: newConversation, whenStored: { gate.stored() }) { [runner] in
                await runner.prepare(turn, isNewConversation: isNewConversation, gate: gate)
            }
        } catch StoreError.conversationNotFound {
            gate.discard()
            registry.abandon(entry)
            throw .conversationNotFound
        } catch StoreError.tooManyStreams(let limit) {
            gate.discard()
            registry.abandon(entry)
            throw .tooManyStreams(limit: limit)
        } catch {
            gate.discard()
            registry.abandon(entry)
            unsaved.writeFailed(.beginTurn)
            logger.info("store.begin_turn.failed", metadata: .failure(error, ["stream.id": "\(streamId)"]))
            throw .storageUnavailable(.saveMessage)
        }
        unsaved.writeSucceeded()
        switch result {
        case .duplicate(let stored):
            gate.discard()
            registry.abandon(entry)
            return try await reattach(.stored(stored), userId: userId, digest: digest)
        case .created:
            logger.debug("stream.created", metadata: ["stream.id": "\(streamId)", "conversation.id": "\(conversation)", "user.id": "\(userId)"])
            let job = TurnRunner.Job(entry: entry, turn: turn, started: started, prepared: prepared, sentAt: gate.sentAt)
            // The model is called here (unless its request was sent already, as the turn was
            // stored), not from the answer's own task: one hand-off less before it (the `ack` goes
            // out once the call has started).
            let running = runner.start(job)
            Task { await runner.finish(running) }
            return SendResult(stream: entry.stream, conversationId: conversation, duplicate: false)
        }
    }

    private func reattach(_ prior: Idempotency.Prior, userId: String, digest: String) async throws(ChatError) -> SendResult {
        switch try Idempotency.decide(prior, userId: userId, textDigest: digest) {
        case .live(let stream):
            return SendResult(stream: stream, conversationId: stream.conversationId, duplicate: true)
        case .stored(let streamId, let conversationId):
            return SendResult(stream: try await stream(id: streamId, userId: userId), conversationId: conversationId, duplicate: true)
        }
    }

    /// The stream `id` if it is the user's: live, or rebuilt from the stored replay log.
    public func stream(id: String, userId: String) async throws(ChatError) -> ResponseStream {
        if let entry = registry.entry(streamId: id) {
            guard entry.stream.userId == userId else { throw .streamNotFound }
            return entry.stream
        }
        if let completion = unsaved.completion(streamId: id, userId: userId) {
            // Its ending waits to be written: replay it from memory, as the store will have it.
            return try Self.replay(streamId: id, userId: userId, conversationId: nil, log: completion.events)
        }
        let turn: Turn?
        do {
            turn = try await store.turn(streamId: id, userId: userId)
        } catch {
            throw .storageUnavailable(.loadStream)
        }
        guard let turn else { throw .streamNotFound }
        if turn.assistantMessage.status == .streaming, let followers {
            // Another process is answering (or died doing so, and will be recovered): follow it.
            return try followers.follow(turn)
        }
        guard !turn.events.isEmpty else { throw .streamNotReplayable }
        return try Self.replay(streamId: turn.streamId, userId: turn.userId, conversationId: turn.conversationId, log: turn.events)
    }

    /// A finished stream rebuilt from a replay log (its conversation id is read from `stream.start` when not given).
    private static func replay(streamId: String, userId: String, conversationId: String?, log: [StreamLogEntry]) throws(ChatError) -> ResponseStream {
        var events: [ServerEvent] = []
        events.reserveCapacity(log.count)
        for entry in log {
            guard let event = try? ServerEvent.decode(entry.json) else { throw .storedStreamUnreadable }
            events.append(event)
            if event.isTerminal { break } // nothing after the ending (a late append of a recovered stream)
        }
        var conversation = conversationId
        if conversation == nil, case .streamStart(let start)? = events.first { conversation = start.conversationId }
        guard let conversation else { throw .storedStreamUnreadable }
        return ResponseStream(id: streamId, userId: userId, conversationId: conversation, replaying: events)
    }

    /// Cancels the stream if it is the user's and still running. Cancelling a finished stream does nothing.
    public func cancel(streamId: String, userId: String) async throws(ChatError) {
        guard let entry = registry.entry(streamId: streamId) else {
            // Not live here: answer not-found unless it is a stored stream of this user; if it
            // still streams, on another process, ask that process to cancel it.
            let stream = try await stream(id: streamId, userId: userId)
            if !stream.isFinished { try await followers?.requestRemoteCancel(streamId: streamId) }
            return
        }
        guard entry.stream.userId == userId else { throw .streamNotFound }
        entry.requestCancel()
    }

    /// Stops this process's running answer `streamId` because the process must stop (a Lambda
    /// invocation at its deadline): it ends with a retryable `shutting_down` error and its partial
    /// text is stored as failed, as on a graceful shutdown. Does nothing if it is not running here.
    public func interrupt(streamId: String) {
        registry.entry(streamId: streamId)?.requestInterrupt()
    }

    /// Erases a conversation (the patient's right to erase): cancels its running answers, drops
    /// their replay logs from memory at once, then deletes everything stored. `false` if the
    /// conversation does not exist for this user.
    public func deleteConversation(id: String, userId: String) async throws(ChatError) -> Bool {
        for entry in registry.removeConversation(id: id, userId: userId) {
            entry.requestCancel()
        }
        unsaved.forget(conversationId: id, userId: userId)
        windows?.remove(conversationId: id)
        do {
            return try await store.deleteConversation(id: id, userId: userId)
        } catch {
            throw .storageUnavailable(.deleteConversation)
        }
    }

    /// Loads the safety layer's data now, so the first message does not wait for it.
    public func prepareSafety() {
        safety.prepare()
    }

    /// One calm sentence for clients to show near answers (information, not diagnosis).
    public static var disclaimer: String { SafetyFraming.disclaimer }

    /// Whether new messages are accepted (false while draining for shutdown).
    public var isAcceptingMessages: Bool { registry.isAcceptingNew }

    /// How many streams are running now.
    public var runningStreams: Int { registry.running }

    /// Stops accepting messages, lets running streams finish for up to `gracePeriod`, then cancels
    /// the rest (see ``StreamRegistry/drain(gracePeriod:)``).
    public func drain(gracePeriod: Duration) async {
        await registry.drain(gracePeriod: gracePeriod)
    }

    static func digest(_ text: String) -> String { Idempotency.digest(text) }

    static func title(for text: String) -> String {
        let flat = text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        guard flat.count > 60 else { return flat }
        return String(flat.prefix(57)) + "…"
    }
}
