import AsyncHTTPClient
import Foundation
import Logging
import MedViewAWS
import MedViewCore
import MedViewProtocol
import NIOCore
import NIOHTTP1

/// Claude (or any Bedrock model) through Bedrock Runtime's ConverseStream, or
/// InvokeModelWithResponseStream for Anthropic models, on AsyncHTTPClient.
///
/// A ``StreamingHTTPTransport`` whose attempts are `POST {endpoint}/model/{id}/converse-stream`
/// (or `/invoke-with-response-stream`) signed with SigV4 (service `bedrock`) or a bearer API key,
/// and whose `application/vnd.amazon.eventstream` answer is mapped by ``BedrockStreamMapper``.
/// Errors before the stream (HTTP status with `x-amzn-ErrorType`) and exceptions inside it become
/// ``ModelError``s (``BedrockErrors``); retryable ones are retried by ``RetryingModelStream``
/// before the first delta only. ``BedrockConfiguration/requestTimeout`` limits both the wait for
/// the response and every silence inside it. Cancelling the consumer cancels the HTTP request.
/// Logs carry sizes, statuses and timings, never text.
public struct BedrockModel: ChatModel {
    /// The model, endpoint, credentials and limits.
    public let configuration: BedrockConfiguration
    /// `bedrock` and the model id.
    public let descriptor: ModelDescriptor
    private let transport: StreamingHTTPTransport<EventStreamBody<BedrockStreamMapper>>
    /// The HTTP client its calls go through (`lean` or `asynchttpclient`), for logs and tests.
    public var httpClientName: String { transport.client.name }
    /// The same calls, unstreamed (``reply(_:)``).
    private let replies: StreamingHTTPTransport<WholeReplyBody<AnyWholeReplyDecoder>>

    /// A model using `client` (``HTTPClient/models`` by default).
    /// - Parameters:
    ///   - now: the SigV4 signing time.
    ///   - sleep: waits between retries; tests pass a no-op.
    public init(
        configuration: BedrockConfiguration, client: ModelHTTP = .models, logger: Logger = Logger(label: "medview.bedrock"),
        now: @escaping @Sendable () -> Date = { Date() },
        sleep: @escaping RetryingModelStream.Sleeper = { try await Task.sleep(for: $0) }
    ) {
        self.configuration = configuration
        self.descriptor = ModelDescriptor(provider: "bedrock", id: configuration.modelID, demo: false)
        let signer: any RequestSigner = switch configuration.authentication {
        case .bearer(let token): HeaderSigner([("Authorization", "Bearer \(token)")])
        case .sigV4(let cache): SigV4RequestSigner(service: "bedrock", region: configuration.region, credentials: cache, now: now)
        }
        let api = configuration.api
        self.transport = StreamingHTTPTransport(
            provider: "bedrock",
            client: client,
            timeouts: ModelTimeouts(response: configuration.requestTimeout, idle: configuration.requestTimeout, total: .seconds(3600)),
            retry: configuration.retryPolicy,
            sleep: sleep,
            logger: logger,
            requestIdHeader: "x-amzn-RequestId",
            signer: signer,
            makeBody: { EventStreamBody(provider: "bedrock", mapper: BedrockStreamMapper(api: api)) },
            mapHTTPError: { response in
                BedrockModel.httpError(status: response.status, headers: response.headers, body: ByteBuffer(bytes: response.body))
            }
        )
        let replyDecoder = api == .converse ? AnyWholeReplyDecoder(BedrockConverseReplyDecoder()) : AnyWholeReplyDecoder(AnthropicReplyDecoder(provider: "bedrock"))
        self.replies = transport.reading { WholeReplyBody(provider: "bedrock", decoder: replyDecoder) }
    }

    /// The whole reply to a short request, unstreamed (`/converse` or `/invoke`), retried as a
    /// stream is.
    public func reply(_ request: ModelRequest) async throws -> String {
        try await replies.text(Result { () throws(ModelError) in try unsignedRequest(request, streaming: false) })
    }

    /// Streams the answer to `request`, retrying before the first delta.
    public func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        transport.answer(Result { () throws(ModelError) in try unsignedRequest(request) })
    }

    /// Streams the answer to `request` into `sink`, on the connection's event loop as the response
    /// is decoded (see ``ChatModel/stream(_:into:)``), retried as ``stream(_:)`` is.
    public func stream(_ request: ModelRequest, into sink: @escaping ModelEventSink) async throws {
        try await transport.answer(Result { () throws(ModelError) in try unsignedRequest(request) }, into: sink)
    }

    /// The call to `request` made ready and held: signed, its connection taken, nothing sent
    /// (``ChatModel/prepare(_:)``).
    public func prepare(_ request: ModelRequest) async -> (any PreparedModelCall)? {
        await transport.prepare(Result { () throws(ModelError) in try unsignedRequest(request) })
    }

    /// One request, without retries.
    public func attempt(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        do {
            return transport.attempt(try unsignedRequest(request), number: 1)
        } catch {
            return AsyncThrowingStream { $0.finish(throwing: error) }
        }
    }

    /// The JSON body for `request` (ConverseStream or Anthropic Messages, by ``BedrockConfiguration/api``).
    public func requestBody(_ request: ModelRequest, streaming: Bool = true) throws(ModelError) -> [UInt8] {
        do {
            return try BedrockRequestBody.encode(request, configuration: configuration, streaming: streaming)
        } catch {
            throw ModelError(kind: .invalidRequest, retryable: false, detail: "bedrock request could not be encoded")
        }
    }

    /// The signed HTTP request for `request`, as an attempt sends it.
    public func httpRequest(_ request: ModelRequest) async throws -> HTTPClientRequest {
        try await transport.signer.sign(unsignedRequest(request)).clientRequest
    }

    /// The request for `request` before signing: body, content headers and guardrail headers.
    func unsignedRequest(_ request: ModelRequest, streaming: Bool = true) throws(ModelError) -> StreamingHTTPRequest {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        switch configuration.api {
        case .converse:
            headers.add(name: "Accept", value: streaming ? "application/vnd.amazon.eventstream" : "application/json")
        case .invoke:
            headers.add(name: "Accept", value: "application/json")
            if let guardrail = configuration.guardrail {
                headers.add(name: "X-Amzn-Bedrock-GuardrailIdentifier", value: guardrail.identifier)
                headers.add(name: "X-Amzn-Bedrock-GuardrailVersion", value: guardrail.version)
            }
        }
        let url = configuration.endpoint + configuration.path(streaming: streaming)
        guard URL(string: url) != nil else { throw ModelError(kind: .invalidRequest, retryable: false, detail: "bedrock endpoint is not a URL") }
        return StreamingHTTPRequest(url: url, headers: headers, body: try requestBody(request, streaming: streaming))
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
}
