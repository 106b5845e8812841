import AsyncHTTPClient
import Foundation
import Logging
import MedViewCore
import NIOCore
import NIOHTTP1
import Synchronization

/// How long a streaming model request may stay silent before it is abandoned.
public struct ModelTimeouts: Sendable, Equatable {
    /// From sending the request until the response head arrives (connecting included).
    public var response: Duration
    /// Longest silence between two pieces of the response body (keep-alive pings count as data).
    public var idle: Duration
    /// The most a whole answer may take.
    public var total: Duration

    public init(response: Duration = .seconds(60), idle: Duration = .seconds(60), total: Duration = .seconds(600)) {
        self.response = response
        self.idle = idle
        self.total = total
    }
}

/// An API key held in memory; it never appears in descriptions, logs or error details.
public struct APIKey: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The key itself, for the request header only.
    public let value: String

    public init(_ value: String) {
        self.value = value
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// Turns the Server-Sent Events of one provider's streaming API into ``ModelEvent``s.
protocol ServerSentEventDecoder: Sendable {
    /// The model events carried by one stream event.
    mutating func decode(_ event: ServerSentEvent) throws(ModelError) -> [ModelEvent]
    /// Whether the answer is complete (nothing more needs to be read).
    var isComplete: Bool { get }
    /// Called when the body ended; returns the last events or throws when the answer was cut short.
    mutating func finish() throws(ModelError) -> [ModelEvent]
}

/// One POST to a streaming model API whose answer is a `text/event-stream` body.
struct StreamingHTTPRequest: Sendable {
    var url: String
    var headers: HTTPHeaders
    var body: [UInt8]
}

/// Runs streaming model requests over AsyncHTTPClient: timeouts, status errors, the SSE body.
///
/// Shared by the Anthropic and OpenAI-compatible models; each supplies its request, its stream
/// decoder and its mapping of HTTP error responses.
struct StreamingHTTPTransport: Sendable {
    /// Who is called (`anthropic`, `openai`), for error details and logs.
    var provider: String
    var client: HTTPClient
    var timeouts: ModelTimeouts
    var logger: Logger
    /// The header carrying the provider's request id, logged for support cases.
    var requestIdHeader: String
    /// Maps a non-2xx response (status, the first 64 KiB of its body, its request id) to a typed error.
    var mapHTTPError: @Sendable (_ status: Int, _ body: [UInt8], _ requestId: String?) -> ModelError

    /// The largest error body read.
    static let errorBodyLimit = 64 * 1024

    /// The model's answer to `request`: each attempt streams through a fresh decoder, and
    /// retryable failures before the first delta are retried under `policy`. A request that could
    /// not be built fails the stream at once.
    func answer<Decoder: ServerSentEventDecoder>(
        _ request: Result<StreamingHTTPRequest, ModelError>,
        policy: RetryPolicy,
        sleep: @escaping RetryingModelStream.Sleeper,
        decoder: @escaping @Sendable () -> Decoder
    ) -> AsyncThrowingStream<ModelEvent, any Error> {
        let http: StreamingHTTPRequest
        switch request {
        case .success(let value): http = value
        case .failure(let error): return AsyncThrowingStream { $0.finish(throwing: error) }
        }
        let logger = self.logger
        let provider = self.provider
        return RetryingModelStream.make(
            policy: policy,
            sleep: sleep,
            onRetry: { next, error in
                logger.info("model.retry", metadata: ["model.provider": "\(provider)", "model.attempt": "\(next)", "model.error.detail": "\(error.detail)"])
            },
            attempt: { number in self.stream(http, decoder: decoder(), attempt: number) }
        )
    }

    /// Sends `request` and streams the decoded events; cancelling the consumer cancels the request.
    func stream(_ request: StreamingHTTPRequest, decoder: some ServerSentEventDecoder, attempt: Int) -> AsyncThrowingStream<ModelEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await run(request, decoder: decoder, attempt: attempt) { continuation.yield($0) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func run(_ request: StreamingHTTPRequest, decoder: some ServerSentEventDecoder, attempt: Int, yield: @escaping @Sendable (ModelEvent) -> Void) async throws {
        let started = ContinuousClock.now
        let watchdog = SilenceWatchdog(first: timeouts.response, tick: min(timeouts.response, timeouts.idle) / 4)
        let provider = self.provider
        let timeouts = self.timeouts
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await exchange(request, decoder: decoder, watchdog: watchdog, attempt: attempt, started: started, yield: yield)
                }
                group.addTask {
                    try await watchdog.waitForSilence()
                    let phase = watchdog.phase
                    throw ModelError(
                        kind: .unavailable, retryable: true,
                        detail: phase == .response
                            ? "\(provider): no response within \(timeouts.response)"
                            : "\(provider): the stream was silent for \(timeouts.idle)"
                    )
                }
                try await group.next()
                group.cancelAll()
            }
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
            let mapped = ModelError(kind: .unavailable, retryable: true, detail: "\(provider): transport error \(Self.describe(error))")
            logger.info("model.request.failed", metadata: [
                "model.provider": "\(provider)", "model.attempt": "\(attempt)",
                "model.error.kind": "transport", "duration.ms": "\((ContinuousClock.now - started).milliseconds)",
            ])
            throw mapped
        }
    }

    private func exchange(
        _ request: StreamingHTTPRequest,
        decoder initial: some ServerSentEventDecoder,
        watchdog: SilenceWatchdog,
        attempt: Int,
        started: ContinuousClock.Instant,
        yield: @Sendable (ModelEvent) -> Void
    ) async throws {
        var http = HTTPClientRequest(url: request.url)
        http.method = .POST
        http.headers = request.headers
        http.body = .bytes(ByteBuffer(bytes: request.body))
        let response = try await client.execute(http, timeout: .nanoseconds(Int64(timeouts.total.nanoseconds)), logger: logger)
        watchdog.heard(next: timeouts.idle)
        let requestId = response.headers.first(name: requestIdHeader)
        logger.debug("model.response.head", metadata: [
            "model.provider": "\(provider)", "model.attempt": "\(attempt)",
            "http.response.status_code": "\(response.status.code)", "model.request_id": "\(requestId ?? "-")",
            "duration.ms": "\((ContinuousClock.now - started).milliseconds)",
        ])
        let contentType = response.headers.first(name: "content-type")?.lowercased() ?? ""
        let status = Int(response.status.code)
        if !(200..<300).contains(status) || contentType.contains("json") {
            // An error answer, or a server that ignored `stream: true`: read a bounded body and map it.
            var body: [UInt8] = []
            for try await piece in response.body {
                watchdog.heard(next: timeouts.idle)
                body.append(contentsOf: piece.readableBytesView.prefix(Self.errorBodyLimit - body.count))
                if body.count >= Self.errorBodyLimit { break }
            }
            var error = mapHTTPError(status, body, requestId)
            if error.retryable {
                error.retryAfter = RetryAfter.parse(milliseconds: response.headers.first(name: "retry-after-ms"), retryAfter: response.headers.first(name: "retry-after"))
            }
            throw error
        }
        var parser = ServerSentEventParser()
        var decoder = initial
        var deltas = 0
        var firstDelta: Duration?
        for try await piece in response.body {
            watchdog.heard(next: timeouts.idle)
            let events: [ServerSentEvent]
            do {
                events = try parser.feed(piece.readableBytesView)
            } catch {
                throw ModelError(kind: .failed, retryable: false, detail: "\(provider): invalid event stream (\(error))")
            }
            for event in events {
                for modelEvent in try decoder.decode(event) {
                    if case .delta = modelEvent {
                        deltas += 1
                        if firstDelta == nil { firstDelta = ContinuousClock.now - started }
                    }
                    yield(modelEvent)
                }
                if decoder.isComplete { break }
            }
            if decoder.isComplete { break }
        }
        for modelEvent in try decoder.finish() { yield(modelEvent) }
        logger.debug("model.response.complete", metadata: [
            "model.provider": "\(provider)", "model.attempt": "\(attempt)", "model.request_id": "\(requestId ?? "-")",
            "model.deltas": "\(deltas)", "first_delta.ms": "\(firstDelta?.milliseconds ?? -1)",
            "duration.ms": "\((ContinuousClock.now - started).milliseconds)",
        ])
    }

    /// A short, text-free description of a transport failure.
    static func describe(_ error: any Error) -> String {
        if let clientError = error as? HTTPClientError { return "\(clientError)" }
        return String(describing: type(of: error))
    }
}

