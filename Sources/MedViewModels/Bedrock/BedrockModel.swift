import AsyncHTTPClient
import Foundation
import Logging
import MedViewAWS
import MedViewCore
import MedViewProtocol
import NIOCore
import NIOHTTP1
import Synchronization

/// Claude (or any Bedrock model) through Bedrock Runtime's ConverseStream, or
/// InvokeModelWithResponseStream for Anthropic models, on AsyncHTTPClient.
///
/// Each attempt signs a `POST {endpoint}/model/{id}/converse-stream` (SigV4 service `bedrock`,
/// or a bearer API key), decodes the `application/vnd.amazon.eventstream` answer as it arrives and
/// maps it with ``BedrockStreamMapper``. Errors before the stream (HTTP status with
/// `x-amzn-ErrorType`) and exceptions inside it become ``ModelError``s; retryable ones are
/// retried by ``RetryingModelStream`` before the first delta only. Cancelling the consumer
/// cancels the HTTP request. Logs carry sizes, statuses and timings, never text.
public struct BedrockModel: ChatModel {
    public let configuration: BedrockConfiguration
    public let descriptor: ModelDescriptor
    let client: HTTPClient
    let logger: Logger
    let now: @Sendable () -> Date
    let sleep: RetryingModelStream.Sleeper

    /// A model using `client` (``HTTPClient/shared`` by default).
    public init(
        configuration: BedrockConfiguration, client: HTTPClient = .shared, logger: Logger = Logger(label: "medview.bedrock"),
        now: @escaping @Sendable () -> Date = { Date() },
        sleep: @escaping RetryingModelStream.Sleeper = { try await Task.sleep(for: $0) }
    ) {
        self.configuration = configuration
        self.descriptor = ModelDescriptor(provider: "bedrock", id: configuration.modelID, demo: false)
        self.client = client
        self.logger = logger
        self.now = now
        self.sleep = sleep
    }

