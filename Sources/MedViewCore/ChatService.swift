import Foundation
import Logging
import MedViewProtocol
import MedViewSafety
import Synchronization

/// A failure of a chat operation, already in wire terms. Messages never contain user text.
public struct ChatServiceError: Error, Sendable, Equatable {
    public var code: ErrorCode
    public var message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
}

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
}

extension ChatObserver {
    public func alertPublished(after: Duration) {}
}

/// The result of ``ChatService/send(userId:conversationId:clientMessageId:text:)``.
public struct SendResult: Sendable {
    public var stream: ResponseStream
    public var conversationId: String
    /// `true` when the client message id was seen before and this re-attaches to its stream.
    public var duplicate: Bool
}

/// The stream engine: takes a patient's message, stores it, asks the model and publishes the answer.
///
/// Invariants: the user message is stored before the model is called; every stream ends with
/// exactly one terminal event and its assistant message is stored with status complete,
/// cancelled or failed (with the partial text the client received); a client message id seen
/// before never calls the model again.
public final class ChatService: Sendable {
    public let model: any ChatModel
    public let store: any ConversationStore
    public let configuration: ChatConfiguration
    private let logger: Logger
    private let observer: (any ChatObserver)?
    private let contextBuilder: ContextBuilder

    private final class Entry: Sendable {
        let stream: ResponseStream
        let textDigest: String
        let control = Mutex(Control())
        struct Control {
            var cancelRequested = false
            var modelTask: Task<RunOutcome, Never>?
            var done = false
        }
        init(stream: ResponseStream, textDigest: String) {
            self.stream = stream
            self.textDigest = textDigest
        }

        /// Asks the run to stop: cancels the model now, or as soon as the run starts it.
        func requestCancel() {
            let task = control.withLock { c -> Task<RunOutcome, Never>? in
                c.cancelRequested = true
                return c.modelTask
            }
            task?.cancel()
        }
    }

    private struct Registry {
        var streams: [String: Entry] = [:]
        var byClientKey: [String: String] = [:]
        var activePerUser: [String: Int] = [:]
        var running = 0
        var acceptingNew = true
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let registry = Mutex(Registry())

    public init(model: any ChatModel, store: any ConversationStore, configuration: ChatConfiguration, logger: Logger, observer: (any ChatObserver)? = nil) {
        self.model = model
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.observer = observer
        self.contextBuilder = ContextBuilder(
            systemPrompt: configuration.systemPrompt,
            budgetTokens: configuration.contextBudgetTokens,
            maxOutputTokens: configuration.maxOutputTokens,
            temperature: configuration.temperature
        )
    }

    private static func clientKey(_ userId: String, _ clientMessageId: String) -> String {
        userId + "\u{0}" + clientMessageId
    }

