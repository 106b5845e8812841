import Foundation
import Logging
import MedViewProtocol
import MedViewSafety
import Synchronization

/// Runs one answer from start to stored ending: `stream.start`, the emergency alert (decided
/// before anything was stored), interaction warnings, the model call through the chunk pipeline
/// (output guard included), the terminal event, and the stored assistant message.
///
/// Invariants: exactly one terminal event is published, and only after the store has the ending:
/// a client told `stream.end` can rely on the answer being stored. If the store refuses it, the
/// terminal event is a retryable `storage_unavailable` error instead, and the ending (status
/// `failed`, with the text sent) waits in ``UnsavedAnswers`` to be written again. The slot is
/// freed just before the terminal event, so a client that sees it may send again at once; the
/// registry's reservation is released only after that, so a drain that sees no running answer
/// knows every ending is stored or kept.
struct TurnRunner: Sendable {
    let model: any ChatModel
    let store: any ConversationStore
    let safety: any SafetyPolicy
    let contextBuilder: ContextBuilder
    let chunking: StreamProcessor.Configuration
    /// Flushes held-back text when its deadline passes, for every answer.
    let flushTimer: CoarseTimer
    /// Most earlier messages read for a new answer (``ChatConfiguration/contextWindowMessages``).
    let contextWindowMessages: Int
    /// Recent conversations' windows, so a new message reads only the latest few messages.
    let windows: ContextWindowCache?
    let registry: StreamRegistry
    let unsaved: UnsavedAnswers
    let limiter: any UsageLimiter
    let observer: (any ChatObserver)?
    let logger: Logger

    /// One answer to run.
    struct Job: Sendable {
        var entry: StreamRegistry.Entry
        var turn: Turn
        var started: ContinuousClock.Instant
        /// What was worked out while the turn was being stored (``prepare(_:isNewConversation:gate:)``).
        var prepared: Prepared
        /// When the prepared call was sent (by the gate), if it was.
        var sentAt: ContinuousClock.Instant?
    }

    /// What is worked out for an answer while its turn is being stored.
    struct Prepared: Sendable {
        /// The emergency assessment of the patient's text.
        var emergency: EmergencyAssessment?
        /// The conversation's context and the medication check.
        var context: Context
        /// The model's request.
        var request: ModelRequest
        /// The model call made ready, sent by the gate once the turn is stored; `nil` when the
        /// model had nothing to make ready.
        var call: (any PreparedModelCall)?
    }

    /// What the answer starts from: the conversation's latest earlier messages, its medication
    /// context, and the medication check of the new message against it.
    struct Context: Sendable {
        var history: [StoredMessage]
        var medications: Medications
        var warnings: [InteractionWarning]
        /// The medication context with the new message taken in.
        var updatedMedications: MedicationContext
    }

    /// What the answer needs that does not depend on the turn's messages being stored, worked out
    /// while they are: the emergency assessment (needs only the text), the conversation's earlier
    /// messages with the medication check (the read leaves this turn's messages out), and the
    /// model's request with its call made ready, handed to `gate` (which sends it once the turn
    /// is stored).
    func prepare(_ turn: Turn, isNewConversation: Bool, gate: ModelCallGate) async -> Prepared {
        let emergency = safety.assessEmergency(turn.userMessage.text)
        let context = await prepareContext(turn, isNewConversation: isNewConversation)
        let request = modelRequest(for: turn, emergency: emergency, context: context)
        let call = await model.prepare(request)
        if let call { gate.ready(call) }
        return Prepared(emergency: emergency, context: context, request: request, call: call)
    }

    /// Reads the conversation's context (``loadContext(_:isNewConversation:)``) and checks the new
    /// message's medicines against it.
    private func prepareContext(_ turn: Turn, isNewConversation: Bool) async -> Context {
        let (history, medications) = await loadContext(turn, isNewConversation: isNewConversation)
        let (warnings, updated) = safety.checkMedications(context: medications.context, text: turn.userMessage.text)
        return Context(history: history, medications: medications, warnings: warnings, updatedMedications: updated)
    }

    /// The model's request for `turn`: the conversation's window and the new message, with the
    /// safety notes (the emergency found, the interaction warnings) in the system prompt.
    private func modelRequest(for turn: Turn, emergency: EmergencyAssessment?, context: Context) -> ModelRequest {
        var notes: [String] = []
        if let emergency { notes.append(emergency.modelNote) }
        if let note = SafetyFraming.note(for: context.warnings) { notes.append(note) }
        let system = notes.isEmpty ? nil : safety.systemPrompt(notes: notes)
        return contextBuilder.request(history: context.history, newText: turn.userMessage.text, system: system)
    }

