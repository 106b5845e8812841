import MedViewModels
import Testing

@Suite struct ServerSentEventParserTests {
    /// Feeds `bytes` cut at `cuts` (sorted offsets) and returns every event, or the error.
    func parse(_ bytes: [UInt8], cuts: [Int] = [], parser: ServerSentEventParser = .init()) throws(ServerSentEventError) -> [ServerSentEvent] {
        var parser = parser
        var events: [ServerSentEvent] = []
        var start = 0
        for cut in cuts + [bytes.count] {
            events += try parser.feed(bytes[start..<cut])
            start = cut
        }
        return events
    }

    func parse(_ text: String, cuts: [Int] = []) throws(ServerSentEventError) -> [ServerSentEvent] {
        try parse(Array(text.utf8), cuts: cuts)
    }

    /// An Anthropic-like stream mixing every line ending, comments, ids, a BOM and multi-byte text.
    static let mixed: [UInt8] = [0xEF, 0xBB, 0xBF] + Array((
        ": keep-alive comment\r\n" +
        "event: message_start\r\n" +
        "data: {\"type\":\"message_start\"}\r\n" +
        "\r\n" +
        "event: content_block_delta\n" +
        "id: 7\n" +
        "data: {\"text\":\"Hydration 💧 helps; naïve café\"}\n" +
        "\n" +
        "retry: 2500\r" +
        "data: first line\r" +
        "data:second line\r" +
        "data:  two spaces\r" +
        "\r" +
        "event: ping\r\n" +
        "data\r\n" +
        "\r\n" +
        "unknown: field\n" +
        "data: [DONE]\n\n"
    ).utf8)

    static let mixedEvents = [
        ServerSentEvent(type: "message_start", data: "{\"type\":\"message_start\"}"),
        ServerSentEvent(type: "content_block_delta", data: "{\"text\":\"Hydration 💧 helps; naïve café\"}", lastEventId: "7"),
        ServerSentEvent(type: "message", data: "first line\nsecond line\n two spaces", lastEventId: "7"),
        ServerSentEvent(type: "ping", data: "", lastEventId: "7"),
        ServerSentEvent(type: "message", data: "[DONE]", lastEventId: "7"),
    ]

    @Test func parsesEventNamesDataCommentsIdsAndEveryLineEnding() throws {
        #expect(try parse(Self.mixed) == Self.mixedEvents)
    }

    @Test func givesTheSameEventsWhereverTheBodyIsSplitInTwoOrThree() throws {
        let bytes = Self.mixed
        for cut in 0...bytes.count {
            #expect(try parse(bytes, cuts: [cut]) == Self.mixedEvents, "split at \(cut)")
        }
        for first in stride(from: 0, through: bytes.count, by: 7) {
            for second in first...bytes.count {
                let events = try parse(bytes, cuts: [first, second])
                if events != Self.mixedEvents {
                    Issue.record("split at \(first) and \(second)")
                    return
                }
            }
        }
    }

    /// Feeds `bytes` cut at `cuts` and copies out every event handed over in place.
    func parseInPlace(_ bytes: [UInt8], cuts: [Int]) throws(ServerSentEventError) -> [ServerSentEvent] {
        var parser = ServerSentEventParser()
        var events: [ServerSentEvent] = []
        var start = 0
        for cut in cuts + [bytes.count] {
            try parser.feed(bytes[start..<cut]) { view in
                events.append(ServerSentEvent(type: view.type, bytes: Array(view.bytes), lastEventId: view.lastEventId))
                return true
            }
            start = cut
        }
        return events
    }

    @Test func handsOverInPlaceTheSameEventsWhereverTheBodyIsSplit() throws {
        let bytes = Self.mixed
        for first in 0...bytes.count {
            for second in stride(from: first, through: bytes.count, by: 5) {
                let events = try parseInPlace(bytes, cuts: [first, second])
                if events != Self.mixedEvents {
                    Issue.record("split at \(first) and \(second): \(events)")
                    return
                }
            }
        }
        #expect(try parseInPlace(bytes, cuts: Array(1..<bytes.count)) == Self.mixedEvents)
    }

    @Test func anEventHandedOverInPlaceNamesItsTypeAndStopsTheParseWhenRefused() throws {
        var parser = ServerSentEventParser()
        var seen: [String] = []
        try parser.feed(Array("event: content_block_delta\ndata: a\n\ndata: b\n\ndata: c\n\n".utf8)) { view in
            seen.append("\(view.isType("content_block_delta")) \(view.isType("message")) \(String(decoding: view.bytes, as: UTF8.self))")
            return seen.count < 2
        }
        #expect(seen == ["true false a", "false true b"])
    }

