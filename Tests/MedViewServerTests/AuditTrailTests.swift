import Foundation
import Logging
import MedViewCore
import MedViewProtocol
import MedViewStore
import Testing
import MedViewTestSupport

@Suite(.timeLimit(.minutes(1))) struct AuditTrailTests {
    @Test("a conversation leaves an audit trail of who did what to which record, chained, with none of the patient's words")
    func trailOfAConversation() async throws {
        let directory = NSTemporaryDirectory() + "medview-audit-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let secret = "my rash appeared after the hiking trip"
        let (conversation, streamId) = try await LiveServer.with(dataDirectory: directory) { server in
            let ws = try await server.connect("alice")
            ws.send(.chatSend(ChatSend(id: "m1", text: secret)))
            let a = try #require(ack(try await ws.next()))
            let streamId = try #require(a.streamId)
            _ = try await ws.readStream(streamId)
            ws.send(.streamResume(StreamResume(id: "r1", streamId: streamId, after: 2)))
            _ = try await ws.next()
            ws.close()
            let conversation = try #require(a.conversationId)
            #expect(try await server.request("/v1/conversations", user: "alice").status == .ok)
            #expect(try await server.request("/v1/conversations/\(conversation)/messages", user: "alice").status == .ok)
            #expect(try await server.request("/v1/conversations/\(conversation)/messages", user: "mallory").status == .notFound)
            #expect(try await server.request("/v1/conversations", user: nil).status == .unauthorized)
            #expect(try await server.request("/v1/conversations/\(conversation)", .delete, user: "alice").status == .noContent)
            return (conversation, streamId)
        }
        let store = try await SQLiteAuditStore.open(path: SQLiteAuditStore.path(dataDirectory: directory), logger: Logger(label: "test"))
        let entries = try await store.entries(since: nil)
        try await store.close()
        #expect(AuditChain.verify(entries) == .intact(count: entries.count))
        let trail = entries.map { "\($0.event.action.rawValue) \($0.event.userId ?? "-") \($0.event.record ?? "-") \($0.event.outcome.rawValue)" }
        let expected = [
            "connection.opened alice - success",
            "conversation.created alice \(conversation) success",
            "message.sent alice \(conversation) success",
            "stream.resumed alice \(streamId) success",
            "connection.closed alice - success",
            "conversation.listed alice - success",
            "conversation.read alice \(conversation) success",
            "conversation.read mallory \(conversation) refused",
            "auth.refused - - refused",
            "conversation.deleted alice \(conversation) success",
        ]
        // The socket closes asynchronously: its entry may come after the HTTP requests that follow.
        #expect(trail.filter { !$0.hasPrefix("connection.closed") } == expected.filter { !$0.hasPrefix("connection.closed") })
        #expect(trail.contains("connection.closed alice - success"))
        #expect(entries.allSatisfy { $0.event.sourceAddress == "127.0.0.1" })
        let raw = try Data(contentsOf: URL(fileURLWithPath: SQLiteAuditStore.path(dataDirectory: directory)))
        for word in ["rash", "hiking", "trip"] {
            #expect(raw.range(of: Data(word.utf8)) == nil, "the audit file holds \(word)")
        }
        #expect(entries.first { $0.event.action == .conversationRead && $0.event.userId == "mallory" }?.event.reason == "not_found")
    }
}