    /// Sends a patient's message and starts (or re-attaches to) its answer.
    public func send(userId: String, conversationId: String?, clientMessageId: String, text: String) async throws(ChatServiceError) -> SendResult {
        let started = ContinuousClock.now
        guard !text.allSatisfy(\.isWhitespace) else {
            throw ChatServiceError(.emptyMessage, "The message is empty.")
        }
        guard text.count <= configuration.maxMessageCharacters else {
            throw ChatServiceError(.messageTooLarge, "The message is longer than \(configuration.maxMessageCharacters) characters.")
        }
        let digest = Self.digest(text)
        let key = Self.clientKey(userId, clientMessageId)
        // Emergency detection needs only the text: do it now, so the alert is ready to go out
        // right behind `stream.start`, before anything else.
        let emergency = configuration.safetyEnabled ? EmergencyDetector.shared.assess(text) : nil
        let streamId = Identifier.make("s")
        let newConversation: Conversation?
        let conversation = conversationId ?? Identifier.make("c")

        // Reserve the client key, or find the stream it already has.
        enum Reservation { case existing(Entry), reserved(Entry) }
        let reservation: Reservation
        do {
            reservation = try reserve()
        } catch {
            // A retry of a message whose stream already left memory is a re-attach, not a new
            // answer: the limits that refused a new stream do not apply to it.
            guard let existing = try? await store.turn(clientMessageId: clientMessageId, userId: userId) else { throw error }
            guard Self.digest(existing.userMessage.text) == digest else {
                throw ChatServiceError(.idempotencyConflict, "This message id was already used for a different message.")
            }
            return SendResult(stream: try await self.stream(id: existing.streamId, userId: userId), conversationId: existing.conversationId, duplicate: true)
        }
        func reserve() throws(ChatServiceError) -> Reservation {
            try registry.withLock { r throws(ChatServiceError) in
            if let existingId = r.byClientKey[key], let entry = r.streams[existingId] {
                return .existing(entry)
            }
            guard r.acceptingNew else { throw ChatServiceError(.shuttingDown, "The server is restarting; try again shortly.") }
            guard r.activePerUser[userId, default: 0] < configuration.maxActiveStreamsPerUser else {
                throw ChatServiceError(.tooManyStreams, "Too many answers are streaming at once; wait for one to finish.")
            }
            let entry = Entry(stream: ResponseStream(id: streamId, userId: userId, conversationId: conversation), textDigest: digest)
            r.streams[streamId] = entry
            r.byClientKey[key] = streamId
            r.activePerUser[userId, default: 0] += 1
            r.running += 1
            return .reserved(entry)
            }
        }
        switch reservation {
        case .existing(let entry):
            guard entry.stream.userId == userId, entry.textDigest == digest else {
                throw ChatServiceError(.idempotencyConflict, "This message id was already used for a different message.")
            }
            return SendResult(stream: entry.stream, conversationId: entry.stream.conversationId, duplicate: true)
        case .reserved(let entry):
            let now = Date()
            newConversation = conversationId == nil
                ? Conversation(id: conversation, userId: userId, title: Self.title(for: text), createdAt: now, updatedAt: now)
                : nil
            let turn = Turn(
                streamId: streamId, userId: userId, conversationId: conversation, clientMessageId: clientMessageId,
                userMessage: StoredMessage(id: Identifier.make("m"), conversationId: conversation, userId: userId, role: .user, text: text, status: .complete, streamId: streamId, createdAt: now),
                assistantMessage: StoredMessage(id: Identifier.make("m"), conversationId: conversation, userId: userId, role: .assistant, text: "", status: .streaming, streamId: streamId, createdAt: now),
                events: []
            )
            let result: BeginTurnResult
            do {
                result = try await store.beginTurn(turn, newConversation: newConversation)
            } catch StoreError.conversationNotFound {
                release(entry, key: key, evict: true)
                throw ChatServiceError(.notFound, "No such conversation.")
            } catch {
                release(entry, key: key, evict: true)
                logger.error("store.begin_turn.failed", metadata: ["stream.id": "\(streamId)", "error.type": "\(type(of: error))"])
                throw ChatServiceError(.storageUnavailable, "The message could not be saved; try again.")
            }
            switch result {
            case .duplicate(let existing):
                release(entry, key: key, evict: true)
                guard Self.digest(existing.userMessage.text) == digest else {
                    throw ChatServiceError(.idempotencyConflict, "This message id was already used for a different message.")
                }
                let stream = try await self.stream(id: existing.streamId, userId: userId)
                return SendResult(stream: stream, conversationId: existing.conversationId, duplicate: true)
            case .created:
                logger.debug("stream.created", metadata: ["stream.id": "\(streamId)", "conversation.id": "\(conversation)", "user.id": "\(userId)"])
                Task { await self.run(entry: entry, turn: turn, key: key, started: started, isNewConversation: newConversation != nil, emergency: emergency) }
                return SendResult(stream: entry.stream, conversationId: conversation, duplicate: false)
            }
        }
    }

    /// The stream `id` if it is the user's: live, or rebuilt from the stored replay log.
    public func stream(id: String, userId: String) async throws(ChatServiceError) -> ResponseStream {
        if let entry = registry.withLock({ $0.streams[id] }) {
            guard entry.stream.userId == userId else { throw ChatServiceError(.notFound, "No such stream.") }
            return entry.stream
        }
        let turn: Turn?
        do {
            turn = try await store.turn(streamId: id, userId: userId)
        } catch {
            throw ChatServiceError(.storageUnavailable, "The stream could not be loaded; try again.")
        }
        guard let turn else { throw ChatServiceError(.notFound, "No such stream.") }
        guard !turn.events.isEmpty else {
            throw ChatServiceError(.notFound, "This answer was interrupted by a server restart and cannot be replayed.")
        }
        var events: [ServerEvent] = []
        for entry in turn.events {
            guard let event = try? ServerEvent.decode(entry.json) else {
                throw ChatServiceError(.internalError, "The stored stream could not be read.")
            }
            events.append(event)
        }
        return ResponseStream(id: turn.streamId, userId: turn.userId, conversationId: turn.conversationId, replaying: events)
    }

