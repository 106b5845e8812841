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
    /// The HTTP client its calls go through (`lean` or `asynchttpclient`), for logs and tests.
    public var httpClientName: String { transport.client.name }
    /// The same calls, unstreamed (``reply(_:)``).
    private let replies: StreamingHTTPTransport<WholeReplyBody<OpenAIReplyDecoder>>

    /// A model calling the server through `client`.
    /// - Parameters:
    ///   - sleep: waits between retries; tests pass a no-op.
    public init(
        configuration: Configuration,
        client: ModelHTTP = .models,
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
        self.replies = transport.reading { WholeReplyBody(provider: "openai", decoder: OpenAIReplyDecoder()) }
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

    /// The whole reply to a short request, unstreamed (`"stream": false`), retried as a stream is.
    public func reply(_ request: ModelRequest) async throws -> String {
        try await replies.text(Result { () throws(ModelError) in try httpRequest(for: request, streaming: false) })
    }

    /// The HTTP request for `request`, before the key is added.
    ///
    /// The body is written directly (``JSONBodyWriter``), not with `JSONEncoder`: it is built on
    /// every call, on the way to the model's first delta (twice per message with the model triage),
    /// and holds the system prompt and the conversation's recent turns.
    func httpRequest(for request: ModelRequest, streaming: Bool = true) throws(ModelError) -> StreamingHTTPRequest {
        var capacity = 160 + configuration.model.utf8.count + request.system.utf8.count
        for message in request.messages { capacity += 32 + message.text.utf8.count }
        var body = JSONBodyWriter(capacity: capacity + capacity / 16)
        body.raw(#"{"model":"#)
        body.string(configuration.model)
        body.raw(#","messages":["#)
        var first = true
        func message(role: StaticString, content: String) {
            if !first { body.raw(",") }
            first = false
            body.raw(#"{"role":""#)
            body.raw(role)
            body.raw(#"","content":"#)
            body.string(content)
            body.raw("}")
        }
        if !request.system.isEmpty { message(role: "system", content: request.system) }
        for turn in request.messages {
            message(role: turn.role == .assistant ? "assistant" : "user", content: turn.text)
        }
        body.raw(#"],"max_tokens":"#)
        body.number(max(1, request.maxOutputTokens))
        if let temperature = request.temperature {
            body.raw(#","temperature":"#)
            guard body.number(temperature) else {
                throw ModelError(kind: .invalidRequest, retryable: false, detail: "openai: the request could not be encoded")
            }
        }
        guard streaming else {
            body.raw(#","stream":false}"#)
            return StreamingHTTPRequest.json(bytes: body.bytes, base: configuration.baseURL, path: "/chat/completions", accept: "application/json")
        }
        body.raw(#","stream":true,"stream_options":{"include_usage":true}}"#)
        return StreamingHTTPRequest.json(bytes: body.bytes, base: configuration.baseURL, path: "/chat/completions", accept: "text/event-stream")
    }
}
