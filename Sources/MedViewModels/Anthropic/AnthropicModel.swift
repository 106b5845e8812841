import AsyncHTTPClient
import Foundation
import Logging
import MedViewCore
import MedViewProtocol
import NIOHTTP1

/// Claude through the Anthropic Messages API (`POST {base}/v1/messages`, streamed over SSE).
///
/// Retryable failures before the first delta (429, 529, 5xx, timeouts, connection errors) are
/// retried with ``RetryPolicy``; error mapping is documented on ``AnthropicErrors``. Cancelling
/// the consumer cancels the HTTP request.
public struct AnthropicModel: ChatModel {
    /// Where and how to call the API.
    public struct Configuration: Sendable {
        /// The model id, for example `claude-3-5-haiku-latest`.
        public var model: String
        public var apiKey: APIKey
        /// The API's base URL without `/v1` (`https://api.anthropic.com`); tests point it at a stand-in.
        public var baseURL: String
        /// The `anthropic-version` header.
        public var apiVersion: String
        public var timeouts: ModelTimeouts
        public var retry: RetryPolicy

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

    public let configuration: Configuration
    public let descriptor: ModelDescriptor
    private let transport: StreamingHTTPTransport
    private let sleep: RetryingModelStream.Sleeper

    /// - Parameters:
    ///   - sleep: waits between retries; tests pass a no-op.
    public init(
        configuration: Configuration,
        client: HTTPClient = .shared,
        logger: Logger = Logger(label: "medview.model.anthropic"),
        sleep: @escaping RetryingModelStream.Sleeper = { try await Task.sleep(for: $0) }
    ) {
        self.configuration = configuration
        self.descriptor = ModelDescriptor(provider: "anthropic", id: configuration.model, demo: false)
        self.sleep = sleep
        self.transport = StreamingHTTPTransport(
            provider: "anthropic",
            client: client,
            timeouts: configuration.timeouts,
            logger: logger,
            requestIdHeader: "request-id",
            mapHTTPError: AnthropicErrors.http
        )
    }

    public func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        transport.answer(Result { () throws(ModelError) in try httpRequest(for: request) }, policy: configuration.retry, sleep: sleep) { AnthropicStreamDecoder() }
    }

    /// The HTTP request for `request` (exposed to tests).
    func httpRequest(for request: ModelRequest) throws(ModelError) -> StreamingHTTPRequest {
        struct Message: Encodable {
            var role: String
            var content: String
        }
        struct Body: Encodable {
            var model: String
            var system: String?
            var messages: [Message]
            var max_tokens: Int
            var temperature: Double?
            var stream = true
        }
        let body = Body(
            model: configuration.model,
            system: request.system.isEmpty ? nil : request.system,
            messages: request.messages.map { Message(role: $0.role == .assistant ? "assistant" : "user", content: $0.text) },
            max_tokens: max(1, request.maxOutputTokens),
            temperature: request.temperature
        )
        let bytes: [UInt8]
        do {
            bytes = Array(try JSONEncoder().encode(body))
        } catch {
            throw ModelError(kind: .invalidRequest, retryable: false, detail: "anthropic: the request could not be encoded")
        }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "accept", value: "text/event-stream")
        headers.add(name: "x-api-key", value: configuration.apiKey.value)
        headers.add(name: "anthropic-version", value: configuration.apiVersion)
        var base = configuration.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        return StreamingHTTPRequest(url: base + "/v1/messages", headers: headers, body: bytes)
    }
}
