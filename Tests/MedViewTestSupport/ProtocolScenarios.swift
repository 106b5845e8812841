import Foundation
import MedViewProtocol
import Testing

/// Protocol behaviours every shape that serves the protocol must show, written once and run
/// against each (`medview serve` in MedViewServerTests, the Lambda function behind API Gateway in
/// MedViewLambdaTests).
public struct ProtocolScenarios: Sendable {
    /// Opens a WebSocket as a user.
    public let connect: @Sendable (String) async throws -> WSTestClient
    /// The stored messages (status, text) of a conversation of a user, oldest first.
    public let stored: @Sendable (_ conversationId: String, _ userId: String) async throws -> [(status: String, text: String)]

    public init(connect: @escaping @Sendable (String) async throws -> WSTestClient, stored: @escaping @Sendable (String, String) async throws -> [(status: String, text: String)]) {
        self.connect = connect
        self.stored = stored
    }

    /// A retried `chat.send` (same id) re-attaches to the original stream: the same events, no
    /// second answer stored.
    public func idempotentRetry() async throws {
        let ws = try await connect("alice")
        defer { ws.close() }
        ws.send(.chatSend(ChatSend(id: "same", text: "Hello [[delay:2]]")))
        let first = try #require(ack(try await ws.next()))
        let events = try await ws.readStream(first.streamId!)
        ws.send(.chatSend(ChatSend(id: "same", text: "Hello [[delay:2]]")))
        let second = try #require(ack(try await ws.next()))
        #expect(second.duplicate == true)
        #expect(second.streamId == first.streamId)
        #expect(try await ws.readStream(first.streamId!) == events)
        #expect(try await stored(first.conversationId!, "alice").count == 2)
    }

    /// After a disconnect mid-answer, `stream.resume` on a new connection yields exactly the
    /// missing events, in order, once; returns every event of the answer.
    @discardableResult
    public func resumeAfterDisconnect(_ text: String) async throws -> [ServerEvent] {
        let first = try await connect("alice")
        first.send(.chatSend(ChatSend(id: "m1", text: text)))
        let streamId = try #require(ack(try await first.next())?.streamId)
        var seen: [ServerEvent] = []
        while seen.count < 4 {
            let e = try await first.next()
            if e.streamId == streamId, e.seq != nil { seen.append(e) }
        }
        first.close()
        try await Task.sleep(for: .milliseconds(100))
        let lastSeq = seen.last!.seq!
        let second = try await connect("alice")
        defer { second.close() }
        second.send(.streamResume(StreamResume(id: "r1", streamId: streamId, after: lastSeq)))
        #expect(ack(try await second.next())?.streamId == streamId)
        let rest = try await second.readStream(streamId)
        let all = seen + rest
        #expect(all.map(\.seq) == Array(1...all.count).map { Optional($0) })
        #expect(rest.first?.seq == lastSeq + 1)
        guard case .streamEnd = all.last else {
            Issue.record("expected stream.end")
            return all
        }
        return all
    }
}
