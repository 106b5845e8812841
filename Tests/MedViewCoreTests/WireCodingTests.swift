import Foundation
import MedViewProtocol
import Testing

/// A chunk is written by hand on the hot path; it must say what `JSONEncoder` says, with its
/// strings escaped the same way.
@Suite struct WireCodingTests {
    static let encoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()

    static func object(_ data: Data) throws -> NSDictionary {
        try #require(try JSONSerialization.jsonObject(with: data) as? NSDictionary)
    }

    @Test func aChunkIsWrittenAsJSONEncoderWritesIt() throws {
        var texts = [
            "", "plain words", "quote \" and backslash \\ and slash / here", "tab\tnew\nline\r\nfeed\u{0C}back\u{08}",
            "café 💧 👩🏽‍⚕️ 🇺🇸 e\u{301}", "日本語のテキスト。", "\u{7F}\u{80}\u{2028}\u{2029}", "\r\n\u{301}",
            "ends with escape\n", "\"", "\\\\",
        ]
        // Every control character, alone and between letters.
        for scalar in (0..<0x20).compactMap(Unicode.Scalar.init) {
            texts.append(String(Character(scalar)))
            texts.append("a" + String(Character(scalar)) + "b")
        }
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ab \"\\/\n\t\u{01}\u{1F}é💧\u{301}")
        for _ in 0..<500 {
            texts.append(String((0..<Int.random(in: 0...20, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }))
        }
        for (i, text) in texts.enumerated() {
            let chunk = StreamChunk(streamId: "str_\(i)/x\"", seq: i * 7919, text: text)
            let event = ServerEvent.streamChunk(chunk)
            let json = event.jsonString()
            #expect(try Self.object(Data(json.utf8)) == Self.object(try Self.encoder.encode(chunk)), "text \(Array(text.unicodeScalars))")
            // The text goes last, escaped byte for byte as JSONEncoder escapes a string.
            let quoted = String(decoding: try Self.encoder.encode(text), as: UTF8.self)
            #expect(json.hasSuffix(#""text":"# + quoted + "}"), "text \(Array(text.unicodeScalars))")
            #expect(event.encoded() == Data(json.utf8))
            #expect(try ServerEvent.decode(event.encoded()) == event)
        }
    }
    @Test func theStartTheEndAndTheAckAreWrittenAsJSONEncoderWritesThem() throws {
        let texts = ["", "s_1", "quote \" and backslash \\ / slash", "tab\tnew\nline", "café 💧 e\u{301}", "\u{01}\u{1F}\u{7F}"]
        var events: [(ServerEvent, Data)] = []
        for (i, text) in texts.enumerated() {
            for demo in [true, false] {
                let start = StreamStart(streamId: text, seq: i, conversationId: "c_\(text)", userMessageId: text + "u", messageId: "m" + text, model: ModelDescriptor(provider: text, id: "id/" + text, demo: demo))
                events.append((.streamStart(start), try Self.encoder.encode(start)))
            }
            for reason in [FinishReason.complete, .length, .cancelled, .safety] {
                for usage in [nil, Usage(inputTokens: i, outputTokens: 1_000_000 + i)] {
                    let end = StreamEnd(streamId: text, seq: i * 104_729, finishReason: reason, usage: usage)
                    events.append((.streamEnd(end), try Self.encoder.encode(end)))
                }
            }
            for streamId in [nil, text] {
                for conversationId in [nil, "c" + text] {
                    for duplicate in [nil, true, false] {
                        let ack = Ack(id: text.isEmpty ? "x" : text, streamId: streamId, conversationId: conversationId, duplicate: duplicate)
                        events.append((.ack(ack), try Self.encoder.encode(ack)))
                    }
                }
            }
        }
        // An ack with an expiry still goes through JSONEncoder.
        let refreshed = Ack(id: "r", expiresAt: 1_780_000_000.5)
        events.append((.ack(refreshed), try Self.encoder.encode(refreshed)))
        for (event, encoded) in events {
            let json = event.jsonString()
            #expect(try Self.object(Data(json.utf8)) == Self.object(encoded), "\(json)")
            #expect(try Self.object(event.encoded()) == Self.object(Data(json.utf8)))
            #expect(try ServerEvent.decode(event.encoded()) == event)
        }
    }
}