    /// An answer whose model call has started (``start(_:)``), to be seen through by ``finish(_:)``.
    struct Started: Sendable {
        var job: Job
        var modelTask: Task<TurnOutcome, Never>
        var triage: Task<Void, Never>?
        var savingMedications: Task<Void, Never>?
        var pipeline: ChunkPipeline
    }

    /// Publishes `stream.start`, the emergency alert and the interaction warnings, and starts the
    /// model call (and the triage beside it); returns without waiting for either.
    func start(_ job: Job) -> Started {
        let stream = job.entry.stream
        let turn = job.turn
        stream.publish { seq in
            .streamStart(StreamStart(streamId: stream.id, seq: seq, conversationId: turn.conversationId, userMessageId: turn.userMessage.id, messageId: turn.assistantMessage.id, model: model.descriptor))
        }
        let emergency = job.prepared.emergency
        if let emergency {
            // Emergency guidance goes out before any of the model's words: a request sent already
            // (``ModelCallGate``) holds its answer until the pipeline below reads it.
            stream.publish { seq in
                .safetyAlert(SafetyAlert(streamId: stream.id, seq: seq, category: emergency.category, severity: emergency.severity, guidance: emergency.guidance, actions: emergency.actions.map { SafetyAction(label: $0.label, href: $0.href) }))
            }
            observer?.alertPublished(after: ContinuousClock.now - job.started)
            observer?.safetyAlert(category: emergency.category)
            logger.info("safety.alert", metadata: ["stream.id": "\(stream.id)", "safety.category": "\(emergency.category)", "safety.severity": "\(emergency.severity)"])
        }
        let context = job.prepared.context
        let (medications, warnings, updatedMedications) = (context.medications, context.warnings, context.updatedMedications)
        // The conversation's medication context is saved alongside the answer (it must be
        // stored before this turn's ending, so the next message finds it).
        let savingMedications: Task<Void, Never>? = updatedMedications == medications.context && medications.saved ? nil : Task { [store, logger] in
            guard let json = try? String(decoding: JSONEncoder().encode(updatedMedications), as: UTF8.self) else { return }
            do {
                try await store.saveSafetyState(conversationId: turn.conversationId, userId: turn.userId, state: json)
            } catch {
                logger.info("store.safety_state.failed", metadata: .failure(error, ["stream.id": "\(turn.streamId)"]))
            }
        }
        for warning in warnings {
            stream.publish { seq in
                .safetyWarning(SafetyWarning(streamId: stream.id, seq: seq, kind: warning.kind, drugs: warning.drugs, severity: warning.severity, advice: warning.advice))
            }
            observer?.safetyWarning(category: warning.kind)
            // The interaction id names the medicines (PHI next to a stream id): only the kind and severity are logged.
            logger.info("safety.warning", metadata: ["stream.id": "\(stream.id)", "safety.kind": "\(warning.kind)", "safety.severity": "\(warning.severity)"])
        }

        let pipeline = ChunkPipeline(stream: stream, configuration: chunking, outputGuard: safety.makeOutputGuard(), observer: observer, started: job.started, timer: flushTimer)
        let called = job.sentAt ?? .now
        pipeline.modelCalled(after: called - job.started)
        let (request, call) = (job.prepared.request, job.prepared.call)
        let modelTask = Task { [observer] in await Self.answer(model: model, request: request, call: call, called: called, pipeline: pipeline, streamId: stream.id, logger: logger, observer: observer) }
        job.entry.attach(modelTask)
        // A model's second opinion runs alongside the answer (only when the detector found nothing);
        // an alert it finds is published as soon as it arrives. It starts just after the answer's
        // call, so that a provider that serves requests in order starts the answer first.
        let triage: Task<Void, Never>? = emergency != nil ? nil : Task { [safety, logger, observer] in
            guard let alert = await safety.triage(turn.userMessage.text, deterministic: nil) else { return }
            let published = stream.publish { seq in
                .safetyAlert(SafetyAlert(streamId: stream.id, seq: seq, category: alert.category, severity: alert.severity, guidance: alert.guidance, actions: alert.actions.map { SafetyAction(label: $0.label, href: $0.href) }))
            }
            guard published != nil else { return }
            observer?.alertPublished(after: ContinuousClock.now - job.started)
            observer?.safetyAlert(category: alert.category)
            logger.info("safety.alert", metadata: ["stream.id": "\(stream.id)", "safety.category": "\(alert.category)", "safety.severity": "\(alert.severity)", "safety.source": "triage"])
        }
        return Started(job: job, modelTask: modelTask, triage: triage, savingMedications: savingMedications, pipeline: pipeline)
    }