    /// Cancels the stream if it is the user's and still running. Cancelling a finished stream does nothing.
    public func cancel(streamId: String, userId: String) async throws(ChatServiceError) {
        guard let entry = registry.withLock({ $0.streams[streamId] }) else {
            // Not live: answer not-found unless it is a stored stream of this user.
            _ = try await stream(id: streamId, userId: userId)
            return
        }
        guard entry.stream.userId == userId else { throw ChatServiceError(.notFound, "No such stream.") }
        entry.requestCancel()
    }

    /// Erases a conversation (the patient's right to erase): cancels its running answers, drops
    /// their replay logs from memory at once, then deletes everything stored. `false` if the
    /// conversation does not exist for this user.
    public func deleteConversation(id: String, userId: String) async throws(ChatServiceError) -> Bool {
        let entries = registry.withLock { r -> [Entry] in
            let doomed = r.streams.values.filter { $0.stream.conversationId == id && $0.stream.userId == userId }
            for entry in doomed {
                r.streams[entry.stream.id] = nil
            }
            r.byClientKey = r.byClientKey.filter { _, streamId in !doomed.contains { $0.stream.id == streamId } }
            return doomed
        }
        for entry in entries {
            entry.requestCancel()
        }
        do {
            return try await store.deleteConversation(id: id, userId: userId)
        } catch {
            throw ChatServiceError(.storageUnavailable, "The conversation could not be deleted; try again.")
        }
    }

    /// Loads the safety layer's data now (about 0.2 s), so the first message does not wait for it.
    public func prepareSafety() {
        guard configuration.safetyEnabled else { return }
        _ = EmergencyDetector.shared
        _ = MedicationChecker.shared
        _ = StreamGuard()
    }

    /// One calm sentence for clients to show near answers (information, not diagnosis).
    public static var disclaimer: String { SafetyFraming.disclaimer }

    /// Whether new messages are accepted (false while draining for shutdown).
    public var isAcceptingMessages: Bool { registry.withLock { $0.acceptingNew } }

