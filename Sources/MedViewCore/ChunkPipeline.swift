import MedViewProtocol
import Synchronization

/// Feeds model deltas through a ``StreamProcessor`` into a ``ResponseStream``, flushing pending
/// text when its deadline passes even if the model sends nothing more.
///
/// Chunks are published under the pipeline's lock, so their order is the order of the text.
final class ChunkPipeline: Sendable {
    private struct State {
        var processor: StreamProcessor
        var sent = ""
        var flushTask: Task<Void, Never>?
        var firstChunkSeen = false
        var finished = false
        var beforeModel: Duration = .zero
    }

    private let stream: ResponseStream
    private let state: Mutex<State>
    private let observer: (any ChatObserver)?
    private let started: ContinuousClock.Instant

    init(stream: ResponseStream, configuration: StreamProcessor.Configuration, observer: (any ChatObserver)?, started: ContinuousClock.Instant) {
        self.stream = stream
        self.state = Mutex(State(processor: StreamProcessor(configuration: configuration)))
        self.observer = observer
        self.started = started
    }

    /// Records how long the engine took before calling the model (store write, context).
    func modelCalled(after duration: Duration) {
        state.withLock { $0.beforeModel = duration }
    }

    /// Whether any text has been published or is waiting to be.
    var hasSent: Bool {
        state.withLock { !$0.sent.isEmpty || $0.processor.hasPending }
    }

    /// Adds a model delta.
    func feed(_ delta: String) {
        state.withLock { s in
            guard !s.finished else { return }
            let now = ContinuousClock.now
            var chunks = s.processor.append(delta, now: now)
            if !s.firstChunkSeen, chunks.isEmpty {
                // The first whole words go out at once; later text is batched.
                chunks = s.processor.takeWholeWords(now: now)
            }
            publish(chunks, &s, deltaArrived: now)
            scheduleFlush(&s)
        }
    }

    /// Publishes everything pending; returns the whole text sent as chunks.
    func finish() -> String {
        state.withLock { s in
            s.flushTask?.cancel()
            s.flushTask = nil
            publish(s.processor.finish(), &s, deltaArrived: .now)
            s.finished = true
            return s.sent
        }
    }

    private func flushDue() {
        state.withLock { s in
            s.flushTask = nil
            guard !s.finished else { return }
            publish(s.processor.flushIfDue(now: .now), &s, deltaArrived: .now)
            scheduleFlush(&s)
        }
    }

    private func scheduleFlush(_ s: inout State) {
        guard s.flushTask == nil, let deadline = s.processor.flushDeadline else { return }
        s.flushTask = Task { [weak self] in
            try? await Task.sleep(until: deadline, clock: .continuous)
            guard !Task.isCancelled else { return }
            self?.flushDue()
        }
    }

    /// Publishes `chunks`; `deltaArrived` is when the engine got the text that completed them
    /// (or when a flush timer fired), so the first chunk's server-added time excludes model time.
    private func publish(_ chunks: [String], _ s: inout State, deltaArrived: ContinuousClock.Instant) {
        for chunk in chunks {
            s.sent += chunk
            stream.publish { .streamChunk(StreamChunk(streamId: stream.id, seq: $0, text: chunk)) }
        }
        if !s.firstChunkSeen, !chunks.isEmpty {
            s.firstChunkSeen = true
            let now = ContinuousClock.now
            observer?.firstChunk(total: now - started, serverAdded: s.beforeModel + (now - deltaArrived))
        }
    }
}