    @Test func givesTheSameEventsFedOneByteAtATimeOrInRandomPieces() throws {
        let bytes = Self.mixed
        #expect(try parse(bytes, cuts: Array(1..<bytes.count)) == Self.mixedEvents)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let cuts = (0..<Int.random(in: 1...20, using: &generator)).map { _ in Int.random(in: 0...bytes.count, using: &generator) }.sorted()
            #expect(try parse(bytes, cuts: cuts) == Self.mixedEvents, "cuts \(cuts)")
        }
    }

    @Test func aCarriageReturnEndingOnePieceAndALineFeedStartingTheNextAreOneLineEnd() throws {
        // Were the LF taken as a second line end, the blank line would dispatch "a" early and "b" alone.
        let text = "data: a\r\ndata: b\r\n\r\n"
        let cut = Array(text.utf8).firstIndex(of: UInt8(ascii: "\r"))! + 1
        #expect(try parse(text, cuts: [cut]) == [ServerSentEvent(data: "a\nb")])
    }

    @Test func anEventWithoutDataIsNotDispatchedAndItsNameDoesNotLeakIntoTheNext() throws {
        #expect(try parse("event: ping\n\ndata: x\n\n") == [ServerSentEvent(type: "message", data: "x")])
        #expect(try parse(": only a comment\n\n\n") == [])
    }

    @Test func anEventTheBodyEndsInTheMiddleOfIsNotDispatchedAndIsReportedPending() throws {
        var parser = ServerSentEventParser()
        #expect(try parser.feed(Array("data: complete\n\ndata: cut off".utf8)) == [ServerSentEvent(data: "complete")])
        #expect(parser.hasPendingEvent)
        var clean = ServerSentEventParser()
        _ = try clean.feed(Array("data: complete\n\n".utf8))
        #expect(!clean.hasPendingEvent)
    }

    @Test func readsTheRetryFieldOnlyWhenItIsAllDigits() throws {
        var parser = ServerSentEventParser()
        _ = try parser.feed(Array("retry: 1500\n\nretry: 2x\n\n".utf8))
        #expect(parser.retryMilliseconds == 1500)
    }

    @Test func replacesInvalidUTF8InsteadOfFailing() throws {
        let bytes: [UInt8] = Array("data: a".utf8) + [0xFF, 0xFE] + Array("b\n\n".utf8)
        #expect(try parse(bytes) == [ServerSentEvent(data: "a\u{FFFD}\u{FFFD}b")])
    }

    @Test func refusesALineLongerThanTheLimitEvenWhenItArrivesInPieces() throws {
        let parser = ServerSentEventParser(maxLineBytes: 64, maxEventBytes: 1024)
        let long = Array(("data: " + String(repeating: "x", count: 100)).utf8)
        #expect(throws: ServerSentEventError.lineTooLong(limit: 64)) { try parse(long, cuts: [10, 30, 50, 70], parser: parser) }
        // Exactly at the limit is fine.
        let fits = Array(("data: " + String(repeating: "y", count: 58) + "\n\n").utf8)
        #expect(try parse(fits, parser: parser) == [ServerSentEvent(data: String(repeating: "y", count: 58))])
    }

    @Test func refusesAnEventWhoseDataExceedsTheLimitAcrossManyLines() {
        let parser = ServerSentEventParser(maxLineBytes: 64, maxEventBytes: 100)
        let lines = String(repeating: "data: " + String(repeating: "z", count: 40) + "\n", count: 3)
        #expect(throws: ServerSentEventError.eventTooLarge(limit: 100)) { try parse(Array(lines.utf8), cuts: [5, 61], parser: parser) }
    }

    @Test func aByteOrderMarkIsSkippedOnlyAtTheStart() throws {
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        // Split inside the BOM.
        #expect(try parse(bom + Array("data: x\n\n".utf8), cuts: [1, 2]) == [ServerSentEvent(data: "x")])
        // Bytes that start like a BOM but are not one stay in the line.
        let notBOM: [UInt8] = [0xEF, 0xBB] + Array("data: y\n\n".utf8)
        #expect(try parse(notBOM, cuts: [1]) == [])
        // A BOM later in the stream is data.
        #expect(try parse(Array("data: ".utf8) + bom + Array("z\n\n".utf8)) == [ServerSentEvent(data: "\u{FEFF}z")])
    }
}
