import Foundation
import MedViewCore
import MedViewProtocol
@testable import MedViewModels
import Testing

/// The delta fast path must read exactly what `JSONSerialization` reads, and give up (so the
/// mapper falls back to `JSONDecoder`) on anything that is not valid JSON.
@Suite struct DeltaJSONScannerTests {
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let pieces: [String] = ["a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\u{01}", "\u{1F}", "é", "€", "😀", "👩🏽‍⚕️", "e\u{301}", "\u{7F}", "mg/dL", "{", "}", "[", "]", ",", ":"]

    func randomText(_ rng: inout SeededGenerator) -> String {
        (0..<Int.random(in: 0...12, using: &rng)).map { _ in Self.pieces.randomElement(using: &rng)! }.joined()
    }

    /// A JSON text for `text`, with a random choice of escapes the encoder would not use (`\u00e9`, `\/`, surrogate pairs).
    func jsonString(_ text: String, _ rng: inout SeededGenerator) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            let style = Int.random(in: 0..<3, using: &rng)
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += style == 0 ? "\\u000a" : "\\n"
            case "\t": out += "\\t"
            case "/": out += style == 0 ? "\\/" : "/"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04X", scalar.value)
                } else if style == 0 && scalar.value > 0x7F {
                    for unit in String(scalar).utf16 { out += String(format: "\\u%04x", unit) }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    func randomValue(_ rng: inout SeededGenerator, depth: Int = 0) -> String {
        switch Int.random(in: 0..<(depth > 2 ? 4 : 6), using: &rng) {
        case 0: return ["0", "-1", "3.25", "1e5", "-0.5E-3", "12345678901234"].randomElement(using: &rng)!
        case 1: return ["true", "false", "null"].randomElement(using: &rng)!
        case 2, 3: return jsonString(randomText(&rng), &rng)
        case 4: return "[" + (0..<Int.random(in: 0...3, using: &rng)).map { _ in randomValue(&rng, depth: depth + 1) }.joined(separator: " , ") + "]"
        default: return "{" + (0..<Int.random(in: 0...3, using: &rng)).map { i in "\"k\(i)\":" + randomValue(&rng, depth: depth + 1) }.joined(separator: ",") + "}"
        }
    }

    func payload(_ rng: inout SeededGenerator) -> String {
        var members = ["\"contentBlockIndex\":\(Int.random(in: 0...3, using: &rng))", "\"p\":" + randomValue(&rng)]
        var delta = ["\"other\":" + randomValue(&rng)]
        if Int.random(in: 0..<8, using: &rng) > 0 { delta.append("\"text\" : " + jsonString(randomText(&rng), &rng)) }
        delta.shuffle(using: &rng)
        if Int.random(in: 0..<10, using: &rng) > 0 { members.append("\"delta\":{" + delta.joined(separator: ",") + "}") }
        members.shuffle(using: &rng)
        let spacing = [" ", "", "\n", "\t "].randomElement(using: &rng)!
        return spacing + "{" + members.joined(separator: "," + spacing) + "}" + spacing
    }

    @Test func readsTheSameTextAsJSONSerializationOn5000Payloads() throws {
        var rng = SeededGenerator(state: 42)
        for _ in 0..<5000 {
            let text = payload(&rng)
            let bytes = Array(text.utf8)
            let reference = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any], "\(text)")
            let fields = try #require(DeltaJSONScanner.scan(bytes, top: [], nestedKey: "delta", nestedFields: ["text"]), "\(text)")
            let delta = reference["delta"] as? [String: Any]
            #expect(fields.hasNested == (delta != nil), "\(text)")
            #expect(fields.nested["text"] == delta?["text"] as? String, "\(text)")
        }
    }

    @Test func givesUpOnEveryTruncationAndOnInvalidJSON() {
        var rng = SeededGenerator(state: 7)
        for _ in 0..<300 {
            let bytes = Array(payload(&rng).utf8)
            let trimmedEnd = bytes.lastIndex(of: UInt8(ascii: "}"))!
            for cut in 0..<trimmedEnd {
                #expect(DeltaJSONScanner.scan(Array(bytes[..<cut]), top: [], nestedKey: "delta", nestedFields: ["text"]) == nil)
            }
        }
        let invalid = [
            #"{"delta":{"text":"a\qb"}}"#, #"{"delta":{"text":"\ud83d"}}"#, #"{"delta":{"text":"\udc00x"}}"#,
            "{\"delta\":{\"text\":\"tab\tinside\"}}", #"{"p":nan,"delta":{"text":"a"}}"#,
            #"{"p":+1,"delta":{"text":"a"}}"#, #"{"delta":{"text":"a"}} x"#, #"{"delta" {"text":"a"}}"#,
        ]
        for text in invalid {
            #expect(DeltaJSONScanner.scan(Array(text.utf8), top: [], nestedKey: "delta", nestedFields: ["text"]) == nil, "\(text)")
            #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8))) == nil, "the reference accepts \(text)")
        }
        // Skipped numbers are held to JSON's grammar: anything else goes to the decoder.
        for number in ["0", "-0", "12", "-0.5", "1e5", "1E+5", "2.5e-3"] {
            #expect(DeltaJSONScanner.openAIChunk(Array(#"{"created":\#(number),"choices":[]}"#.utf8)) != nil, "\(number)")
        }
        for number in ["-.5", "01", "1.", "1e", ".5", "+1", "1e+", "--1", "0x10", "1.5.2"] {
            #expect(DeltaJSONScanner.openAIChunk(Array(#"{"created":\#(number),"choices":[]}"#.utf8)) == nil, "\(number)")
        }
        // A key written with an escape or in non-ASCII is not compared as bytes: the decoder reads it.
        #expect(DeltaJSONScanner.openAIChunk(Array(#"{"\u0065rror":{"type":"x"},"choices":[]}"#.utf8)) == nil)
        #expect(DeltaJSONScanner.openAIChunk(Array(#"{"ünknown":1,"choices":[]}"#.utf8)) == nil)
        // In an object that is only passed over, any string is a name.
        #expect(DeltaJSONScanner.openAIChunk(Array(#"{"x":{"\u00fc":1,"ü":[{"a\"b":null}]},"choices":[]}"#.utf8)) != nil)
        // Foundation's parser accepts a trailing comma; the scanner does not, so the decoder decides.
        #expect(DeltaJSONScanner.scan(Array(#"{"delta":{"text":"a"},}"#.utf8), top: [], nestedKey: "delta", nestedFields: ["text"]) == nil)
        #expect(DeltaJSONScanner.scan([0x7B, 0x22, 0x64, 0xFF, 0x22, 0x3A, 0x31, 0x7D], top: [], nestedKey: "delta", nestedFields: []) == nil)
    }
}

