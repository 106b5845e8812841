import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HTTPTypes
import HummingbirdTesting
import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewServer
import NIOCore
import Testing
import MedViewTestSupport

@Suite(.timeLimit(.minutes(2))) struct HTTPTests {
    func createConversation(_ server: LiveServer, user: String) async throws -> String {
        let response = try await server.request("/v1/conversations", .post, user: user)
        #expect(response.status == .created)
        return try #require(json(response)["id"] as? String)
    }

    func sse(_ server: LiveServer, conversation: String, user: String, id: String, text: String) async throws -> LiveResponse {
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["id": id, "text": text]), as: UTF8.self)
        return try await server.request("/v1/conversations/\(conversation)/messages", .post, user: user, headers: [.accept: "text/event-stream", .contentType: "application/json"], body: body)
    }

    @Test("SSE streams the same events as WebSocket, with id lines, anti-buffering headers and an ack first")
    func sseStream() async throws {
        try await LiveServer.with { server in
            let conversation = try await createConversation(server, user: "alice")
            let response = try await sse(server, conversation: conversation, user: "alice", id: "m1", text: "Hello [[repeat:3]]")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/event-stream") == true)
            #expect(response.headers[.cacheControl]?.contains("no-cache") == true)
            #expect(response.headers[HTTPField.Name("X-Accel-Buffering")!] == "no")
            let body = String(buffer: response.body)
            #expect(body.hasPrefix("retry: "))
            let events = parseSSE(body)
            guard case .ack(let a) = events.first?.event else { Issue.record("expected ack first"); return }
            #expect(a.id == "m1" && a.conversationId == conversation)
            #expect(events.first?.id == nil)
            let stream = events.dropFirst()
            #expect(stream.map(\.id) == Array(1...stream.count).map { "\($0)" })
            #expect(stream.map(\.event.seq) == Array(1...stream.count).map { Optional($0) })
            guard case .streamEnd = stream.last?.event else { Issue.record("expected stream.end last"); return }
            #expect(response.headers[HTTPField.Name("X-Stream-Id")!] == a.streamId)
        }
    }

    @Test("SSE resume with Last-Event-ID or ?after returns exactly the later events")
    func sseResume() async throws {
        try await LiveServer.with { server in
            let conversation = try await createConversation(server, user: "alice")
            let full = parseSSE(String(buffer: try await sse(server, conversation: conversation, user: "alice", id: "m1", text: "[[repeat:4]]").body))
            let streamId = try #require(full.first?.event.streamId)
            let all = full.dropFirst().map(\.event)
            let resumed = try await server.request("/v1/streams/\(streamId)", user: "alice", headers: [.accept: "text/event-stream", HTTPField.Name("Last-Event-ID")!: "3"])
            #expect(resumed.status == .ok)
            let later = parseSSE(String(buffer: resumed.body)).map(\.event)
            #expect(later == Array(all.dropFirst(3)))
            let viaQuery = try await server.request("/v1/streams/\(streamId)?after=2", user: "alice", headers: [.accept: "text/event-stream"])
            #expect(parseSSE(String(buffer: viaQuery.body)).map(\.event) == Array(all.dropFirst(2)))
            let bad = try await server.request("/v1/streams/\(streamId)", user: "alice", headers: [.accept: "text/event-stream", HTTPField.Name("Last-Event-ID")!: "abc"])
            #expect(bad.status == .badRequest)
        }
    }

    @Test("SSE keep-alive comments flow while the model is quiet")
    func keepAlive() async throws {
        try await LiveServer.with(configure: { $0.limits.keepAliveInterval = .milliseconds(100) }) { server in
            let conversation = try await createConversation(server, user: "alice")
            let response = try await sse(server, conversation: conversation, user: "alice", id: "m1", text: "[[say:slow answer]][[delay:150]][[delta:4]]")
            let body = String(buffer: response.body)
            #expect(body.contains(": keep-alive\n\n"))
            guard case .streamEnd = parseSSE(body).last?.event else { Issue.record("expected stream.end"); return }
        }
    }

    @Test("SSE cancel ends the stream as cancelled")
    func sseCancel() async throws {
        try await LiveServer.with { server in
            let conversation = try await createConversation(server, user: "alice")
            // The streaming POST runs on its own connection, as a browser's would.
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(server.port)/v1/conversations/\(conversation)/messages")!)
            request.httpMethod = "POST"
            request.setValue("text/event-stream", forHTTPHeaderField: "Accept")
            request.setValue("Bearer \(try await server.token("alice"))", forHTTPHeaderField: "Authorization")
            request.httpBody = Data(#"{"id":"m1","text":"[[repeat:100]][[delay:5]]"}"#.utf8)
            let sendable = request
            let answer = Task { try await URLSession.shared.data(for: sendable) }
            var streamId: String?
            for _ in 0..<100 where streamId == nil {
                try await Task.sleep(for: .milliseconds(20))
                let messages = json(try await server.request("/v1/conversations/\(conversation)/messages", user: "alice"))["messages"] as? [[String: Any]]
                streamId = messages?.first?["streamId"] as? String
            }
            let id = try #require(streamId)
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await server.request("/v1/streams/\(id)/cancel", .post, user: "alice").status == .accepted)
            let (data, _) = try await answer.value
            let events = parseSSE(String(decoding: data, as: UTF8.self)).map(\.event)
            guard case .streamEnd(let end) = events.last else { Issue.record("expected stream.end"); return }
            #expect(end.finishReason == .cancelled)
        }
    }

    @Test("SSE input errors are typed HTTP errors")
    func sseErrors() async throws {
        try await LiveServer.with(configure: { $0.limits.maxFrameBytes = 1024 }) { server in
            let conversation = try await createConversation(server, user: "alice")
            func code(_ r: LiveResponse) -> String? { (json(r)["error"] as? [String: Any])?["code"] as? String }
            let noAccept = try await server.request("/v1/conversations/\(conversation)/messages", .post, user: "alice", body: #"{"id":"a","text":"hi"}"#)
            #expect(noAccept.status == .notAcceptable && code(noAccept) == "not_acceptable")
            let headers: HTTPFields = [.accept: "text/event-stream"]
            let malformed = try await server.request("/v1/conversations/\(conversation)/messages", .post, user: "alice", headers: headers, body: "{nope")
            #expect(malformed.status == .badRequest && code(malformed) == "malformed_json")
            let missing = try await server.request("/v1/conversations/\(conversation)/messages", .post, user: "alice", headers: headers, body: #"{"id":"a"}"#)
            #expect(missing.status == .badRequest && code(missing) == "invalid_command")
            let big = try await server.request("/v1/conversations/\(conversation)/messages", .post, user: "alice", headers: headers, body: #"{"id":"a","text":""# + String(repeating: "x", count: 2000) + #""}"#)
            #expect(big.status == .contentTooLarge && code(big) == "frame_too_large")
            let invalidUTF8 = try await server.client.execute(uri: "/v1/conversations/\(conversation)/messages", method: .post, headers: [.accept: "text/event-stream", .authorization: "Bearer \(try await server.token("alice"))"], body: ByteBuffer(bytes: [0x7B, 0xFF, 0x7D]))
            #expect(invalidUTF8.status == .badRequest && code(invalidUTF8) == "invalid_utf8")
            let unknown = try await sse(server, conversation: "c_missing", user: "alice", id: "a", text: "hi")
            #expect(unknown.status == .notFound && code(unknown) == "not_found")
            let unauthenticated = try await server.request("/v1/conversations", user: nil)
            #expect(unauthenticated.status == .unauthorized && code(unauthenticated) == "unauthorized")
            #expect(unauthenticated.headers[.wwwAuthenticate] == "Bearer")
        }
    }

    @Test("conversations: list mine, read messages, delete erases; another user's ids answer 404")
    func rest() async throws {
        try await LiveServer.with { server in
            let mine = try await createConversation(server, user: "alice")
            _ = try await sse(server, conversation: mine, user: "alice", id: "m1", text: "Question one")
            _ = try await sse(server, conversation: mine, user: "alice", id: "m2", text: "Question two")
            let theirs = try await createConversation(server, user: "bob")
            let list = json(try await server.request("/v1/conversations", user: "alice"))["conversations"] as? [[String: Any]]
            #expect(list?.compactMap { $0["id"] as? String } == [mine])
            let messages = json(try await server.request("/v1/conversations/\(mine)/messages", user: "alice"))["messages"] as? [[String: Any]]
            #expect(messages?.compactMap { $0["role"] as? String } == ["user", "assistant", "user", "assistant"])
            #expect(messages?.first?["text"] as? String == "Question one")
            let streamId = try #require(messages?.first?["streamId"] as? String)

            // Bob sees none of it, and cannot delete it.
            #expect(try await server.request("/v1/conversations/\(mine)/messages", user: "bob").status == .notFound)
            #expect(try await server.request("/v1/conversations/\(mine)", .delete, user: "bob").status == .notFound)
            #expect(try await server.request("/v1/streams/\(streamId)", user: "bob", headers: [.accept: "text/event-stream"]).status == .notFound)
            #expect(try await server.request("/v1/streams/\(streamId)/cancel", .post, user: "bob").status == .notFound)
            #expect(try await sse(server, conversation: mine, user: "bob", id: "x", text: "hi").status == .notFound)
            #expect(try await server.request("/v1/conversations/\(theirs)/messages", user: "alice").status == .notFound)

            // Delete erases everything, and the ids are gone afterwards.
            #expect(try await server.request("/v1/conversations/\(mine)", .delete, user: "alice").status == .noContent)
            #expect(try await server.request("/v1/conversations/\(mine)/messages", user: "alice").status == .notFound)
            #expect(try await server.request("/v1/conversations/\(mine)", .delete, user: "alice").status == .notFound)
            let after = json(try await server.request("/v1/conversations", user: "alice"))["conversations"] as? [[String: Any]]
            #expect(after?.isEmpty == true)
        }
    }

    @Test("deleting a conversation cancels its running answer and nothing of it can be replayed")
    func deleteWhileStreaming() async throws {
        try await LiveServer.with { server in
            let result = try await server.chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "[[repeat:200]][[delay:5]]")
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await server.request("/v1/conversations/\(result.conversationId)", .delete, user: "alice").status == .noContent)
            let replay = try await server.request("/v1/streams/\(result.stream.id)", user: "alice", headers: [.accept: "text/event-stream"])
            #expect(replay.status == .notFound)
            var last: ServerEvent?
            for await e in result.stream.subscribe(after: 0) { last = e }
            guard case .streamEnd(let end) = last else { Issue.record("expected stream.end"); return }
            #expect(end.finishReason == .cancelled)
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await server.request("/v1/conversations/\(result.conversationId)/messages", user: "alice").status == .notFound)
            // The idempotency key is free again: the same id starts a new answer.
            let again = try await server.chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "[[repeat:200]][[delay:5]]")
            #expect(!again.duplicate)
            try await server.chat.cancel(streamId: again.stream.id, userId: "alice")
        }
    }

    @Test("readiness reports draining once shutdown begins")
    func readyWhileDraining() async throws {
        try await LiveServer.with { server in
            #expect(try await server.request("/readyz", user: nil).status == .ok)
            await server.chat.drain(gracePeriod: .zero)
            let ready = try await server.request("/readyz", user: nil)
            #expect(ready.status == .serviceUnavailable)
            #expect(json(ready)["status"] as? String == "draining")
        }
    }

    @Test("health and readiness")
    func health() async throws {
        try await LiveServer.with { server in
            #expect(try await server.request("/healthz", user: nil).status == .ok)
            let ready = try await server.request("/readyz", user: nil)
            #expect(ready.status == .ok)
            #expect(json(ready)["model"] as? String == "scripted:scripted-v1")
            let metrics = String(buffer: try await server.request("/metrics", user: nil).body)
            #expect(metrics.contains("medview_connection_attempts_total{transport=\"websocket\",result=\"accepted\"} 0"))
            #expect(metrics.contains("medview_ready 1.0"))
        }
    }

    @Test("conversations, messages and finished streams survive a server restart")
    func restart() async throws {
        let directory = NSTemporaryDirectory() + "medview-restart-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (conversation, events) = try await LiveServer.with(dataDirectory: directory) { server in
            let conversation = try await createConversation(server, user: "alice")
            let events = parseSSE(String(buffer: try await sse(server, conversation: conversation, user: "alice", id: "m1", text: "Remember me").body)).map(\.event)
            return (conversation, events)
        }
        let streamId = try #require(events.first?.streamId)
        try await LiveServer.with(dataDirectory: directory) { server in
            let list = json(try await server.request("/v1/conversations", user: "alice"))["conversations"] as? [[String: Any]]
            #expect(list?.first?["id"] as? String == conversation)
            let messages = json(try await server.request("/v1/conversations/\(conversation)/messages", user: "alice"))["messages"] as? [[String: Any]]
            #expect(messages?.first?["text"] as? String == "Remember me")
            #expect(messages?.last?["status"] as? String == "complete")
            // The finished stream resumes from the stored log.
            let resumed = try await server.request("/v1/streams/\(streamId)", user: "alice", headers: [.accept: "text/event-stream", HTTPField.Name("Last-Event-ID")!: "1"])
            #expect(parseSSE(String(buffer: resumed.body)).map(\.event) == Array(events.dropFirst(2)))
            // A retried send of the same id is still a duplicate after the restart.
            let again = parseSSE(String(buffer: try await sse(server, conversation: conversation, user: "alice", id: "m1", text: "Remember me").body)).map(\.event)
            guard case .ack(let a) = again.first else { Issue.record("expected ack"); return }
            #expect(a.duplicate == true && a.streamId == streamId)
            // The signing key survived too: tokens minted before the restart still verify.
            #expect(try await server.request("/v1/conversations", user: "alice").status == .ok)
        }
    }
}