    public func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        let logger = self.logger
        return RetryingModelStream.make(
            policy: configuration.retryPolicy, sleep: sleep,
            onRetry: { attempt, error in
                logger.info("bedrock.retry", metadata: ["attempt": "\(attempt)", "error.detail": "\(error.detail)"])
            },
            attempt: { _ in self.attempt(request) }
        )
    }

    /// One request, without retries.
    public func attempt(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await self.withTimeout { activity in
                        try await self.exchange(request, activity: activity) { continuation.yield($0) }
                    }
                    continuation.finish()
                } catch let error as ModelError {
                    continuation.finish(throwing: error)
                } catch {
                    continuation.finish(throwing: Task.isCancelled ? CancellationError() : Self.transportError(error))
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Runs `body`, failing it with a retryable timeout when ``BedrockConfiguration/requestTimeout``
    /// passes without `activity.touch()`.
    func withTimeout(_ body: @escaping @Sendable (Activity) async throws -> Void) async throws {
        let activity = Activity()
        let timeout = configuration.requestTimeout
        let nanos = UInt64(timeout.components.seconds) * 1_000_000_000 + UInt64(timeout.components.attoseconds / 1_000_000_000)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await body(activity) }
            group.addTask {
                while true {
                    let idle = DispatchTime.now().uptimeNanoseconds &- activity.last
                    if idle >= nanos {
                        throw ModelError(kind: .unavailable, retryable: true, detail: "bedrock request timed out after \(timeout)")
                    }
                    try await Task.sleep(nanoseconds: min(nanos - idle, 250_000_000) + 1_000_000)
                }
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    /// The last time the service was heard from.
    final class Activity: Sendable {
        private let stamp = Atomic<UInt64>(DispatchTime.now().uptimeNanoseconds)
        var last: UInt64 { stamp.load(ordering: .relaxed) }
        func touch() { stamp.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed) }
    }

    /// The JSON body for `request` (ConverseStream or Anthropic Messages, by ``BedrockConfiguration/api``).
    public func requestBody(_ request: ModelRequest) throws(ModelError) -> [UInt8] {
        do {
            return try BedrockRequestBody.encode(request, configuration: configuration)
        } catch {
            throw ModelError(kind: .invalidRequest, retryable: false, detail: "bedrock request could not be encoded")
        }
    }

    /// The signed HTTP request for `request`.
    public func httpRequest(_ request: ModelRequest) async throws -> HTTPClientRequest {
        let body = try requestBody(request)
        let urlString = configuration.endpoint + configuration.path
        guard let url = URL(string: urlString) else { throw ModelError(kind: .invalidRequest, retryable: false, detail: "bedrock endpoint is not a URL") }
        var headers: [SigV4Request.Header] = [
            .init("Content-Type", "application/json"),
            .init("Accept", "application/vnd.amazon.eventstream"),
        ]
        if configuration.api == .invoke {
            headers[1] = .init("Accept", "application/json")
            if let guardrail = configuration.guardrail {
                headers.append(.init("X-Amzn-Bedrock-GuardrailIdentifier", guardrail.identifier))
                headers.append(.init("X-Amzn-Bedrock-GuardrailVersion", guardrail.version))
            }
        }
        var outgoing = HTTPClientRequest(url: urlString)
        outgoing.method = .POST
        outgoing.body = .bytes(ByteBuffer(bytes: body))
        switch configuration.authentication {
        case .bearer(let token):
            headers.append(.init("Authorization", "Bearer \(token)"))
            for header in headers { outgoing.headers.add(name: header.name, value: header.value) }
        case .sigV4(let cache):
            let identity: AWSCredentialIdentity
            do throws(AWSCredentialError) {
                identity = try await cache.credentials()
            } catch {
                switch error {
                case .unreachable, .httpStatus: throw ModelError(kind: .unavailable, retryable: true, detail: error.description)
                default: throw ModelError(kind: .failed, retryable: false, detail: error.description)
                }
            }
            let signer = SigV4Signer(service: "bedrock", region: configuration.region)
            let signed = try signer.sign(SigV4Request(method: "POST", url: url, headers: headers, payload: .bytes(body)), credentials: identity.credentials, date: now())
            for header in signed.request.headers { outgoing.headers.add(name: header.name, value: header.value) }
        }
        return outgoing
    }

    func exchange(_ request: ModelRequest, activity: Activity, emit: @escaping @Sendable (ModelEvent) -> Void) async throws {
        let outgoing = try await httpRequest(request)
        let started = ContinuousClock.now
        let response = try await client.execute(outgoing, timeout: .seconds(3600), logger: logger)
        activity.touch()
        let status = Int(response.status.code)
        guard status == 200 else {
            let body = try? await response.body.collect(upTo: 64 * 1024)
            let error = Self.httpError(status: status, headers: response.headers, body: body)
            logger.info("bedrock.http_error", metadata: ["http.response.status_code": "\(status)", "error.detail": "\(error.detail)"])
            throw error
        }
        var decoder = EventStreamDecoder()
        var mapper = BedrockStreamMapper(api: configuration.api)
        var bytes = 0
        var deltas = 0
        for try await buffer in response.body {
            activity.touch()
            bytes += buffer.readableBytes
            do {
                try decoder.append(buffer.readableBytesView)
                while let message = try decoder.next() {
                    try mapper.map(message) { event in
                        if case .delta = event { deltas += 1 }
                        emit(event)
                    }
                }
            } catch let error as EventStreamError {
                throw ModelError(kind: .failed, retryable: true, detail: "bedrock event stream: \(error)")
            }
        }
        do {
            try decoder.finish()
        } catch {
            throw ModelError(kind: .failed, retryable: true, detail: "bedrock event stream: \(error)")
        }
        guard mapper.stopped else {
            throw ModelError(kind: .failed, retryable: true, detail: "bedrock stream ended without a stop reason")
        }
        logger.debug("bedrock.stream_end", metadata: [
            "response.bytes": "\(bytes)", "response.deltas": "\(deltas)",
            "duration.ms": "\((ContinuousClock.now - started).components.seconds * 1000 + (ContinuousClock.now - started).components.attoseconds / 1_000_000_000_000_000)",
        ])
    }

    /// The error for a non-200 answer: the code from `x-amzn-ErrorType`, else the JSON body's
    /// `__type` or `code`, else the status alone.
    public static func httpError(status: Int, headers: HTTPHeaders, body: ByteBuffer?) -> ModelError {
        var code = headers.first(name: "x-amzn-ErrorType")
        if code == nil, let body, let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] {
            code = (object["__type"] as? String) ?? (object["code"] as? String)
        }
        var error = BedrockErrors.error(code: code, status: status, inStream: false)
        if error.retryable {
            error.retryAfter = RetryAfter.parse(milliseconds: nil, retryAfter: headers.first(name: "retry-after"))
        }
        return error
    }

    static func transportError(_ error: any Error) -> ModelError {
        if let error = error as? SigV4Error { return ModelError(kind: .invalidRequest, retryable: false, detail: "bedrock signing: \(error)") }
        if let error = error as? HTTPClientError, error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            return ModelError(kind: .unavailable, retryable: true, detail: "bedrock request timed out")
        }
        return ModelError(kind: .unavailable, retryable: true, detail: "bedrock connection failed (\(type(of: error)))")
    }
}
