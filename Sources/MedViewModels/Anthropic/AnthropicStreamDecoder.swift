import Foundation
import MedViewCore
import MedViewProtocol

/// Decodes the Anthropic Messages API stream (`message_start`, `content_block_delta`,
/// `message_delta`, `message_stop`, `ping`, `error`) into ``ModelEvent``s.
///
/// Text comes from `text_delta` deltas; other content (thinking, tool input) is ignored. Usage is
/// yielded when `message_start` and `message_delta` report it, the stop reason at `message_stop`.
/// Unknown event types are skipped, as the API's versioning policy asks. A body that ends before
/// the stop reason is known is an error (the answer was cut short).
struct AnthropicStreamDecoder: ServerSentEventDecoder {
    private(set) var isComplete = false
    private let json = JSONDecoder()
    private var stopReason: ModelStopReason?
    private var usage = Usage(inputTokens: 0, outputTokens: 0)

    /// Token counts as Anthropic reports them (in a stream and in a whole `message`).
    struct TokenUsage: Decodable {
        var input_tokens: Int?
        var output_tokens: Int?
        var cache_creation_input_tokens: Int?
        var cache_read_input_tokens: Int?

        /// Input tokens with the cache's writes and reads counted in.
        var input: Int? {
            input_tokens.map { $0 + (cache_creation_input_tokens ?? 0) + (cache_read_input_tokens ?? 0) }
        }

        /// The counts, if any was reported.
        var usage: Usage? {
            guard input_tokens != nil || output_tokens != nil else { return nil }
            return Usage(inputTokens: input ?? 0, outputTokens: output_tokens ?? 0)
        }
    }

    /// An `error` object's type.
    struct Failure: Decodable {
        var type: String?
    }

    private struct Event: Decodable {
        struct Message: Decodable { var usage: TokenUsage? }
        struct Delta: Decodable {
            var type: String?
            var text: String?
            var stop_reason: String?
        }
        var type: String?
        var message: Message?
        var delta: Delta?
        var usage: TokenUsage?
        var error: Failure?
    }

    /// Whether the once-per-delta event is read by ``DeltaJSONScanner`` (off only in tests that
    /// check both paths give the same events).
    var fastPath = true

    /// The once-per-delta event is read where the parser holds it (``DeltaJSONScanner``); any
    /// other is copied out and decoded with `JSONDecoder`.
    mutating func decode(_ event: ServerSentEventView, emit: (ModelEvent) -> Void) throws(ModelError) {
        if isComplete { return }
        if fastPath, event.isType("content_block_delta"), let delta = DeltaJSONScanner.anthropicContentDelta(event.bytes) {
            if case .text(let text) = delta { emit(.delta(text)) }
            return
        }
        for modelEvent in try decodeWithJSON(event.event) { emit(modelEvent) }
    }

    /// An event the scanner does not take: every event but the deltas, and anything it does not
    /// fully understand.
    private mutating func decodeWithJSON(_ event: ServerSentEvent) throws(ModelError) -> [ModelEvent] {
        let decoded: Event
        do {
            decoded = try json.decode(Event.self, from: Data(event.data.utf8))
        } catch {
            throw ModelError(kind: .failed, retryable: false, detail: "anthropic: malformed stream event '\(ModelError.sanitizedToken(event.type) ?? "?")' (\(event.bytes.count) bytes)")
        }
        switch decoded.type ?? event.type {
        case "message_start":
            guard let reported = decoded.message?.usage else { return [] }
            apply(reported)
            return [.usage(usage)]
        case "content_block_delta":
            guard decoded.delta?.type == "text_delta", let text = decoded.delta?.text, !text.isEmpty else { return [] }
            return [.delta(text)]
        case "message_delta":
            if let reason = decoded.delta?.stop_reason { stopReason = Self.stopReason(reason) }
            guard let reported = decoded.usage else { return [] }
            apply(reported)
            return [.usage(usage)]
        case "message_stop":
            isComplete = true
            return [.stop(stopReason ?? .endTurn)]
        case "error":
            throw AnthropicErrors.streamError(type: decoded.error?.type)
        default:
            // ping, content_block_start, content_block_stop, and event types added later.
            return []
        }
    }

    mutating func finish() throws(ModelError) -> [ModelEvent] {
        if isComplete { return [] }
        if let stopReason {
            // The stop reason came in message_delta; only the closing message_stop is missing.
            isComplete = true
            return [.stop(stopReason)]
        }
        throw ModelError(kind: .failed, retryable: true, detail: "anthropic: the stream ended before the answer was complete")
    }

    private mutating func apply(_ reported: TokenUsage) {
        if let input = reported.input {
            usage.inputTokens = input
        }
        if let output = reported.output_tokens { usage.outputTokens = output }
    }

    /// The model's stop reason in our terms; `refusal` means the model declined for safety.
    static func stopReason(_ raw: String) -> ModelStopReason {
        switch raw {
        case "max_tokens", "model_context_window_exceeded": .maxTokens
        case "stop_sequence": .stopSequence
        case "refusal": .contentFiltered
        default: .endTurn // end_turn, and tool_use / pause_turn, which this service never asks for
        }
    }
}
