import AsyncHTTPClient
import CoreMetrics
import Logging
import MedViewCore
import NIOCore
import NIOHTTP1
import Synchronization

/// Runs a provider's streaming model requests over AsyncHTTPClient; every HTTP model (Bedrock,
/// Anthropic, OpenAI-compatible) is this transport with its own parts:
///
/// - a ``RequestSigner`` that adds the credentials to each attempt (SigV4, an API key header, a
///   bearer token, or nothing);
/// - a ``StreamBodyDecoder`` made fresh for each attempt (SSE plus the provider's event decoder,
///   or the AWS event stream plus a message mapper);
/// - the mapping of a response that carries no stream (an HTTP error) to a ``ModelError``.
///
/// The transport owns what is common: the response and idle timeouts and the total one (kept by
/// ``ModelResponseDelegate``, which also decodes the body where it arrives and passes it on in
/// batches), the bounded read of error bodies and their `Retry-After`, the mapping of transport
/// failures and cancellation, retries before the first delta (``RetryingModelStream``), and the
/// logs (sizes, statuses and timings, never text; at info or below: the caller handles failures).
struct StreamingHTTPTransport<Body: StreamBodyDecoder>: Sendable {
    /// Who is called (`bedrock`, `anthropic`, `openai`), for error details and logs.
    var provider: String
    var client: ModelHTTP
    var timeouts: ModelTimeouts
    var retry: RetryPolicy
    var sleep: RetryingModelStream.Sleeper
    var logger: Logger
    /// The header carrying the provider's request id, logged for support cases.
    var requestIdHeader: String
    var signer: any RequestSigner
    /// A decoder for one attempt's body.
    var makeBody: @Sendable () -> Body
    /// Maps a response that carries no stream to a typed error.
    var mapHTTPError: @Sendable (HTTPErrorResponse) -> ModelError

    /// The largest error body read.
    static var errorBodyLimit: Int { 64 * 1024 }

    /// The model's answer to `request`: each attempt is signed and streams through a fresh body
    /// decoder, and retryable failures before the first delta are retried under ``retry``. A request
    /// that could not be built fails the stream at once.
    func answer(_ request: Result<StreamingHTTPRequest, ModelError>) -> AsyncThrowingStream<ModelEvent, any Error> {
        let http: StreamingHTTPRequest
        switch request {
        case .success(let value): http = value
        case .failure(let error): return AsyncThrowingStream { $0.finish(throwing: error) }
        }
        return RetryingModelStream.make(
            policy: retry, sleep: sleep, onRetry: retried,
            attempt: { number, yield in try await self.run(http, attempt: number, yield: yield) }
        )
    }

    /// The model's answer to `request` handed to `sink` as it is decoded, on the connection's event
    /// loop (``ChatModel/stream(_:into:)``), retried as ``answer(_:)`` retries, in the caller's task
    /// (no task or stream of its own). A `sink` that declines an event ends the request there.
    func answer(_ request: Result<StreamingHTTPRequest, ModelError>, into sink: @escaping ModelEventSink) async throws {
        let http = try request.get()
        try await RetryingModelStream.run(
            policy: retry, sleep: sleep, onRetry: retried, yield: sink,
            attempt: { number, yield in try await self.run(http, attempt: number, handFirstDeltaAtOnce: true, yield: yield) }
        )
    }

    /// Counts and logs a retry: through the process's MetricsSystem (docs/METRICS.md), a throttled
    /// attempt that is retried counts here; one that ends the call counts where the model is called.
    private var retried: @Sendable (_ nextAttempt: Int, _ error: ModelError) -> Void {
        let (logger, provider) = (self.logger, self.provider)
        return { next, error in
            Counter(label: "medview_model_retries_total", dimensions: [("provider", provider)]).increment()
            if error.kind == .throttled {
                Counter(label: "medview_model_throttles_total", dimensions: [("provider", provider)]).increment()
            }
            logger.info("model.retry", metadata: ["model.provider": "\(provider)", "model.attempt": "\(next)", "model.error.detail": "\(error.detail)"])
        }
    }

    /// The same transport (client, limits, retries, signer, error mapping) reading its bodies with
    /// `makeBody`: an unstreamed reply's transport made from a stream's.
    func reading<Other: StreamBodyDecoder>(_ makeBody: @escaping @Sendable () -> Other) -> StreamingHTTPTransport<Other> {
        StreamingHTTPTransport<Other>(
            provider: provider, client: client, timeouts: timeouts, retry: retry, sleep: sleep, logger: logger,
            requestIdHeader: requestIdHeader, signer: signer, makeBody: makeBody, mapHTTPError: mapHTTPError
        )
    }

