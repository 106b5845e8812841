import Foundation
import MedViewCore
import MedViewProtocol
import NIOCore

/// Turns a provider's whole (unstreamed) JSON answer into ``ModelEvent``s: its text as one delta,
/// then usage and the stop reason.
protocol WholeReplyDecoder: Sendable {
    /// The events of the answer in `json`, or a typed error for an error object or bytes that are
    /// no answer.
    func decode(_ json: [UInt8]) throws(ModelError) -> [ModelEvent]
}

/// The body of an unstreamed model response (``ChatModel/reply(_:)``): collected as it arrives,
/// up to ``limit`` bytes, and decoded once it has ended.
///
/// A 2xx response with a JSON content type carries the answer; any other is an error the
/// provider's mapping reads, as for a stream.
struct WholeReplyBody<Decoder: WholeReplyDecoder>: StreamBodyDecoder {
    /// The largest answer read (a reply here is a few tokens; a megabyte is no reply).
    static var limit: Int { 1 << 20 }

    /// Who answers (`anthropic`, `bedrock`, `openai`), for error details.
    let provider: String
    private let decoder: Decoder
    private var bytes: [UInt8] = []

    init(provider: String, decoder: Decoder) {
        self.provider = provider
        self.decoder = decoder
    }

    /// Never before the body ended: the answer is decoded whole.
    var isComplete: Bool { false }

    func carriesStream(status: Int, contentType: String) -> Bool {
        (200..<300).contains(status) && contentType.contains("json")
    }

    mutating func decode(_ piece: ByteBufferView, emit: (ModelEvent) -> Void) throws(ModelError) {
        guard bytes.count + piece.count <= Self.limit else {
            throw ModelError(kind: .failed, retryable: false, detail: "\(provider): the reply is longer than \(Self.limit) bytes")
        }
        bytes.append(contentsOf: piece)
    }

    mutating func finish(emit: (ModelEvent) -> Void) throws(ModelError) {
        for event in try decoder.decode(bytes) { emit(event) }
    }
}

/// A whole answer's events: its text (if any) as one delta, its usage (if reported), its stop.
func replyEvents(text: String, usage: Usage?, stop: ModelStopReason) -> [ModelEvent] {
    var events: [ModelEvent] = []
    if !text.isEmpty { events.append(.delta(text)) }
    if let usage { events.append(.usage(usage)) }
    events.append(.stop(stop))
    return events
}

/// Decodes `json` as `T`, or throws a non-retryable `failed` error naming only the provider and
/// the size.
func decodeReply<T: Decodable>(_ type: T.Type, from json: [UInt8], provider: String) throws(ModelError) -> T {
    do {
        return try JSONDecoder().decode(T.self, from: Data(json))
    } catch {
        throw ModelError(kind: .failed, retryable: false, detail: "\(provider): malformed reply (\(json.count) bytes)")
    }
}

/// An OpenAI-compatible `chat.completion` object: `choices[0].message.content`, `finish_reason`,
/// `usage`; an `{"error": …}` object (or vLLM's top-level `"object": "error"`) is a typed error.
struct OpenAIReplyDecoder: WholeReplyDecoder {
    private struct Completion: Decodable {
        struct Choice: Decodable {
            struct Message: Decodable { var content: String? }
            var index: Int?
            var message: Message?
            var finish_reason: String?
        }
        var object: String?
        var choices: [Choice]?
        var usage: OpenAIStreamDecoder.TokenUsage?
        var error: OpenAIStreamDecoder.Failure?
        var type: String?
        var code: LooseString?
    }

    /// Whether an ordinary reply is read by ``DeltaJSONScanner`` (off only in tests that check
    /// both paths give the same events).
    var fastPath = true