/// The OpenAI and Anthropic decoders read ordinary delta events with the scanner; on every
/// variant — including odd types, errors, usage and truncations — they must give exactly what the
/// full `JSONDecoder` path gives (events, thrown error, and the finish reason remembered).
@Suite struct StreamDecoderFastPathTests {
    typealias Rng = DeltaJSONScannerTests.SeededGenerator

    /// What `decode` gives (its events, or its error), then what the decoder's `finish` gives.
    func outcome<D: ServerSentEventDecoder>(_ decoder: D, decode: (inout D) throws -> [ModelEvent]) -> String {
        var decoder = decoder
        var out: String
        do {
            out = "events \(try decode(&decoder))"
        } catch {
            out = "error \(error)"
        }
        do {
            out += " / finish \(try decoder.finish())"
        } catch {
            out += " / finish error \(error)"
        }
        return out
    }

    func outcome<D: ServerSentEventDecoder>(_ decoder: D, _ event: ServerSentEvent) -> String {
        outcome(decoder) { (decoder: inout D) throws in try decoder.decode(event) }
    }

    /// ``outcome(_:_:)`` with the event decoded as the parser hands it over (borrowed, in place).
    func viewOutcome<D: ServerSentEventDecoder>(_ decoder: D, _ event: ServerSentEvent) -> String {
        outcome(decoder) { (decoder: inout D) throws in
            var events: [ModelEvent] = []
            try event.type.utf8.withContiguousStorageIfAvailable { type in
                try event.bytes.withUnsafeBufferPointer { bytes throws(ModelError) in
                    let typeBytes = event.type == "message" ? UnsafeBufferPointer(start: nil, count: 0) : type
                    try decoder.decode(ServerSentEventView(typeBytes: typeBytes, bytes: bytes, lastEventId: event.lastEventId)) { events.append($0) }
                }
            }
            return events
        }
    }

    func pick(_ options: [String], _ rng: inout Rng) -> String { options.randomElement(using: &rng)! }

