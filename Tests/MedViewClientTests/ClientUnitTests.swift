import Foundation
@testable import MedViewClient
import MedViewProtocol
import Testing

@Suite struct ClientUnitTests {
    @Test("Backoff: full jitter below an exponential ceiling, capped, reset")
    func backoff() {
        var backoff = Backoff(base: .milliseconds(100), cap: .seconds(1))
        var ceilings: [Duration] = []
        for _ in 0..<8 {
            let ceiling = backoff.ceiling
            ceilings.append(ceiling)
            let delay = backoff.next()
            #expect(delay >= .zero && delay < ceiling)
        }
        #expect(ceilings.prefix(5) == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1)])
        #expect(ceilings.last == .seconds(1))
        for _ in 0..<100 { _ = backoff.next() }
        #expect(backoff.ceiling == .seconds(1))
        backoff.reset()
        #expect(backoff.ceiling == .milliseconds(100))
    }

    @Test("The event-stream parser: CRLF, LF and CR lines, comments, split pieces, multi-line data")
    func eventStreamParser() throws {
        var parser = EventStreamParser()
        let body = "retry: 2000\r\n\r\n: keep-alive\n\nid: 1\nevent: stream.chunk\ndata: {\"a\":1}\r\rdata: x\ndata: y\n\n"
        var events: [String] = []
        for byte in Array(body.utf8) { events += try parser.feed([byte]) }
        #expect(events == ["{\"a\":1}", "x\ny"])
    }

    @Test("An over-long event-stream line is a typed error, not a crash")
    func eventStreamLineLimit() {
        var parser = EventStreamParser()
        parser.maxLineBytes = 16
        #expect(throws: MedViewClientError.self) { try parser.feed(Array(repeating: UInt8(ascii: "a"), count: 100)) }
    }

    @Test("Bad server input becomes typed errors; unknown error codes still settle commands")
    func lenientDecoding() throws {
        #expect(throws: MedViewClientError.self) { try EventDecoding.decode("not json") }
        #expect(throws: MedViewClientError.self) { try EventDecoding.decode("{\"type\":\"stream.chunk\",\"streamId\":\"s\"}") }
        #expect(throws: MedViewClientError.self) { try EventDecoding.decode("{\"type\":\"stream.chunk\",\"streamId\":\"s\",\"seq\":\"x\",\"text\":\"t\"}") }
        let event = try EventDecoding.decode("{\"type\":\"error\",\"code\":\"brand_new_code\",\"message\":\"m\",\"retryable\":true,\"id\":\"c-1\",\"streamId\":\"s\",\"seq\":4}")
        guard case .error(let error) = event else {
            Issue.record("expected an error event")
            return
        }
        #expect(error.code == .internalError)
        #expect(error.id == "c-1")
        #expect(error.seq == 4)
        #expect(EventDecoding.httpError(status: 502, body: Data("<html>".utf8)) == .invalidResponse("HTTP status 502"))
        #expect(EventDecoding.httpError(status: 404, body: Data("{\"error\":{\"code\":\"not_found\",\"message\":\"No such stream.\",\"retryable\":false}}".utf8)).code == .notFound)
    }

    @Test("A token's description never shows the token; its expiry is read from the JWT")
    func tokenRedaction() {
        // {"exp":2000000000}
        let jwt = "eyJhbGciOiJub25lIn0.eyJleHAiOjIwMDAwMDAwMDB9.c2ln"
        let token = AccessToken(jwt: jwt)
        #expect(token.expiresAt == Date(timeIntervalSince1970: 2_000_000_000))
        #expect(!"\(token)".contains("eyJ"))
        #expect(AccessToken(jwt: "garbage").expiresAt == nil)
    }

    @Test("The WebSocket URL follows the base URL's scheme")
    func webSocketURL() {
        #expect(MedViewClientConfiguration(baseURL: "http://127.0.0.1:8080/").webSocketURL == "ws://127.0.0.1:8080/v1/ws")
        #expect(MedViewClientConfiguration(baseURL: "https://example.com").webSocketURL == "wss://example.com/v1/ws")
        #expect(MedViewClientConfiguration(baseURL: "ftp://example.com").webSocketURL == nil)
    }
}
