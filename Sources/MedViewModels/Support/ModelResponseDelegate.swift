import AsyncHTTPClient
import MedViewCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Reads one streaming model response on the connection's event loop: body pieces are decoded
/// where they arrive, and what one read of the socket completed is handed on as one batch, with
/// adjacent text deltas joined into one.
///
/// A provider that writes its whole answer at once (a fast model, a cache, a test upstream) sends
/// a hundred small pieces in one read; decoding them where they arrive and passing the answer on
/// once costs one wake-up of the consumer instead of a hundred. A model that streams token by token
/// still gets every token passed on as soon as its read ends: a batch is closed by a task queued
/// on the event loop, which runs as soon as the read that opened it has been handled.
///
/// For the engine's sink (``ChatModel/stream(_:into:)``, which runs on this loop) the answer's
/// first delta is handed on alone the moment it is decoded, before the rest of its read: the
/// patient's first words need not wait for a whole answer to be decoded, and no task is woken
/// for them. (A consumer across a stream would be woken twice for such a read, so it is not.)
///
/// The delegate also keeps the request's silence limits (``ModelTimeouts/response`` until the
/// response head, then ``ModelTimeouts/idle`` between pieces) with a timer on the same loop.
///
/// It reads for either client: ``ModelHTTP1Client`` calls it as a ``ModelResponseReceiver``,
/// AsyncHTTPClient as its delegate (each call forwarded to the receiver's).
///
/// Concurrency: every mutable field is touched only on the request's event loop (both clients
/// call it there; ``arm(_:)`` hops to it), except `failure`, which is guarded.
final class ModelResponseDelegate<Body: StreamBodyDecoder>: HTTPClientResponseDelegate, ModelResponseReceiver, @unchecked Sendable {
    typealias Response = Void

    /// What the transport learns after the request ended.
    struct Summary: Sendable {
        var status = 0
        var requestId: String?
        var bytes = 0
        var deltas = 0
        var firstDelta: Duration?
    }

    private let provider: String
    private let timeouts: ModelTimeouts
    private let requestIdHeader: String
    private let mapHTTPError: @Sendable (HTTPErrorResponse) -> ModelError
    private let yield: ModelEventSink
    private let started: ContinuousClock.Instant
    /// Whether the first delta is handed on the moment it is decoded, not with the rest of its read.
    private let handsFirstDeltaAtOnce: Bool

    // Event-loop confined.
    private var body: Body
    private var headers = HTTPHeaders()
    private var streaming = false
    private var errorBody: [UInt8] = []
    private var pending: [ModelEvent] = []
    private var flushScheduled = false
    private var complete = false
    private var finished = false
    private var handedFirstDelta = false
    /// The consumer declined an event: nothing more is handed on.
    private var declined = false
    private var lastHeard: NIODeadline = .now()
    private var sawHead = false
    private var timer: Scheduled<Void>?
    private var summary = Summary()

    /// A failure decided here (a timeout, bytes that are no stream): the request's own error is
    /// then only its consequence.
    private let failure = NIOLockedValueBox<ModelError?>(nil)
    private let early = NIOLockedValueBox(false)

    init(
        provider: String, timeouts: ModelTimeouts, requestIdHeader: String, body: Body,
        mapHTTPError: @escaping @Sendable (HTTPErrorResponse) -> ModelError,
        started: ContinuousClock.Instant, handsFirstDeltaAtOnce: Bool = false, yield: @escaping ModelEventSink
    ) {
        self.handsFirstDeltaAtOnce = handsFirstDeltaAtOnce
        self.provider = provider
        self.timeouts = timeouts
        self.requestIdHeader = requestIdHeader
        self.body = body
        self.mapHTTPError = mapHTTPError
        self.started = started
        self.yield = yield
    }

    /// The failure this delegate decided, if any.
    var decidedFailure: ModelError? { failure.withLockedValue { $0 } }

    /// Starts the silence limits for `task` (from the response timeout).
    func arm(_ task: any ModelExchangeControl) {
        task.eventLoop.execute {
            self.lastHeard = .now()
            self.scheduleTimer(task)
        }
    }

    /// What the request came to. Read it only after the task's future completed (its completion
    /// orders the event loop's last writes before the read).
    var finalSummary: Summary { summary }

    /// Whether the answer was complete before the body ended, and the rest of the body was not
    /// waited for (the task's cancellation is then the expected end, not a failure).
    var endedEarly: Bool { early.withLockedValue { $0 } }

    /// When the current silence limit runs out: the response limit until the head arrived,
    /// then the idle limit after the last piece.
    private var silenceDeadline: NIODeadline {
        lastHeard + .nanoseconds(Int64(clamping: (sawHead ? timeouts.idle : timeouts.response).nanoseconds))
    }

    private func scheduleTimer(_ task: any ModelExchangeControl) {
        stopTimer()
        guard !finished else { return }
        timer = task.eventLoop.scheduleTask(deadline: silenceDeadline) { [self] in
            timer = nil
            guard !finished else { return }
            guard NIODeadline.now() >= silenceDeadline else { return scheduleTimer(task) }
            let detail = sawHead
                ? "\(provider): request timed out: the stream was silent for \(timeouts.idle)"
                : "\(provider): request timed out: no response within \(timeouts.response)"
            fail(task, ModelError(kind: .unavailable, retryable: true, detail: detail))
        }
    }