    /// Waits for the model call and the triage, then stores the ending and publishes it.
    func finish(_ started: Started) async {
        let (job, pipeline) = (started.job, started.pipeline)
        var outcome = await started.modelTask.value
        if case .cancelled = outcome, !registry.isAcceptingNew || job.entry.isInterrupted { outcome = .interruptedByShutdown }
        // The triage has a fixed budget: an alert it still finds goes out before the answer ends.
        await started.triage?.value
        await started.savingMedications?.value
        await end(job, outcome: outcome, text: pipeline.finish())
    }

    /// The medication context a turn starts from, and whether it is the one saved.
    struct Medications: Sendable {
        var context: MedicationContext
        var saved: Bool
    }

    /// The conversation's latest earlier messages (at most `contextWindowMessages`; none for a
    /// new conversation) and its medication context: the saved one, else (a conversation from
    /// before it was saved) rebuilt once from the patient's earlier messages. The turn's own
    /// messages are left out, so it may run before or after they are stored.
    func loadContext(_ turn: Turn, isNewConversation: Bool) async -> ([StoredMessage], Medications) {
        guard !isNewConversation else { return ([], Medications(context: MedicationContext(), saved: false)) }
        do {
            // A cached window needs only the latest few messages (and the saved safety state) to
            // be checked and extended; the store's whole window is read only when it cannot be.
            if let windows {
                // Two more than asked for: this turn's own two messages are already stored.
                guard let probe = try await store.recentContext(conversationId: turn.conversationId, userId: turn.userId, limit: ContextWindowCache.probeMessages + 2) else {
                    return ([], Medications(context: MedicationContext(), saved: false))
                }
                let latest = probe.messages.filter { $0.streamId != turn.streamId }
                if let state = probe.safetyState,
                   let saved = windows.medications(conversationId: turn.conversationId, userId: turn.userId, state: state) ?? Self.savedMedications(state) {
                    if let window = probe.hasOlder
                        ? windows.window(conversationId: turn.conversationId, userId: turn.userId, probe: latest, limit: contextWindowMessages)
                        : Array(latest.suffix(contextWindowMessages)) {
                        windows.store(conversationId: turn.conversationId, userId: turn.userId, window: window, medications: .init(state: state, context: saved))
                        return (window, Medications(context: saved, saved: true))
                    }
                }
            }
            // Two more than the window: this turn's own two messages are already stored.
            guard let context = try await store.recentContext(conversationId: turn.conversationId, userId: turn.userId, limit: contextWindowMessages + 2) else {
                return ([], Medications(context: MedicationContext(), saved: false))
            }
            let history = Array(context.messages.filter { $0.streamId != turn.streamId }.suffix(contextWindowMessages))
            if let state = context.safetyState, let saved = Self.savedMedications(state) {
                windows?.store(conversationId: turn.conversationId, userId: turn.userId, window: history, medications: .init(state: state, context: saved))
                return (history, Medications(context: saved, saved: true))
            }
            let earlier = context.hasOlder
                ? try await store.messages(conversationId: turn.conversationId, userId: turn.userId).filter { $0.streamId != turn.streamId }
                : history
            var rebuilt = MedicationContext()
            for message in earlier where message.role == .user {
                rebuilt = safety.checkMedications(context: rebuilt, text: message.text).context
            }
            return (history, Medications(context: rebuilt, saved: false))
        } catch {
            logger.info("store.history.failed", metadata: .failure(error, ["stream.id": "\(turn.streamId)"]))
            return ([], Medications(context: MedicationContext(), saved: false))
        }
    }

    /// The medication context in the conversation's saved safety state (nil if it does not read as one).
    private static func savedMedications(_ json: String) -> MedicationContext? {
        try? JSONDecoder().decode(MedicationContext.self, from: Data(json.utf8))
    }

