import Foundation
import MedViewCore
import MedViewProtocol

/// Decodes an OpenAI-compatible Chat Completions stream (`data: {chunk}` … `data: [DONE]`) into
/// ``ModelEvent``s, as OpenAI, vLLM, Ollama and llama.cpp servers send it.
///
/// Text comes from `choices[0].delta.content`; role-only, empty and `null` deltas are skipped. The
/// finish reason may come in any chunk; usage comes in its own chunk (`stream_options.include_usage`)
/// or with the last choice, or not at all. `[DONE]` ends the answer; a body that ends after a finish
/// reason but without `[DONE]` is accepted, one that ends before is an error. An `{"error": …}`
/// object inside the stream (nested, or vLLM's top-level `"object": "error"`) is a typed error.
struct OpenAIStreamDecoder: ServerSentEventDecoder {
    private(set) var isComplete = false
    private let json = JSONDecoder()
    private var finishReason: ModelStopReason?
    /// Whether ordinary chunks are read by ``DeltaJSONScanner`` (off only in tests that check both
    /// paths give the same events).
    var fastPath = true

    struct Failure: Decodable {
        var type: String?
        var code: LooseString?
    }

    /// Token counts as OpenAI-compatible servers report them.
    struct TokenUsage: Decodable {
        var prompt_tokens: Int?
        var completion_tokens: Int?

        /// The counts, if any was reported.
        var usage: Usage? {
            guard prompt_tokens != nil || completion_tokens != nil else { return nil }
            return Usage(inputTokens: prompt_tokens ?? 0, outputTokens: completion_tokens ?? 0)
        }
    }

    private struct Chunk: Decodable {
        struct Choice: Decodable {
            struct Delta: Decodable { var content: String? }
            var index: Int?
            var delta: Delta?
            var finish_reason: String?
        }
        var object: String?
        var choices: [Choice]?
        var usage: TokenUsage?
        var error: Failure?
        // vLLM's top-level error object.
        var type: String?
        var code: LooseString?
    }

    /// `[DONE]` and ordinary chunks are read where the parser holds them (``DeltaJSONScanner``);
    /// anything else is copied out and decoded with `JSONDecoder`.
    mutating func decode(_ event: ServerSentEventView, emit: (ModelEvent) -> Void) throws(ModelError) {
        if isComplete { return }
        if Self.isDone(event.bytes) {
            isComplete = true
            return emit(.stop(finishReason ?? .endTurn))
        }
        if fastPath, !event.isType("error"), let chunk = DeltaJSONScanner.openAIChunk(event.bytes) {
            if let reason = chunk.finishReason { finishReason = Self.stopReason(reason) }
            if let text = chunk.text, !text.isEmpty { emit(.delta(text)) }
            if let usage = chunk.usage { emit(.usage(usage)) }
            return
        }
        for modelEvent in try decodeWithJSON(event.event) { emit(modelEvent) }
    }

    /// A chunk the scanner does not take: an error, or anything it does not fully understand.
    private mutating func decodeWithJSON(_ event: ServerSentEvent) throws(ModelError) -> [ModelEvent] {
        let data = event.data
        let chunk: Chunk
        do {
            chunk = try json.decode(Chunk.self, from: Data(data.utf8))
        } catch {
            throw ModelError(kind: .failed, retryable: false, detail: "openai: malformed stream chunk (\(data.utf8.count) bytes)")
        }
        if let failure = chunk.error {
            throw OpenAIErrors.streamError(type: failure.type, code: failure.code?.value)
        }
        if chunk.object == "error" || event.type == "error" {
            throw OpenAIErrors.streamError(type: chunk.type, code: chunk.code?.value)
        }
        var events: [ModelEvent] = []
        if let choice = chunk.choices?.first(where: { ($0.index ?? 0) == 0 }) {
            if let text = choice.delta?.content, !text.isEmpty { events.append(.delta(text)) }
            if let reason = choice.finish_reason { finishReason = Self.stopReason(reason) }
        }
        if let usage = chunk.usage?.usage { events.append(.usage(usage)) }
        return events
    }

    /// Whether the data is `[DONE]`, with spaces (any Unicode space separator) or tabs around it.
    private static func isDone(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        bytes.count <= 16 && String(decoding: bytes, as: UTF8.self).trimmingScalars(where: \.isSpaceOrTab) == "[DONE]"
    }

    mutating func finish() throws(ModelError) -> [ModelEvent] {
        if isComplete { return [] }
        if let finishReason {
            isComplete = true
            return [.stop(finishReason)]
        }
        throw ModelError(kind: .failed, retryable: true, detail: "openai: the stream ended before the answer was complete")
    }

    /// The finish reason in our terms.
    static func stopReason(_ raw: String) -> ModelStopReason {
        switch raw {
        case "length": .maxTokens
        case "content_filter": .contentFiltered
        default: .endTurn // stop, eos, tool_calls, function_call
        }
    }
}
