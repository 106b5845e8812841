import AsyncHTTPClient
import Logging
import MedViewCore
import MedViewProtocol

/// Claude through the Anthropic Messages API (`POST {base}/v1/messages`, streamed over SSE).
///
/// A ``StreamingHTTPTransport`` with the key in `x-api-key` and ``AnthropicStreamDecoder`` over
/// SSE. Retryable failures before the first delta (429, 529, 5xx, timeouts, connection errors) are
/// retried with ``RetryPolicy``; error mapping is documented on ``AnthropicErrors``. Cancelling
/// the consumer cancels the HTTP request.
public struct AnthropicModel: ChatModel {
    /// Where and how to call the API.
    public struct Configuration: Sendable {
        /// The model id, for example `claude-3-5-haiku-latest`.
        public var model: String
        /// The key sent in `x-api-key`.
        public var apiKey: APIKey
        /// The API's base URL without `/v1` (`https://api.anthropic.com`); tests point it at a stand-in.
        public var baseURL: String
        /// The `anthropic-version` header.
        public var apiVersion: String
        /// How long the API may stay silent.
        public var timeouts: ModelTimeouts
        /// Retries before the first delta.
        public var retry: RetryPolicy

        /// A configuration for `model` with `apiKey`; the rest defaults to the public API.
        public init(
            model: String,
            apiKey: APIKey,
            baseURL: String = AnthropicModel.defaultBaseURL,
            apiVersion: String = "2023-06-01",
            timeouts: ModelTimeouts = .init(),
            retry: RetryPolicy = .init()
        ) {
            self.model = model
            self.apiKey = apiKey
            self.baseURL = baseURL
            self.apiVersion = apiVersion
            self.timeouts = timeouts
            self.retry = retry
        }
    }

    /// The public API's address.
    public static let defaultBaseURL = "https://api.anthropic.com"

    /// Where and how the API is called.
    public let configuration: Configuration
    /// `anthropic` and the model id.
    public let descriptor: ModelDescriptor
    private let transport: StreamingHTTPTransport<ServerSentEventBody<AnthropicStreamDecoder>>
    /// The HTTP client its calls go through (`lean` or `asynchttpclient`), for logs and tests.
    public var httpClientName: String { transport.client.name }
    /// The same calls, unstreamed (``reply(_:)``).
    private let replies: StreamingHTTPTransport<WholeReplyBody<AnthropicReplyDecoder>>

    /// A model calling the API through `client`.
    /// - Parameters:
    ///   - sleep: waits between retries; tests pass a no-op.
    public init(
        configuration: Configuration,
        client: ModelHTTP = .models,
        logger: Logger = Logger(label: "medview.model.anthropic"),
        sleep: @escaping RetryingModelStream.Sleeper = { try await Task.sleep(for: $0) }
    ) {
        self.configuration = configuration
        self.descriptor = ModelDescriptor(provider: "anthropic", id: configuration.model, demo: false)
        self.transport = StreamingHTTPTransport(
            provider: "anthropic",
            client: client,
            timeouts: configuration.timeouts,
            retry: configuration.retry,
            sleep: sleep,
            logger: logger,
            requestIdHeader: "request-id",
            signer: HeaderSigner([("x-api-key", configuration.apiKey.value)]),
            makeBody: { ServerSentEventBody(provider: "anthropic", decoder: AnthropicStreamDecoder()) },
            mapHTTPError: AnthropicErrors.http
        )
        self.replies = transport.reading { WholeReplyBody(provider: "anthropic", decoder: AnthropicReplyDecoder(provider: "anthropic")) }
    }

    /// The whole reply to a short request, unstreamed (`"stream": false`), retried as a stream is.
    public func reply(_ request: ModelRequest) async throws -> String {
        try await replies.text(Result { () throws(ModelError) in try httpRequest(for: request, streaming: false) })
    }

    /// Streams the answer to `request`.
    public func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        transport.answer(Result { () throws(ModelError) in try httpRequest(for: request) })
    }

    /// Streams the answer to `request` into `sink`, on the connection's event loop as the response
    /// is decoded (see ``ChatModel/stream(_:into:)``), retried as ``stream(_:)`` is.
    public func stream(_ request: ModelRequest, into sink: @escaping ModelEventSink) async throws {
        try await transport.answer(Result { () throws(ModelError) in try httpRequest(for: request) }, into: sink)
    }

    /// The call to `request` made ready and held: signed, its connection taken, nothing sent
    /// (``ChatModel/prepare(_:)``).
    public func prepare(_ request: ModelRequest) async -> (any PreparedModelCall)? {
        await transport.prepare(Result { () throws(ModelError) in try httpRequest(for: request) })
    }

    /// The HTTP request for `request`, before the key is added.
    func httpRequest(for request: ModelRequest, streaming: Bool = true) throws(ModelError) -> StreamingHTTPRequest {
        struct Body: Encodable {
            var model: String
            var system: String?
            var messages: [ChatMessageJSON]
            var max_tokens: Int
            var temperature: Double?
            var stream: Bool
        }
        let body = Body(
            model: configuration.model,
            system: request.system.isEmpty ? nil : request.system,
            messages: request.messages.map(ChatMessageJSON.init),
            max_tokens: max(1, request.maxOutputTokens),
            temperature: request.temperature,
            stream: streaming
        )
        var http = try StreamingHTTPRequest.json(body, base: configuration.baseURL, path: "/v1/messages", accept: streaming ? "text/event-stream" : "application/json", provider: "anthropic")
        http.headers.add(name: "anthropic-version", value: configuration.apiVersion)
        return http
    }
}