    func openAIChunk(_ rng: inout Rng) -> String {
        let scanner = DeltaJSONScannerTests()
        var choices: [String] = []
        for _ in 0..<pick(["0", "1", "1", "1", "2", "3"], &rng).count {
            var members: [String] = []
            if Int.random(in: 0..<6, using: &rng) > 0 { members.append("\"index\":" + pick(["0", "0", "0", "1", "2", "0.0", "-1", "\"0\"", "null", "007"], &rng)) }
            var delta: [String] = []
            if Int.random(in: 0..<4, using: &rng) > 0 {
                delta.append("\"content\":" + pick(["TEXT", "TEXT", "TEXT", "null", "\"\"", "5", "[]"], &rng).replacingOccurrences(of: "TEXT", with: scanner.jsonString(scanner.randomText(&rng), &rng)))
            }
            if Int.random(in: 0..<3, using: &rng) == 0 { delta.append("\"role\":\"assistant\"") }
            if Int.random(in: 0..<4, using: &rng) == 0 { delta.append("\"extra\":" + scanner.randomValue(&rng)) }
            delta.shuffle(using: &rng)
            if Int.random(in: 0..<8, using: &rng) > 0 { members.append("\"delta\":" + pick(["{" + delta.joined(separator: ",") + "}", "{" + delta.joined(separator: ",") + "}", "null", "\"x\""], &rng)) }
            if Int.random(in: 0..<3, using: &rng) > 0 { members.append("\"finish_reason\":" + pick(["null", "null", "\"stop\"", "\"length\"", "\"content_filter\"", "7"], &rng)) }
            if Int.random(in: 0..<4, using: &rng) == 0 { members.append("\"logprobs\":" + scanner.randomValue(&rng)) }
            members.shuffle(using: &rng)
            choices.append("{" + members.joined(separator: ",") + "}")
        }
        var top: [String] = []
        if Int.random(in: 0..<10, using: &rng) > 0 { top.append("\"choices\":" + pick(["[" + choices.joined(separator: ",") + "]", "[" + choices.joined(separator: ",") + "]", "null", "{}"], &rng)) }
        top.append("\"id\":\"chatcmpl-1\"")
        if Int.random(in: 0..<2, using: &rng) == 0 { top.append("\"object\":" + pick(["\"chat.completion.chunk\"", "\"error\"", "5", "null"], &rng)) }
        if Int.random(in: 0..<5, using: &rng) == 0 {
            top.append("\"usage\":" + pick([
                "null", "{\"prompt_tokens\":3,\"completion_tokens\":4}", "{}", "{\"prompt_tokens\":null,\"completion_tokens\":7}",
                "{\"completion_tokens\":12,\"total_tokens\":15,\"prompt_tokens_details\":{\"cached_tokens\":0}}", "{\"prompt_tokens\":-1}",
                "{\"prompt_tokens\":1.5}", "{\"prompt_tokens\":\"3\"}", "{\"prompt_tokens\":1e2}", "{\"prompt_tokens\":0,\"prompt_tokens\":9}",
                "\"x\"", "[]", "{\"completion_tokens\":1234567890123}",
            ], &rng))
        }
        if Int.random(in: 0..<8, using: &rng) == 0 { top.append("\"error\":" + pick(["null", "{\"type\":\"rate_limit_error\",\"code\":\"429\"}", "{\"message\":\"x\"}"], &rng)) }
        if Int.random(in: 0..<10, using: &rng) == 0 { top.append("\"type\":" + pick(["\"BadRequestError\"", "null", "3"], &rng)) }
        if Int.random(in: 0..<10, using: &rng) == 0 { top.append("\"code\":" + pick(["400", "\"x\"", "null"], &rng)) }
        if Int.random(in: 0..<4, using: &rng) == 0 { top.append("\"system_fingerprint\":" + scanner.randomValue(&rng)) }
        top.shuffle(using: &rng)
        return pick(["", " ", "\n"], &rng) + "{" + top.joined(separator: pick([",", ", "], &rng)) + "}"
    }

    @Test func openAIChunksGiveTheSameEventsAndErrorsOnBothPaths() {
        var rng = Rng(state: 11)
        var fast = 0
        for i in 0..<4000 {
            var text = openAIChunk(&rng)
            if i % 10 == 9 { text = String(text.prefix(Int.random(in: 0..<text.count, using: &rng))) }  // truncated
            let type = i % 50 == 0 ? "error" : "message"
            let event = ServerSentEvent(type: type, data: text)
            var off = OpenAIStreamDecoder()
            off.fastPath = false
            #expect(outcome(OpenAIStreamDecoder(), event) == outcome(off, event), "\(text)")
            #expect(viewOutcome(OpenAIStreamDecoder(), event) == outcome(off, event), "in place: \(text)")
            if type == "message", DeltaJSONScanner.openAIChunk(Array(text.utf8)) != nil { fast += 1 }
        }
        #expect(fast > 500, "the fast path should take the ordinary chunks (took \(fast))")
        let typical = #"{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":" water \u00e9"},"logprobs":null,"finish_reason":null}]}"#
        #expect(DeltaJSONScanner.openAIChunk(Array(typical.utf8)) == .init(text: " water é", finishReason: nil, hasChoice: true))
        let usage = #"{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":100,"total_tokens":110}}"#
        #expect(DeltaJSONScanner.openAIChunk(Array(usage.utf8)) == .init(usage: Usage(inputTokens: 10, outputTokens: 100)))
    }

