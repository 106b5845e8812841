import Foundation
import MedViewClient
import MedViewProtocol
import MedViewTestSupport
import Testing

/// The client against a server that does not follow the protocol: whatever arrives, the app gets
/// typed events and errors, never a crash, and events are still delivered once, in order.
@Suite(.timeLimit(.minutes(1)))
struct HostileServerTests {
    static let conversation = #"{"id":"c_1","title":"t","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}"#

    static func body(messageId: String) -> String {
        [
            "retry: 2000",
            "",
            "event: ack",
            #"data: {"type":"ack","id":"\#(messageId)","streamId":"s_1","conversationId":"c_1"}"#,
            "",
            "data: {not json",
            "",
            #"data: {"type":"stream.chunk","streamId":"s_1","seq":"two","text":"x"}"#,
            "",
            #"data: {"type":"mystery","streamId":"s_1","seq":1}"#,
            "",
            #"data: [1, 2, 3]"#,
            "",
            "id: 1",
            #"data: {"type":"stream.start","streamId":"s_1","seq":1,"conversationId":"c_1","userMessageId":"m_1","messageId":"m_2","model":{"provider":"x","id":"y","demo":false}}"#,
            "",
            #"data: {"type":"stream.chunk","streamId":"s_other","seq":2,"text":"not this answer"}"#,
            "",
            #"data: {"type":"stream.chunk","streamId":"s_1","seq":2,"text":"Hello "}"#,
            "",
            #"data: {"type":"stream.chunk","streamId":"s_1","seq":2,"text":"Hello "}"#,
            "",
            #"data: {"type":"safety.alert","streamId":"s_1","seq":3,"category":"cardiac"}"#,
            "",
            #"data: {"type":"stream.chunk","streamId":"s_1","seq":3,"text":"world"}"#,
            "",
            #"data: {"type":"error","code":"brand_new_code","message":"Something new.","retryable":false,"streamId":"s_1","seq":4}"#,
            "",
            #"data: {"type":"stream.chunk","streamId":"s_1","seq":5,"text":"after the end"}"#,
            "",
            "",
        ].joined(separator: "\n")
    }

    @Test("Garbage, repeats, other streams and unknown codes: the answer ends with a typed error and the right text")
    func garbageOverServerSentEvents() async throws {
        try await LoopbackHTTPServer.with(respond: { request in
            switch (request.method, request.path) {
            case ("GET", "/healthz"): return .error(200, #"{"status":"ok"}"#)
            case ("POST", "/v1/conversations"): return .error(201, Self.conversation)
            case ("POST", "/v1/conversations/c_1/messages"):
                return .events(Self.body(messageId: request.json?["id"] as? String ?? ""), piece: 7)
            default: return LoopbackHTTPServer.Reply(400, "no")  // the WebSocket upgrade among them
            }
        }) { server in
            var configuration = MedViewClientConfiguration(baseURL: server.baseURL)
            configuration.backoff = Backoff(base: .milliseconds(20), cap: .milliseconds(100))
            configuration.webSocketRetryInterval = .seconds(600)
            let client = MedViewClient(configuration: configuration) { _ in AccessToken("test-token", expiresAt: nil) }
            await client.connect()
            var events: [AnswerEvent] = []
            for await event in await client.send("hi") { events.append(event) }
            let stats = await client.statistics
            await client.close()

            let texts = events.compactMap { if case .text(let t) = $0 { t } else { nil } }
            #expect(texts == ["Hello ", "world"])
            #expect(events.filter { if case .started = $0 { true } else { false } }.count == 1)
            guard case .failed(let failure) = events.last else {
                Issue.record("expected a failure, got \(String(describing: events.last))")
                return
            }
            #expect(failure.error.code == .internalError)
            #expect(failure.partialText == "Hello world")
            #expect(stats.duplicatesDropped >= 1)
            #expect(stats.fallbacks == 1)
        }
    }

    @Test("An HTML error page instead of JSON is a typed error")
    func htmlErrorPage() async throws {
        try await LoopbackHTTPServer.with(respond: { _ in LoopbackHTTPServer.Reply(502, "<html>bad gateway</html>") }) { server in
            let client = MedViewClient(configuration: MedViewClientConfiguration(baseURL: server.baseURL)) { _ in AccessToken("test-token", expiresAt: nil) }
            await #expect(throws: MedViewClientError.invalidResponse("HTTP status 502")) { try await client.conversations() }
            await client.close()
        }
    }
}