    /// Stops accepting messages, lets running streams finish for up to `gracePeriod`, then cancels
    /// the rest (they end with a retryable `shutting_down` error and their partial text stored).
    public func drain(gracePeriod: Duration) async {
        registry.withLock { $0.acceptingNew = false }
        let deadline = ContinuousClock.now.advanced(by: gracePeriod)
        while registry.withLock({ $0.running }) > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let remaining = registry.withLock { r in r.streams.values.filter { !$0.control.withLock { $0.done } } }
        for entry in remaining {
            entry.requestCancel()
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = registry.withLock { r -> Bool in
                if r.running == 0 { return true }
                r.drainWaiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    /// How many streams are running now.
    public var runningStreams: Int { registry.withLock { $0.running } }

    // MARK: - Running a stream

    enum RunOutcome: Sendable {
        case completed(ModelStopReason?, Usage?)
        case cancelled(Usage?)
        case failed(ModelError, Usage?)
    }

    private func run(entry: Entry, turn: Turn, key: String, started: ContinuousClock.Instant, isNewConversation: Bool, emergency: EmergencyAssessment?) async {
        let stream = entry.stream
        stream.publish { seq in
            .streamStart(StreamStart(streamId: stream.id, seq: seq, conversationId: turn.conversationId, userMessageId: turn.userMessage.id, messageId: turn.assistantMessage.id, model: self.model.descriptor))
        }
        var safetyNotes: [String] = []
        if let emergency {
            // Emergency guidance goes out before the model is even called.
            stream.publish { seq in
                .safetyAlert(SafetyAlert(streamId: stream.id, seq: seq, category: emergency.category, severity: emergency.severity, guidance: emergency.guidance, actions: emergency.actions.map { SafetyAction(label: $0.label, href: $0.href) }))
            }
            safetyNotes.append(emergency.modelNote)
            observer?.alertPublished(after: ContinuousClock.now - started)
            logger.info("safety.alert", metadata: ["stream.id": "\(stream.id)", "safety.category": "\(emergency.category)", "safety.severity": "\(emergency.severity)"])
        }
        let pipeline = ChunkPipeline(stream: stream, configuration: configuration.chunking, observer: observer, started: started)
        var history: [StoredMessage] = []
        if !isNewConversation {
            do {
                history = try await store.messages(conversationId: turn.conversationId, userId: turn.userId).filter { $0.streamId != turn.streamId }
            } catch {
                logger.warning("store.history.failed", metadata: ["stream.id": "\(stream.id)"])
            }
        }
        if configuration.safetyEnabled {
            // The medicines the patient mentioned earlier in the conversation, then this message.
            var medications = MedicationContext()
            let checker = MedicationChecker.shared
            for message in history where message.role == .user {
                _ = checker.check(message.text, context: &medications)
            }
            let warnings = checker.check(turn.userMessage.text, context: &medications)
            for warning in warnings {
                stream.publish { seq in
                    .safetyWarning(SafetyWarning(streamId: stream.id, seq: seq, kind: warning.kind, drugs: warning.drugs, severity: warning.severity, advice: warning.advice))
                }
                logger.info("safety.warning", metadata: ["stream.id": "\(stream.id)", "safety.interaction": "\(warning.interactionId)", "safety.severity": "\(warning.severity)"])
            }
            if let note = SafetyFraming.note(for: warnings) { safetyNotes.append(note) }
        }
        let system = safetyNotes.isEmpty ? nil : SafetyFraming.systemPrompt(notes: safetyNotes)
        let request = contextBuilder.request(history: history, newText: turn.userMessage.text, system: system)
        pipeline.modelCalled(after: ContinuousClock.now - started)
        let chatModel = self.model
        let guarded = configuration.safetyEnabled
        let logger = self.logger
        let modelTask = Task<RunOutcome, Never> {
            var usage: Usage?
            var stop: ModelStopReason?
            var outputGuard = StreamGuard()
            /// Sends the replacement for a violation and ends the answer as stopped for safety.
            func stopForSafety(_ violation: OutputViolation) -> RunOutcome {
                logger.warning("safety.output.violation", metadata: ["stream.id": "\(stream.id)", "safety.rule": "\(violation.rule)"])
                pipeline.feed((pipeline.hasSent ? "\n\n" : "") + violation.replacement)
                return .completed(.contentFiltered, usage)
            }
            do {
                for try await event in chatModel.stream(request) {
                    switch event {
                    case .delta(let text):
                        guard guarded else {
                            pipeline.feed(text)
                            continue
                        }
                        // Only text the guard has cleared is chunked and sent.
                        let out = outputGuard.append(text)
                        pipeline.feed(out.release)
                        if let violation = out.violation { return stopForSafety(violation) }
                    case .usage(let u): usage = u
                    case .stop(let reason): stop = reason
                    }
                }
                if Task.isCancelled { return .cancelled(usage) }
                if guarded {
                    let out = outputGuard.finish()
                    pipeline.feed(out.release)
                    if let violation = out.violation { return stopForSafety(violation) }
                }
                return .completed(stop, usage)
            } catch let error as ModelError {
                if Task.isCancelled { return .cancelled(usage) }
                // Nothing more will come: what the guard still holds is complete, release it if clean.
                if guarded {
                    let out = outputGuard.finish()
                    if out.violation == nil { pipeline.feed(out.release) }
                }
                return .failed(error, usage)
            } catch is CancellationError {
                return .cancelled(usage)
            } catch {
                return Task.isCancelled ? .cancelled(usage) : .failed(ModelError(kind: .failed, retryable: true, detail: "\(type(of: error))"), usage)
            }
        }
        let cancelledEarly = entry.control.withLock { c -> Bool in
            c.modelTask = modelTask
            return c.cancelRequested
        }
        if cancelledEarly { modelTask.cancel() }
        let outcome = await modelTask.value
        let shuttingDown = !registry.withLock { $0.acceptingNew }
        let text = pipeline.finish()
        let (status, terminal) = Self.terminal(for: outcome, shuttingDown: shuttingDown, streamId: stream.id)
        if case .failed(let error, _) = outcome {
            // Provider error details are diagnostic text from outside: scrub identifiers before logging.
            logger.warning("model.failed", metadata: ["stream.id": "\(stream.id)", "error.kind": "\(error.kind)", "error.detail": "\(PHIRedactor.redact(error.detail))"])
        }
        // Free the slot first: a client that sees the terminal event may send its next message at once.
        releaseSlot(entry)
        stream.publish(terminal)
        let log = stream.events.map { StreamLogEntry(seq: $0.seq ?? 0, json: $0.jsonString()) }
        do {
            try await store.finishTurn(TurnCompletion(streamId: stream.id, userId: turn.userId, assistantText: text, status: status, events: log))
        } catch {
            logger.error("store.finish_turn.failed", metadata: ["stream.id": "\(stream.id)", "error.type": "\(type(of: error))"])
        }
        observer?.streamEnded(status: status)
        logger.debug("stream.ended", metadata: ["stream.id": "\(stream.id)", "stream.status": "\(status.rawValue)", "stream.chars": "\(text.count)", "stream.events": "\(log.count)"])
        entry.control.withLock { $0.done = true }
        release(entry, key: key, evict: false, slotReleased: true)
    }

    /// The stored status and the terminal event (built from its seq) for a run's outcome.
    static func terminal(for outcome: RunOutcome, shuttingDown: Bool, streamId: String) -> (MessageStatus, @Sendable (Int) -> ServerEvent) {
        switch outcome {
        case .completed(let stop, let usage):
            let reason: FinishReason = stop == .maxTokens ? .length : (stop == .contentFiltered ? .safety : .complete)
            return (.complete, { .streamEnd(StreamEnd(streamId: streamId, seq: $0, finishReason: reason, usage: usage)) })
        case .cancelled(let usage):
            if shuttingDown {
                return (.failed, { .error(ErrorEvent(code: .shuttingDown, message: "The server restarted during this answer; ask again.", streamId: streamId, seq: $0)) })
            }
            return (.cancelled, { .streamEnd(StreamEnd(streamId: streamId, seq: $0, finishReason: .cancelled, usage: usage)) })
        case .failed(let error, _):
            let message = error.kind == .throttled
                ? "The model is busy right now; try again in a moment."
                : (error.kind == .unavailable ? "The model is unavailable right now; try again in a moment." : "The model could not finish this answer.")
            return (.failed, { .error(ErrorEvent(code: error.errorCode, message: message, retryable: error.retryable, streamId: streamId, seq: $0)) })
        }
    }

    /// Frees the user's stream slot. Called once per reservation: when the terminal event is
    /// published (so a client may send its next message as soon as it sees `stream.end`), or when
    /// the reservation is abandoned before a stream started.
    private func releaseSlot(_ entry: Entry) {
        registry.withLock { r in
            let user = entry.stream.userId
            r.activePerUser[user, default: 1] -= 1
            if r.activePerUser[user] == 0 { r.activePerUser[user] = nil }
        }
    }

    /// Ends a reservation: frees the user's slot (unless the run already did), marks the stream as
    /// no longer running (draining waits for this, after the store write), and removes the entry
    /// now (`evict`) or after the replay retention.
    private func release(_ entry: Entry, key: String, evict: Bool, slotReleased: Bool = false) {
        if !slotReleased { releaseSlot(entry) }
        let waiters = registry.withLock { r -> [CheckedContinuation<Void, Never>] in
            r.running -= 1
            if evict {
                r.streams[entry.stream.id] = nil
                if r.byClientKey[key] == entry.stream.id { r.byClientKey[key] = nil }
            }
            guard r.running == 0 else { return [] }
            defer { r.drainWaiters.removeAll() }
            return r.drainWaiters
        }
        for w in waiters { w.resume() }
        guard !evict else { return }
        let retention = configuration.replayRetention
        Task { [weak self] in
            try? await Task.sleep(for: retention)
            self?.registry.withLock { r in
                r.streams[entry.stream.id] = nil
                if r.byClientKey[key] == entry.stream.id { r.byClientKey[key] = nil }
            }
        }
    }


    static func digest(_ text: String) -> String {
        // FNV-1a over the UTF-8 bytes plus the length: enough to tell a retry from a different message.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return "\(text.utf8.count):\(String(hash, radix: 16))"
    }

    static func title(for text: String) -> String {
        let flat = text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        guard flat.count > 60 else { return flat }
        return String(flat.prefix(57)) + "…"
    }
}