    @Test func theDoneMarkerEndsTheAnswerOnBothPathsOnlyWithSpacesOrTabsAroundIt() {
        for (data, done) in [("[DONE]", true), (" [DONE]", true), ("[DONE]\t ", true), ("\t[DONE] ", true), ("\u{A0}[DONE]\u{3000}", true), ("[DONE] x", false), ("[done]", false), ("[DONE", false), ("", false)] {
            let event = ServerSentEvent(data: data)
            var decoder = OpenAIStreamDecoder()
            _ = try? decoder.decode(ServerSentEvent(data: #"{"choices":[{"index":0,"delta":{"content":"Rest."},"finish_reason":"length"}]}"#))
            #expect(outcome(decoder, event) == viewOutcome(decoder, event), "\(data)")
            #expect(outcome(decoder, event).hasPrefix("events [MedViewCore.ModelEvent.stop(MedViewCore.ModelStopReason.maxTokens)]") == done, "\(data)")
        }
    }

    @Test func openAIRepliesGiveTheSameEventsAndErrorsOnBothPaths() {
        var rng = Rng(state: 13)
        var fast = 0
        func outcome(_ decoder: OpenAIReplyDecoder, _ json: [UInt8]) -> String {
            do { return "events \(try decoder.decode(json))" } catch { return "error \(error)" }
        }
        for i in 0..<4000 {
            // A whole reply has the shape of a chunk with `message` where a chunk has `delta`.
            var text = openAIChunk(&rng).replacingOccurrences(of: "\"delta\":", with: "\"message\":")
            if i % 10 == 9 { text = String(text.prefix(Int.random(in: 0..<text.count, using: &rng))) }  // truncated
            var off = OpenAIReplyDecoder()
            off.fastPath = false
            #expect(outcome(OpenAIReplyDecoder(), Array(text.utf8)) == outcome(off, Array(text.utf8)), "\(text)")
            if let reply = DeltaJSONScanner.openAIChunk(Array(text.utf8), choiceKey: "message"), reply.hasChoice { fast += 1 }
        }
        #expect(fast > 200, "the fast path should take the ordinary replies (took \(fast))")
        let typical = #"{"id":"chatcmpl-9","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"none"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":90,"completion_tokens":1,"total_tokens":91}}"#
        #expect(DeltaJSONScanner.openAIChunk(Array(typical.utf8), choiceKey: "message") == .init(text: "none", finishReason: "stop", usage: Usage(inputTokens: 90, outputTokens: 1), hasChoice: true))
    }

    @Test func anthropicDeltasGiveTheSameEventsAndErrorsOnBothPaths() {
        var rng = Rng(state: 12)
        let scanner = DeltaJSONScannerTests()
        var fast = 0
        for i in 0..<3000 {
            var delta: [String] = []
            if Int.random(in: 0..<6, using: &rng) > 0 { delta.append("\"type\":" + pick(["\"text_delta\"", "\"text_delta\"", "\"thinking_delta\"", "\"input_json_delta\"", "5"], &rng)) }
            if Int.random(in: 0..<6, using: &rng) > 0 { delta.append("\"text\":" + pick(["T", "T", "\"\"", "null", "1"], &rng).replacingOccurrences(of: "T", with: scanner.jsonString(scanner.randomText(&rng), &rng))) }
            delta.shuffle(using: &rng)
            var top = ["\"index\":0"]
            if Int.random(in: 0..<8, using: &rng) > 0 { top.append("\"type\":" + pick(["\"content_block_delta\"", "\"content_block_delta\"", "\"message_delta\"", "\"ping\""], &rng)) }
            if Int.random(in: 0..<10, using: &rng) > 0 { top.append("\"delta\":" + pick(["{" + delta.joined(separator: ",") + "}", "null"], &rng)) }
            top.shuffle(using: &rng)
            var text = "{" + top.joined(separator: ",") + "}"
            if i % 10 == 9 { text = String(text.prefix(Int.random(in: 0..<text.count, using: &rng))) }
            let event = ServerSentEvent(type: "content_block_delta", data: text)
            var off = AnthropicStreamDecoder()
            off.fastPath = false
            #expect(outcome(AnthropicStreamDecoder(), event) == outcome(off, event), "\(text)")
            #expect(viewOutcome(AnthropicStreamDecoder(), event) == outcome(off, event), "in place: \(text)")
            if DeltaJSONScanner.anthropicContentDelta(Array(text.utf8)) != nil { fast += 1 }
        }
        #expect(fast > 1000, "the fast path should take the ordinary deltas (took \(fast))")
    }
}