    /// The whole text of the answer to `request` (``ChatModel/reply(_:)``): ``answer(_:into:)``
    /// joined, retried as a stream is, in the caller's task (no task or stream of its own: the
    /// safety triage asks one of these for every message).
    func text(_ request: Result<StreamingHTTPRequest, ModelError>) async throws -> String {
        let text = Mutex("")
        try await answer(request) { event in
            if case .delta(let piece) = event { text.withLock { $0 += piece } }
            return true
        }
        return text.withLock { $0 }
    }

    /// One attempt at `request`, without retries; cancelling the consumer cancels the request.
    func attempt(_ request: StreamingHTTPRequest, number: Int) -> AsyncThrowingStream<ModelEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await run(request, attempt: number, yield: RetryingModelStream.sink(continuation))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Runs one attempt, handing its events to `yield` (from the connection's event loop, in
    /// batches: see ``ModelResponseDelegate``); returns when the answer is complete, or when
    /// `yield` declined an event (the rest is not read).
    func run(_ request: StreamingHTTPRequest, attempt: Int, handFirstDeltaAtOnce: Bool = false, yield: @escaping ModelEventSink) async throws {
        let started = ContinuousClock.now
        try await reporting(attempt: attempt, started: started) {
            let signed = try await signer.sign(request)
            try Task.checkCancellation()
            let delegate = makeDelegate(started: started, handFirstDeltaAtOnce: handFirstDeltaAtOnce, yield: yield)
            let control: any ModelExchangeControl
            let result: EventLoopFuture<Void>
            switch client.backend {
            case .lean(let lean):
                guard let exchange = try? lean.execute(signed, receiver: delegate, deadline: deadline()) else { throw invalidURL }
                (control, result) = (exchange, exchange.futureResult)
            case .asyncHTTPClient(let http):
                guard let clientRequest = try? HTTPClient.Request(url: signed.url, method: .POST, headers: signed.headers, body: .bytes(signed.body)) else {
                    throw invalidURL
                }
                let task = http.execute(request: clientRequest, delegate: delegate, eventLoop: .indifferent, deadline: deadline(), logger: logger)
                (control, result) = (task, task.futureResult)
            }
            delegate.arm(control)
            return try await outcome(of: control, result: result, delegate: delegate)
        }
    }

    /// A call to `request` made ready (``ChatModel/prepare(_:)``): signed, with its connection
    /// taken (or being made) on the lean client and nothing written until it is sent. `nil` on
    /// AsyncHTTPClient, and for a request that cannot be built, signed or sent (the call made the
    /// usual way then fails as it should).
    func prepare(_ request: Result<StreamingHTTPRequest, ModelError>) async -> (any PreparedModelCall)? {
        guard case .lean(let lean) = client.backend, case .success(let http) = request else { return nil }
        let started = ContinuousClock.now
        guard let signed = try? await signer.sign(http) else { return nil }
        let events = HeldEvents()
        let delegate = makeDelegate(started: started, handFirstDeltaAtOnce: true) { events.yield($0) }
        guard let exchange = try? lean.execute(signed, receiver: delegate, deadline: deadline(), held: true) else { return nil }
        return PreparedHTTPCall(transport: self, request: http, exchange: exchange, delegate: delegate, events: events, started: started)
    }

    /// The answer to a prepared call, retried as ``answer(_:into:)`` retries: its first attempt is
    /// the held request, a retry a new request.
    func answer(_ call: PreparedHTTPCall<Body>, into sink: @escaping ModelEventSink) async throws {
        try await RetryingModelStream.run(policy: retry, sleep: sleep, onRetry: retried, yield: sink) { number, yield in
            if number == 1 {
                try await run(call, yield: yield)
            } else {
                try await run(call.request, attempt: number, handFirstDeltaAtOnce: true, yield: yield)
            }
        }
    }

    /// The first attempt of a prepared call: sends it (if not sent yet) and reads its answer into
    /// `yield`, as ``run(_:attempt:handFirstDeltaAtOnce:yield:)`` does.
    private func run(_ call: PreparedHTTPCall<Body>, yield: @escaping ModelEventSink) async throws {
        call.events.attach(yield)
        call.send()
        try await reporting(attempt: 1, started: call.started) {
            try await outcome(of: call.exchange, result: call.exchange.futureResult, delegate: call.delegate)
        }
    }

    private func makeDelegate(started: ContinuousClock.Instant, handFirstDeltaAtOnce: Bool, yield: @escaping ModelEventSink) -> ModelResponseDelegate<Body> {
        ModelResponseDelegate(
            provider: provider, timeouts: timeouts, requestIdHeader: requestIdHeader, body: makeBody(),
            mapHTTPError: mapHTTPError, started: started, handsFirstDeltaAtOnce: handFirstDeltaAtOnce, yield: yield
        )
    }

    private func deadline() -> NIODeadline {
        .now() + .nanoseconds(Int64(clamping: timeouts.total.nanoseconds))
    }

    private var invalidURL: ModelError {
        ModelError(kind: .invalidRequest, retryable: false, detail: "\(provider): the request URL is not valid")
    }

    /// Waits for the request's end (cancelling the task cancels it) and says what it came to.
    private func outcome(of control: any ModelExchangeControl, result: EventLoopFuture<Void>, delegate: ModelResponseDelegate<Body>) async throws -> ModelResponseDelegate<Body>.Summary {
        do {
            try await withTaskCancellationHandler {
                try await result.get()
            } onCancel: {
                control.cancel()
            }
        } catch {
            if let decided = delegate.decidedFailure { throw decided }
            if !delegate.endedEarly { throw error }
        }
        return delegate.finalSummary
    }

    /// Runs an attempt's `body`, logging how it ended, and maps what it throws to a
    /// ``ModelError`` (or `CancellationError`).
    private func reporting(attempt: Int, started: ContinuousClock.Instant, _ body: () async throws -> ModelResponseDelegate<Body>.Summary) async throws {
        let provider = self.provider
        do {
            let summary = try await body()
            logger.debug("model.response.complete", metadata: [
                "model.provider": "\(provider)", "model.attempt": "\(attempt)", "model.request_id": "\(summary.requestId ?? "-")",
                "http.response.status_code": "\(summary.status)",
                "model.response.bytes": "\(summary.bytes)", "model.deltas": "\(summary.deltas)", "first_delta.ms": "\(summary.firstDelta?.milliseconds ?? -1)",
                "duration.ms": "\((ContinuousClock.now - started).milliseconds)",
            ])
        } catch let error as ModelError {
            logger.info("model.request.failed", metadata: [
                "model.provider": "\(provider)", "model.attempt": "\(attempt)",
                "model.error.kind": "\(error.kind)", "model.error.retryable": "\(error.retryable)",
                "duration.ms": "\((ContinuousClock.now - started).milliseconds)",
            ])
            throw error
        } catch {
            if Task.isCancelled || error is CancellationError { throw CancellationError() }
            if let clientError = error as? HTTPClientError, clientError == .cancelled { throw CancellationError() }
            if let leanError = error as? ModelHTTPError, leanError == .cancelled { throw CancellationError() }
            logger.info("model.request.failed", metadata: [
                "model.provider": "\(provider)", "model.attempt": "\(attempt)",
                "model.error.kind": "transport", "duration.ms": "\((ContinuousClock.now - started).milliseconds)",
            ])
            throw Self.transportError(error, provider: provider)
        }
    }

    /// A failure below HTTP (connecting, a timeout of the client, a cut connection) as a retryable
    /// `unavailable` error whose detail names only the error's type.
    static func transportError(_ error: any Error, provider: String) -> ModelError {
        if let clientError = error as? HTTPClientError, clientError == .deadlineExceeded || clientError == .readTimeout || clientError == .connectTimeout {
            return ModelError(kind: .unavailable, retryable: true, detail: "\(provider): request timed out (\(clientError))")
        }
        if let leanError = error as? ModelHTTPError {
            return ModelError(kind: .unavailable, retryable: true, detail: leanError.isTimeout ? "\(provider): request timed out (\(leanError))" : "\(provider): transport error: \(leanError)")
        }
        return ModelError(kind: .unavailable, retryable: true, detail: "\(provider): transport error \(describe(error))")
    }

    /// A short, text-free description of a transport failure.
    static func describe(_ error: any Error) -> String {
        if let clientError = error as? HTTPClientError { return "\(clientError)" }
        return String(describing: type(of: error))
    }
}
