import Foundation
import MedViewAWS
import MedViewCore
import MedViewProtocol

/// Turns the event-stream messages of ConverseStream or InvokeModelWithResponseStream into
/// ``ModelEvent``s.
///
/// ConverseStream: `contentBlockDelta` text → `.delta`, `messageStop` → `.stop`, `metadata` →
/// `.usage`; `messageStart`, `contentBlockStart` and `contentBlockStop` carry nothing the port
/// needs. InvokeModelWithResponseStream: each `chunk` holds base64 `bytes` of one Anthropic
/// stream event: `content_block_delta` `text_delta` → `.delta`, `message_start` and
/// `message_delta` usage → `.usage`, `message_delta` `stop_reason` → `.stop`.
/// `:message-type` `exception` (and `error`) messages become ``ModelError``s via ``BedrockErrors``.
public struct BedrockStreamMapper: Sendable, EventStreamMessageMapper {
    /// Which operation's events are mapped.
    public let api: BedrockConfiguration.API
    /// Whether a stop reason was seen (a stream that ends without one was cut short).
    public private(set) var stopped = false
    private var inputTokens = 0
    private let decoder = JSONDecoder()

    /// A mapper for the events of `api`.
    public init(api: BedrockConfiguration.API) {
        self.api = api
    }

    /// Maps one message, calling `emit` for each event it yields.
    public mutating func map(_ message: EventStreamMessage, emit: (ModelEvent) -> Void) throws(ModelError) {
        switch message.string(":message-type") {
        case "event": break
        case "exception":
            throw BedrockErrors.error(code: message.string(":exception-type"), status: nil, inStream: true)
        case "error":
            throw BedrockErrors.error(code: message.string(":error-code"), status: nil, inStream: true)
        default:
            throw ModelError(kind: .failed, retryable: false, detail: "bedrock stream: unexpected message type")
        }
        guard let type = message.string(":event-type") else { return }
        switch api {
        case .converse: try mapConverse(type, message.payload, emit: emit)
        case .invoke: try mapInvoke(type, message.payload, emit: emit)
        }
    }

    // MARK: ConverseStream

    private struct ContentBlockDelta: Decodable {
        struct Delta: Decodable { var text: String? }
        var delta: Delta?
    }
    private struct MessageStop: Decodable { var stopReason: String? }
    private struct Metadata: Decodable {
        struct TokenUsage: Decodable { var inputTokens: Int?; var outputTokens: Int? }
        var usage: TokenUsage?
    }

    private mutating func mapConverse(_ type: String, _ payload: [UInt8], emit: (ModelEvent) -> Void) throws(ModelError) {
        switch type {
        case "contentBlockDelta":
            let text: String?
            if let fields = DeltaJSONScanner.scan(payload, top: [], nestedKey: "delta", nestedFields: ["text"]) {
                text = fields.nested["text"]
            } else {
                text = try decode(ContentBlockDelta.self, payload, type).delta?.text
            }
            if let text, !text.isEmpty { emit(.delta(text)) }
        case "messageStop":
            stopped = true
            emit(.stop(Self.stopReason(try decode(MessageStop.self, payload, type).stopReason)))
        case "metadata":
            if let usage = try decode(Metadata.self, payload, type).usage {
                emit(.usage(Usage(inputTokens: usage.inputTokens ?? 0, outputTokens: usage.outputTokens ?? 0)))
            }
        default: break // messageStart, contentBlockStart, contentBlockStop, and events added later
        }
    }

    // MARK: InvokeModelWithResponseStream (Anthropic)

    private struct Chunk: Decodable { var bytes: String }
    private struct AnthropicEvent: Decodable {
        struct Delta: Decodable { var type: String?; var text: String?; var stop_reason: String? }
        struct TokenUsage: Decodable { var input_tokens: Int?; var output_tokens: Int? }
        struct Message: Decodable { var usage: TokenUsage? }
        struct ErrorBody: Decodable { var type: String? }
        var type: String
        var delta: Delta?
        var usage: TokenUsage?
        var message: Message?
        var error: ErrorBody?
    }

    private mutating func mapInvoke(_ type: String, _ payload: [UInt8], emit: (ModelEvent) -> Void) throws(ModelError) {
        guard type == "chunk" else { return }
        let encoded: String
        if let fast = DeltaJSONScanner.scan(payload, top: ["bytes"], nestedKey: "", nestedFields: [])?.top["bytes"] {
            encoded = fast
        } else {
            encoded = try decode(Chunk.self, payload, type).bytes
        }
        guard let data = Data(base64Encoded: encoded) else {
            throw ModelError(kind: .failed, retryable: false, detail: "bedrock stream: chunk bytes are not base64")
        }
        let bytes = Array(data)
        // Fast path for the per-delta event; everything else goes through the decoder.
        if let delta = DeltaJSONScanner.anthropicContentDelta(bytes) {
            if case .text(let text) = delta { emit(.delta(text)) }
            return
        }
        let event = try decode(AnthropicEvent.self, bytes, "chunk")
        switch event.type {
        case "message_start":
            inputTokens = event.message?.usage?.input_tokens ?? 0
            if let usage = event.message?.usage {
                emit(.usage(Usage(inputTokens: inputTokens, outputTokens: usage.output_tokens ?? 0)))
            }
        case "content_block_delta":
            if event.delta?.type == "text_delta", let text = event.delta?.text, !text.isEmpty { emit(.delta(text)) }
        case "message_delta":
            if let output = event.usage?.output_tokens {
                emit(.usage(Usage(inputTokens: event.usage?.input_tokens ?? inputTokens, outputTokens: output)))
            }
            if let reason = event.delta?.stop_reason {
                stopped = true
                emit(.stop(Self.stopReason(reason)))
            }
        case "message_stop":
            if !stopped {
                stopped = true
                emit(.stop(.endTurn))
            }
        case "error":
            let code = event.error?.type ?? "error"
            let retryable = code == "overloaded_error" || code == "api_error" || code == "rate_limit_error"
            throw ModelError(kind: code == "rate_limit_error" ? .throttled : (retryable ? .unavailable : .failed), retryable: retryable, detail: "bedrock stream anthropic \(code)")
        default: break // ping, content_block_start, content_block_stop
        }
    }

    // MARK: Shared

    private func decode<T: Decodable>(_ type: T.Type, _ payload: [UInt8], _ event: String) throws(ModelError) -> T {
        do {
            return try decoder.decode(type, from: Data(payload))
        } catch {
            throw ModelError(kind: .failed, retryable: false, detail: "bedrock stream: malformed \(event) payload")
        }
    }

    static func stopReason(_ raw: String?) -> ModelStopReason {
        switch raw {
        case "max_tokens": .maxTokens
        case "stop_sequence": .stopSequence
        case "guardrail_intervened", "content_filtered", "refusal": .contentFiltered
        default: .endTurn
        }
    }
}
