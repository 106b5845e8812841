import Foundation
import MedViewAWS
import MedViewCore
import MedViewProtocol
@testable import MedViewModels
import NIOCore
import Testing

/// The two body decoders of the one HTTP transport: what counts as a stream, and how a body that
/// ends early or breaks is reported.
@Suite struct StreamBodyDecoderTests {
    static func frame(_ type: String, _ json: String) throws -> [UInt8] {
        try EventStreamEncoder().encode(EventStreamMessage(headers: [
            .init(name: ":event-type", value: .string(type)), .init(name: ":message-type", value: .string("event")),
        ], payload: Array(json.utf8)))
    }

    static func feed(_ body: inout some StreamBodyDecoder, _ bytes: [UInt8]) throws(ModelError) -> [ModelEvent] {
        var events: [ModelEvent] = []
        try body.decode(ByteBuffer(bytes: bytes).readableBytesView) { events.append($0) }
        return events
    }

    @Test func anEventStreamIsOnlyA200AndReadsUsageAfterTheStop() throws {
        var body = EventStreamBody(provider: "bedrock", mapper: BedrockStreamMapper(api: .converse))
        #expect(body.carriesStream(status: 200, contentType: "application/vnd.amazon.eventstream"))
        #expect(!body.carriesStream(status: 201, contentType: "application/vnd.amazon.eventstream"))
        let bytes = try Self.frame("contentBlockDelta", #"{"delta":{"text":"hi"}}"#) + Self.frame("messageStop", #"{"stopReason":"end_turn"}"#)
            + Self.frame("metadata", #"{"usage":{"inputTokens":3,"outputTokens":1}}"#)
        var events: [ModelEvent] = []
        for byte in bytes { events += try Self.feed(&body, [byte]) }
        #expect(!body.isComplete)
        try body.finish { events.append($0) }
        #expect(events == [.delta("hi"), .stop(.endTurn), .usage(Usage(inputTokens: 3, outputTokens: 1))])
    }

    @Test func anEventStreamCutMidFrameOrBeforeItsStopIsARetryableFailure() throws {
        let delta = try Self.frame("contentBlockDelta", #"{"delta":{"text":"hi"}}"#)
        var cut = EventStreamBody(provider: "bedrock", mapper: BedrockStreamMapper(api: .converse))
        #expect(try Self.feed(&cut, delta + delta.prefix(10)) == [.delta("hi")])
        #expect(throws: ModelError.self) { try cut.finish { _ in } }
        var unstopped = EventStreamBody(provider: "bedrock", mapper: BedrockStreamMapper(api: .converse))
        _ = try Self.feed(&unstopped, delta)
        do {
            try unstopped.finish { _ in }
            Issue.record("a stream without a stop reason was accepted")
        } catch {
            #expect(error == ModelError(kind: .failed, retryable: true, detail: "bedrock stream ended without a stop reason"))
        }
        var corrupt = EventStreamBody(provider: "bedrock", mapper: BedrockStreamMapper(api: .converse))
        var flipped = delta
        flipped[flipped.count - 1] ^= 0xFF
        do {
            _ = try Self.feed(&corrupt, flipped)
            Issue.record("a frame with a bad checksum was accepted")
        } catch {
            #expect(error.kind == .failed && error.retryable && error.detail.hasPrefix("bedrock event stream:"))
        }
    }

    @Test func anSSEBodyIsA2xxThatIsNotJSONAndStopsAtTheEndOfTheAnswer() throws {
        var body = ServerSentEventBody(provider: "openai", decoder: OpenAIStreamDecoder())
        #expect(body.carriesStream(status: 200, contentType: "text/event-stream; charset=utf-8"))
        #expect(!body.carriesStream(status: 200, contentType: "application/json"))
        #expect(!body.carriesStream(status: 429, contentType: "text/event-stream"))
        let text = #"data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}"# + "\n\ndata: [DONE]\n\n"
            + #"data: {"choices":[{"index":0,"delta":{"content":"after the end"}}]}"# + "\n\n"
        let events = try Self.feed(&body, Array(text.utf8))
        #expect(events == [.delta("Hi"), .stop(.endTurn)])
        #expect(body.isComplete)
    }

    @Test func anSSEBodyTheParserRefusesIsANonRetryableFailureNamingTheProvider() {
        var body = ServerSentEventBody(provider: "anthropic", decoder: AnthropicStreamDecoder())
        do {
            _ = try Self.feed(&body, Array(("data: " + String(repeating: "x", count: (1 << 20) + 1)).utf8))
            Issue.record("an oversize line was accepted")
        } catch {
            #expect(error.kind == .failed && !error.retryable && error.detail.hasPrefix("anthropic: invalid event stream"))
        }
    }
}