    /// Streams the model's text into the pipeline and says how it ended: from `call` when the
    /// model made one ready (sent at `called`), else from a call made now.
    ///
    /// The model hands its events straight to the pipeline (``ChatModel/stream(_:into:)``): an
    /// HTTP model does so on its connection's event loop as the response is decoded, so text
    /// reaches the patient without first waking this task.
    private static func answer(model: any ChatModel, request: ModelRequest, call: (any PreparedModelCall)?, called: ContinuousClock.Instant, pipeline: ChunkPipeline, streamId: String, logger: Logger, observer: (any ChatObserver)?) async -> TurnOutcome {
        /// What the events said so far (the sink runs on the model's thread, one event at a time).
        struct Heard {
            var usage: Usage?
            var stop: ModelStopReason?
            var sawDelta = false
            var violation: OutputViolation?
        }
        let heard = Mutex(Heard())
        let provider = model.descriptor.provider
        observer?.modelCalled(provider: provider)
        func stopped(_ violation: OutputViolation, _ usage: Usage?) -> TurnOutcome {
            logger.info("safety.output.violation", metadata: ["stream.id": "\(streamId)", "safety.rule": "\(violation.rule)"])
            return .completed(.contentFiltered, usage)
        }
        let sink: ModelEventSink = { event in
            switch event {
            case .delta(let text):
                let first = heard.withLock { h in
                    defer { h.sawDelta = true }
                    return !h.sawDelta
                }
                if first { observer?.modelFirstDelta(provider: provider, after: .now - called) }
                guard let violation = pipeline.feed(text) else { return true }
                heard.withLock { $0.violation = violation }
                return false
            case .usage(let u):
                heard.withLock { $0.usage = u }
            case .stop(let reason):
                heard.withLock { $0.stop = reason }
            }
            return true
        }
        do {
            if let call {
                try await call.answer(into: sink)
            } else {
                try await model.stream(request, into: sink)
            }
            let result = heard.withLock { $0 }
            if let violation = result.violation { return stopped(violation, result.usage) }
            if Task.isCancelled { return .cancelled(result.usage) }
            if let violation = pipeline.endOfModelText(complete: true) { return stopped(violation, result.usage) }
            return .completed(result.stop, result.usage)
        } catch {
            let result = heard.withLock { $0 }
            if let violation = result.violation { return stopped(violation, result.usage) }
            if error is CancellationError || Task.isCancelled { return .cancelled(result.usage) }
            // Nothing more will come: what the guard still holds is complete; release it if clean.
            pipeline.endOfModelText(complete: false)
            let modelError = error as? ModelError ?? ModelError(kind: .failed, retryable: true, detail: "\(type(of: error))")
            // A throttled attempt the provider retried is counted where it retries (MedViewModels).
            if modelError.kind == .throttled { observer?.modelThrottled(provider: provider) }
            return .failed(modelError, result.usage)
        }
    }

    /// Stores the ending, publishes the terminal event (or `storage_unavailable` when the store
    /// refused the ending) and releases the reservation.
    private func end(_ job: Job, outcome: TurnOutcome, text: String) async {
        let stream = job.entry.stream
        let (normalStatus, terminal) = WireMapping.terminal(for: outcome, streamId: stream.id)
        var status = normalStatus
        if case .failed(let error, _) = outcome {
            // Provider error details are diagnostic text from outside: scrub identifiers before logging.
            logger.info("model.failed", metadata: ["stream.id": "\(stream.id)", "error.kind": "\(error.kind)", "error.detail": "\(PHIRedactor.redact(error.detail))"])
        }
        registry.releaseSlot(job.entry)
        // Nothing else publishes any more (the model and the pipeline have finished): the terminal
        // event takes the next sequence number, and the stored log ends with it.
        let logged = stream.events
        let seq = logged.count + 1
        var ending = terminal(seq)
        func log(_ last: ServerEvent) -> [StreamLogEntry] {
            (logged + [last]).map { StreamLogEntry(seq: $0.seq ?? 0, json: $0.jsonString()) }
        }
        do {
            try await store.finishTurn(TurnCompletion(streamId: stream.id, userId: job.turn.userId, assistantText: text, status: status, events: log(ending)))
            unsaved.writeSucceeded()
            stream.logStored()
        } catch {
            logger.warning("store.finish_turn.failed", metadata: .failure(error, ["stream.id": "\(stream.id)"]))
            unsaved.writeFailed(.finishTurn)
            status = .failed
            ending = WireMapping.unsavedTerminal(streamId: stream.id, seq: seq)
            unsaved.keep(TurnCompletion(streamId: stream.id, userId: job.turn.userId, assistantText: text, status: status, events: log(ending)), conversationId: job.turn.conversationId)
        }
        stream.publish { _ in ending }
        if case .error(let error) = ending { observer?.streamError(code: error.code.rawValue) }
        await limiter.recordOutput(userId: job.turn.userId, tokens: outcome.outputTokens(text: text), now: Date())
        observer?.streamEnded(status: status)
        logger.debug("stream.ended", metadata: ["stream.id": "\(stream.id)", "stream.status": "\(status.rawValue)", "stream.chars": "\(text.count)", "stream.events": "\(seq)"])
        registry.release(job.entry, evict: false)
    }
}

extension TurnOutcome {
    /// Output tokens the answer used: as the model reported them, else estimated from the text
    /// (about four UTF-8 bytes a token).
    func outputTokens(text: String) -> Int {
        let reported: Usage? = switch self {
        case .completed(_, let usage), .cancelled(let usage), .failed(_, let usage): usage
        case .interruptedByShutdown: nil
        }
        return reported?.outputTokens ?? (text.utf8.count + 3) / 4
    }
}