    private func stopTimer() {
        timer?.cancel()
        timer = nil
    }

    /// Ends the reading: what was decoded goes on first (it may hold the first delta, which
    /// decides whether the call may be retried), then nothing more is decoded or timed.
    private func stop(_ task: any ModelExchangeControl) {
        flush(task)
        finished = true
        stopTimer()
    }

    /// Gives up the rest of the body once nothing more of it is wanted (the answer was whole, or
    /// the consumer declined an event): the task's cancellation is then the expected end.
    private func endEarly(_ task: any ModelExchangeControl) {
        early.withLockedValue { $0 = true }
        task.cancel()
    }

    private func fail(_ task: any ModelExchangeControl, _ error: ModelError) {
        stop(task)
        failure.withLockedValue { if $0 == nil { $0 = error } }
        task.fail(reason: error)
    }

    // AsyncHTTPClient's delegate: each call goes to the receiver's.
    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        receiveHead(head, control: task)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        receiveBody(buffer, control: task)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        receiveError(error, control: task)
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {
        try receiveEnd(control: task)
    }

    func receiveHead(_ head: HTTPResponseHead, control task: any ModelExchangeControl) {
        lastHeard = .now()
        sawHead = true
        headers = head.headers
        summary.status = Int(head.status.code)
        summary.requestId = head.headers.first(name: requestIdHeader)
        let contentType = head.headers.first(name: "content-type")?.lowercased() ?? ""
        streaming = body.carriesStream(status: summary.status, contentType: contentType)
        // From now on the (usually shorter) limit between pieces applies.
        scheduleTimer(task)
    }

    func receiveBody(_ buffer: ByteBuffer, control task: any ModelExchangeControl) {
        lastHeard = .now()
        summary.bytes += buffer.readableBytes
        guard !finished else { return }
        guard streaming else {
            let room = StreamingHTTPTransport<Body>.errorBodyLimit - errorBody.count
            if room > 0 { errorBody.append(contentsOf: buffer.readableBytesView.prefix(room)) }
            return
        }
        guard !complete else { return }
        do {
            try body.decode(buffer.readableBytesView) { event in
                add(event)
                // The answer's first text goes on as soon as it is decoded, before the rest of
                // the read (a consumer on this loop: no task to wake for it).
                if handsFirstDeltaAtOnce, !handedFirstDelta, summary.deltas > 0 {
                    handedFirstDelta = true
                    flush(task)
                }
            }
        } catch {
            fail(task, error)
            return
        }
        if body.isComplete {
            complete = true
            do {
                try body.finish { add($0) }
            } catch {
                fail(task, error)
                return
            }
            // The answer is whole: once this read is handled, a body that has not ended is not
            // waited for (events after the end are not decoded anyway).
            task.eventLoop.execute {
                guard !self.finished else { return }
                self.stop(task)
                self.endEarly(task)
            }
        }
        if !pending.isEmpty, !flushScheduled {
            flushScheduled = true
            task.eventLoop.execute { self.flush(task) }
        }
    }

    func receiveError(_ error: any Error, control task: any ModelExchangeControl) {
        stop(task)
    }

    func receiveEnd(control task: any ModelExchangeControl) throws {
        // Whoever set `finished` before also stopped the timer.
        guard !finished else { return }
        defer { stop(task) }
        guard streaming else {
            var error = mapHTTPError(HTTPErrorResponse(status: summary.status, headers: headers, body: errorBody, requestId: summary.requestId))
            if error.retryable, error.retryAfter == nil {
                error.retryAfter = RetryAfter.parse(milliseconds: headers.first(name: "retry-after-ms"), retryAfter: headers.first(name: "retry-after"))
            }
            throw error
        }
        if !complete {
            complete = true
            try body.finish { add($0) }
        }
    }

    /// Queues an event, joining a text delta to the text delta before it.
    private func add(_ event: ModelEvent) {
        guard !declined else { return }
        if case .delta(let text) = event {
            summary.deltas += 1
            if summary.firstDelta == nil { summary.firstDelta = ContinuousClock.now - started }
            if case .delta? = pending.last, case .delta(var joined) = pending.removeLast() {
                // Taken out of the list, the text is this function's alone: appended in place.
                joined += text
                pending.append(.delta(joined))
                return
            }
        }
        pending.append(event)
    }

    /// Hands the queued events on; one the consumer declines ends the reading there.
    private func flush(_ task: any ModelExchangeControl) {
        flushScheduled = false
        guard !pending.isEmpty, !declined else { return }
        let events = pending
        pending.removeAll(keepingCapacity: true)
        for event in events {
            guard yield(event) else {
                declined = true
                finished = true
                stopTimer()
                endEarly(task)
                return
            }
        }
    }
}

extension HTTPClient.Task: ModelExchangeControl {}