/// Fails a request that stays silent too long: first until the response head, then between body pieces.
final class SilenceWatchdog: Sendable {
    enum Phase: Sendable { case response, body }
    private struct State { var deadline: ContinuousClock.Instant; var phase: Phase }
    private let state: Mutex<State>
    /// The longest single sleep: a deadline moved earlier is noticed at most this late.
    private let tick: Duration

    init(first: Duration, tick: Duration) {
        state = Mutex(State(deadline: .now + first, phase: .response))
        self.tick = max(tick, .milliseconds(1))
    }

    var phase: Phase { state.withLock { $0.phase } }

    /// Data arrived: the next silence may last `next`.
    func heard(next: Duration) {
        state.withLock {
            $0.deadline = .now + next
            $0.phase = .body
        }
    }

    /// Returns when the current deadline passes without news; throws when cancelled.
    func waitForSilence() async throws {
        while true {
            let deadline = state.withLock { $0.deadline }
            let now = ContinuousClock.now
            if now >= deadline { return }
            try await Task.sleep(until: min(deadline, now + tick), clock: .continuous)
        }
    }
}

extension Duration {
    /// Whole milliseconds, for logs.
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }

    /// Whole nanoseconds.
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}

/// A JSON value that may be a string or a number (error `code` fields differ between servers).
struct LooseString: Decodable, Sendable, Equatable {
    var value: String

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let string = try? container.decode(String.self) {
            value = string
        } else if let number = try? container.decode(Int.self) {
            value = String(number)
        } else if let number = try? container.decode(Double.self) {
            value = String(number)
        } else {
            value = ""
        }
    }
}

extension ModelError {
    /// The kind and retryability an HTTP status means for a model API, when the status alone decides.
    static func classify(status: Int) -> (Kind, Bool)? {
        switch status {
        case 429: (.throttled, true)
        case 408, 409, 500...599: (.unavailable, true)
        case 401, 403: (.failed, false)
        case 400...499: (.invalidRequest, false)
        default: nil
        }
    }

    /// Keeps a provider's error type short and free of anything but identifier characters.
    static func sanitizedToken(_ raw: String?) -> String? {
        guard let raw, !raw.isEmpty else { return nil }
        let allowed = raw.unicodeScalars.prefix(64).filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" || $0 == ".") }
        let token = String(String.UnicodeScalarView(allowed))
        return token.isEmpty ? nil : token
    }
}