    func decode(_ json: [UInt8]) throws(ModelError) -> [ModelEvent] {
        if fastPath, let reply = DeltaJSONScanner.openAIChunk(json, choiceKey: "message"), reply.hasChoice {
            return replyEvents(text: reply.text ?? "", usage: reply.usage, stop: OpenAIStreamDecoder.stopReason(reply.finishReason ?? "stop"))
        }
        let completion = try decodeReply(Completion.self, from: json, provider: "openai")
        if let failure = completion.error { throw OpenAIErrors.streamError(type: failure.type, code: failure.code?.value) }
        if completion.object == "error" { throw OpenAIErrors.streamError(type: completion.type, code: completion.code?.value) }
        guard let choice = completion.choices?.first(where: { ($0.index ?? 0) == 0 }) else {
            throw ModelError(kind: .failed, retryable: false, detail: "openai: the reply has no choice")
        }
        return replyEvents(text: choice.message?.content ?? "", usage: completion.usage?.usage, stop: OpenAIStreamDecoder.stopReason(choice.finish_reason ?? "stop"))
    }
}

/// An Anthropic Messages `message` object (the Anthropic API, and Bedrock's `invoke` of Claude):
/// the text of its `text` blocks, `stop_reason`, `usage`; `{"type": "error", …}` is a typed error.
struct AnthropicReplyDecoder: WholeReplyDecoder {
    /// `anthropic` or `bedrock`, for error details and the stop reasons each knows.
    var provider: String

    private struct Message: Decodable {
        struct Block: Decodable {
            var type: String?
            var text: String?
        }
        var type: String?
        var content: [Block]?
        var stop_reason: String?
        var usage: AnthropicStreamDecoder.TokenUsage?
        var error: AnthropicStreamDecoder.Failure?
    }

    func decode(_ json: [UInt8]) throws(ModelError) -> [ModelEvent] {
        let message = try decodeReply(Message.self, from: json, provider: provider)
        if message.type == "error" || message.error != nil {
            if provider == "anthropic" { throw AnthropicErrors.streamError(type: message.error?.type) }
            throw BedrockErrors.error(code: message.error?.type, status: 200, inStream: true)
        }
        guard let blocks = message.content else {
            throw ModelError(kind: .failed, retryable: false, detail: "\(provider): the reply has no content")
        }
        let text = blocks.filter { $0.type == nil || $0.type == "text" }.compactMap(\.text).joined()
        let stop = provider == "anthropic"
            ? AnthropicStreamDecoder.stopReason(message.stop_reason ?? "end_turn")
            : BedrockStreamMapper.stopReason(message.stop_reason)
        return replyEvents(text: text, usage: message.usage?.usage, stop: stop)
    }
}

/// A Bedrock `Converse` response: the text blocks of `output.message.content`, `stopReason`,
/// `usage`.
struct BedrockConverseReplyDecoder: WholeReplyDecoder {
    private struct Response: Decodable {
        struct Output: Decodable {
            struct Message: Decodable {
                struct Block: Decodable { var text: String? }
                var content: [Block]?
            }
            var message: Message?
        }
        struct TokenUsage: Decodable {
            var inputTokens: Int?
            var outputTokens: Int?

            var usage: Usage? {
                guard inputTokens != nil || outputTokens != nil else { return nil }
                return Usage(inputTokens: inputTokens ?? 0, outputTokens: outputTokens ?? 0)
            }
        }
        var output: Output?
        var stopReason: String?
        var usage: TokenUsage?
    }

    func decode(_ json: [UInt8]) throws(ModelError) -> [ModelEvent] {
        let response = try decodeReply(Response.self, from: json, provider: "bedrock")
        guard let blocks = response.output?.message?.content else {
            throw ModelError(kind: .failed, retryable: false, detail: "bedrock: the reply has no content")
        }
        return replyEvents(text: blocks.compactMap(\.text).joined(), usage: response.usage?.usage, stop: BedrockStreamMapper.stopReason(response.stopReason))
    }
}

/// One of the decoders above, chosen at run time (Bedrock's by its API).
struct AnyWholeReplyDecoder: WholeReplyDecoder {
    private let decodeJSON: @Sendable ([UInt8]) throws(ModelError) -> [ModelEvent]

    init(_ decoder: some WholeReplyDecoder) {
        decodeJSON = { json throws(ModelError) in try decoder.decode(json) }
    }

    func decode(_ json: [UInt8]) throws(ModelError) -> [ModelEvent] {
        try decodeJSON(json)
    }
}
