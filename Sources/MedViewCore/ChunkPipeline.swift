import MedViewProtocol
import MedViewSafety
import Synchronization

/// Feeds model deltas through the output guard and a ``StreamProcessor`` into a
/// ``ResponseStream``, flushing pending text when its deadline passes even if the model sends
/// nothing more.
///
/// Only text the guard has cleared reaches the chunker. When the guard stops the answer, its
/// replacement text is sent in place of what it held and nothing more is accepted.
/// Chunks are published under the pipeline's lock, so their order is the order of the text.
final class ChunkPipeline: Sendable {
    private struct State {
        var processor: StreamProcessor
        var outputGuard: StreamGuard?
        var violation: OutputViolation?
        var sent = ""
        /// The pending flush's token with ``timer``.
        var flushToken: UInt64?
        var firstChunkSeen = false
        var finished = false
        var beforeModel: Duration = .zero
        var lastChunkAt: ContinuousClock.Instant?
    }

    private let stream: ResponseStream
    private let state: Mutex<State>
    private let observer: (any ChatObserver)?
    private let started: ContinuousClock.Instant
    /// Runs the flush when pending text's deadline passes (shared by all answers).
    private let timer: CoarseTimer

    init(stream: ResponseStream, configuration: StreamProcessor.Configuration, outputGuard: StreamGuard?, observer: (any ChatObserver)?, started: ContinuousClock.Instant, timer: CoarseTimer) {
        self.stream = stream
        self.timer = timer
        self.state = Mutex(State(processor: StreamProcessor(configuration: configuration), outputGuard: outputGuard))
        self.observer = observer
        self.started = started
    }

    /// Records how long the engine took before calling the model (store write, context).
    func modelCalled(after duration: Duration) {
        state.withLock { $0.beforeModel = duration }
    }

    /// Adds a model delta. Returns the guard's violation when this delta made it stop the answer
    /// (its replacement is already queued); later deltas are then ignored.
    @discardableResult
    func feed(_ delta: String) -> OutputViolation? {
        let delta = TextRules.cleanModelText(delta)
        return state.withLock { s in
            guard !s.finished, s.violation == nil else { return nil }
            guard var outputGuard = s.outputGuard else {
                chunk(delta, &s)
                return nil
            }
            let out = outputGuard.append(delta)
            s.outputGuard = outputGuard
            return cleared(out, &s)
        }
    }

    /// The model has said everything: releases what the guard still holds, if it is clean.
    /// Returns the violation if the held text broke a rule. `complete` is false when the model
    /// failed or was cancelled: then held text is released only when clean, and no replacement
    /// is sent.
    @discardableResult
    func endOfModelText(complete: Bool) -> OutputViolation? {
        state.withLock { s in
            guard !s.finished, s.violation == nil, var outputGuard = s.outputGuard else { return nil }
            let out = outputGuard.finish()
            s.outputGuard = outputGuard
            guard complete else {
                if out.violation == nil { chunk(out.release, &s) }
                return nil
            }
            return cleared(out, &s)
        }
    }

    private func cleared(_ out: GuardOutput, _ s: inout State) -> OutputViolation? {
        chunk(out.release, &s)
        guard let violation = out.violation else { return nil }
        s.violation = violation
        let hasSent = !s.sent.isEmpty || s.processor.hasPending
        chunk((hasSent ? "\n\n" : "") + violation.replacement, &s)
        return violation
    }

    private func chunk(_ delta: String, _ s: inout State) {
        guard !delta.isEmpty else { return }
        let now = ContinuousClock.now
        var chunks = s.processor.append(delta, now: now)
        if !s.firstChunkSeen, chunks.isEmpty {
            // The first whole words go out at once; later text is batched.
            chunks = s.processor.takeWholeWords(now: now)
        }
        publish(chunks, &s, deltaArrived: now)
        scheduleFlush(&s)
    }

    /// Publishes everything pending; returns the whole text sent as chunks.
    func finish() -> String {
        state.withLock { s in
            if let token = s.flushToken { timer.cancel(token) }
            s.flushToken = nil
            publish(s.processor.finish(), &s, deltaArrived: .now)
            s.finished = true
            return s.sent
        }
    }

    private func flushDue() {
        state.withLock { s in
            s.flushToken = nil
            guard !s.finished else { return }
            publish(s.processor.flushIfDue(now: .now), &s, deltaArrived: .now)
            scheduleFlush(&s)
        }
    }

    private func scheduleFlush(_ s: inout State) {
        guard s.flushToken == nil, let deadline = s.processor.flushDeadline else { return }
        s.flushToken = timer.schedule(at: deadline) { [weak self] in self?.flushDue() }
    }

    /// Publishes `chunks`; `deltaArrived` is when the engine got the text that completed them
    /// (or when a flush timer fired), so the first chunk's server-added time excludes model time.
    private func publish(_ chunks: [String], _ s: inout State, deltaArrived: ContinuousClock.Instant) {
        for chunk in chunks {
            s.sent += chunk
            stream.publish { .streamChunk(StreamChunk(streamId: stream.id, seq: $0, text: chunk)) }
        }
        if let observer, !chunks.isEmpty {
            let now = ContinuousClock.now
            for _ in chunks {
                if let last = s.lastChunkAt { observer.chunkPublished(gap: now - last) }
                s.lastChunkAt = now
            }
        }
        if !s.firstChunkSeen, !chunks.isEmpty {
            s.firstChunkSeen = true
            let now = ContinuousClock.now
            observer?.firstChunk(total: now - started, serverAdded: s.beforeModel + (now - deltaArrived))
        }
    }
}
