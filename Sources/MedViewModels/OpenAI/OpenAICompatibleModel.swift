import AsyncHTTPClient
import Foundation
import Logging
import MedViewCore
import MedViewProtocol
import NIOHTTP1

/// A model behind an OpenAI-compatible Chat Completions API (`POST {baseURL}/chat/completions`,
/// streamed over SSE): OpenAI itself, or a local Ollama, vLLM or llama.cpp server.
///
/// The system prompt goes first as a `system` message. Retryable failures before the first delta
/// are retried with ``RetryPolicy``; error mapping is documented on ``OpenAIErrors``. Cancelling
/// the consumer cancels the HTTP request.
public struct OpenAICompatibleModel: ChatModel {
    /// Where and how to call the server.
    public struct Configuration: Sendable {
        /// The API base including its version path, for example `http://127.0.0.1:8080/v1`.
        public var baseURL: String
        /// The model name the server knows.
        public var model: String
        /// Sent as `Authorization: Bearer …` when present; local servers usually need none.
        public var apiKey: APIKey?
        public var timeouts: ModelTimeouts
        public var retry: RetryPolicy

        public init(baseURL: String, model: String, apiKey: APIKey? = nil, timeouts: ModelTimeouts = .init(), retry: RetryPolicy = .init()) {
            self.baseURL = baseURL
            self.model = model
            self.apiKey = apiKey
            self.timeouts = timeouts
            self.retry = retry
        }
    }

    public let configuration: Configuration
    public let descriptor: ModelDescriptor
    private let transport: StreamingHTTPTransport
    private let sleep: RetryingModelStream.Sleeper

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
        self.sleep = sleep
        self.transport = StreamingHTTPTransport(
            provider: "openai",
            client: client,
            timeouts: configuration.timeouts,
            logger: logger,
            requestIdHeader: "x-request-id",
            mapHTTPError: OpenAIErrors.http
        )
    }

    public func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        transport.answer(Result { () throws(ModelError) in try httpRequest(for: request) }, policy: configuration.retry, sleep: sleep) { OpenAIStreamDecoder() }
    }

    /// The HTTP request for `request` (exposed to tests).
    func httpRequest(for request: ModelRequest) throws(ModelError) -> StreamingHTTPRequest {
        struct Message: Encodable {
            var role: String
            var content: String
        }
        struct StreamOptions: Encodable { var include_usage = true }
        struct Body: Encodable {
            var model: String
            var messages: [Message]
            var max_tokens: Int
            var temperature: Double?
            var stream = true
            var stream_options = StreamOptions()
        }
        var messages: [Message] = []
        if !request.system.isEmpty { messages.append(Message(role: "system", content: request.system)) }
        messages += request.messages.map { Message(role: $0.role == .assistant ? "assistant" : "user", content: $0.text) }
        let body = Body(model: configuration.model, messages: messages, max_tokens: max(1, request.maxOutputTokens), temperature: request.temperature)
        let bytes: [UInt8]
        do {
            bytes = Array(try JSONEncoder().encode(body))
        } catch {
            throw ModelError(kind: .invalidRequest, retryable: false, detail: "openai: the request could not be encoded")
        }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "accept", value: "text/event-stream")
        if let key = configuration.apiKey { headers.add(name: "authorization", value: "Bearer \(key.value)") }
        var base = configuration.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        return StreamingHTTPRequest(url: base + "/chat/completions", headers: headers, body: bytes)
    }
}
