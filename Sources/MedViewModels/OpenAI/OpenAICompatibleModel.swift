import AsyncHTTPClient
import Logging
import MedViewCore
import MedViewProtocol

/// A model behind an OpenAI-compatible Chat Completions API (`POST {baseURL}/chat/completions`,
/// streamed over SSE): OpenAI itself, or a local Ollama, vLLM or llama.cpp server.
///
/// A ``StreamingHTTPTransport`` with the key (if any) as a bearer token and ``OpenAIStreamDecoder``
/// over SSE. The system prompt goes first as a `system` message. Retryable failures before the
/// first delta are retried with ``RetryPolicy``; error mapping is documented on ``OpenAIErrors``.
/// Cancelling the consumer cancels the HTTP request.
public struct OpenAICompatibleModel: ChatModel {
    /// Where and how to call the server.
    public struct Configuration: Sendable {
        /// The API base including its version path, for example `http://127.0.0.1:8080/v1`.
        public var baseURL: String
        /// The model name the server knows.
        public var model: String
        /// Sent as `Authorization: Bearer …` when present; local servers usually need none.
        public var apiKey: APIKey?
        /// How long the server may stay silent.
        public var timeouts: ModelTimeouts
        /// Retries before the first delta.
        public var retry: RetryPolicy

        /// A configuration for `model` at `baseURL`.
        public init(baseURL: String, model: String, apiKey: APIKey? = nil, timeouts: ModelTimeouts = .init(), retry: RetryPolicy = .init()) {
            self.baseURL = baseURL
            self.model = model
            self.apiKey = apiKey
            self.timeouts = timeouts
            self.retry = retry
        }
    }

    /// Where and how the server is called.
    public let configuration: Configuration
    /// `openai` and the model name.
    public let descriptor: ModelDescriptor
    private let transport: StreamingHTTPTransport<ServerSentEventBody<OpenAIStreamDecoder>>

    /// A model calling the server through `client`.
    /// - Parameters:
    ///   - sleep: waits between retries; tests pass a no-op.
    public init(
        configuration: Configuration,
        client: HTTPClient = .shared,
        logger: Logger = Logger(label: "medview.model.openai"),
        sleep: @escaping RetryingModelStream.Sleeper = { try await Task.sleep(for: $0) }
    ) {
        self.configuration = configuration
        self.descriptor = ModelDescriptor(provider: "openai", id: configuration.model, demo: false)
        self.transport = StreamingHTTPTransport(
            provider: "openai",
            client: client,
            timeouts: configuration.timeouts,
            retry: configuration.retry,
            sleep: sleep,
            logger: logger,
            requestIdHeader: "x-request-id",
            signer: configuration.apiKey.map { HeaderSigner.bearer($0.value) } ?? HeaderSigner(),
            makeBody: { ServerSentEventBody(provider: "openai", decoder: OpenAIStreamDecoder()) },
            mapHTTPError: OpenAIErrors.http
        )
    }

    /// Streams the answer to `request`.
    public func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        transport.answer(Result { () throws(ModelError) in try httpRequest(for: request) })
    }

    /// The HTTP request for `request`, before the key is added.
    func httpRequest(for request: ModelRequest) throws(ModelError) -> StreamingHTTPRequest {
        struct StreamOptions: Encodable { var include_usage = true }
        struct Body: Encodable {
            var model: String
            var messages: [ChatMessageJSON]
            var max_tokens: Int
            var temperature: Double?
            var stream = true
            var stream_options = StreamOptions()
        }
        var messages: [ChatMessageJSON] = []
        if !request.system.isEmpty { messages.append(ChatMessageJSON(role: "system", content: request.system)) }
        messages += request.messages.map(ChatMessageJSON.init)
        let body = Body(model: configuration.model, messages: messages, max_tokens: max(1, request.maxOutputTokens), temperature: request.temperature)
        return try StreamingHTTPRequest.json(body, base: configuration.baseURL, path: "/chat/completions", accept: "text/event-stream", provider: "openai")
    }
}
