import Foundation
import HTTPTypes
import HummingbirdWSClient
import MedViewProtocol
import MedViewServer
import NIOCore
import NIOWebSocket
import Testing
import MedViewTestSupport

@Suite(.timeLimit(.minutes(2))) struct WebSocketTests {
    @Test("a connection streams an answer: ack, stream.start, ordered chunks within 256 characters, stream.end")
    func lifecycle() async throws {
        try await LiveServer.with { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            ws.send(.ping(Ping(id: "p1")))
            #expect(ack(try await ws.next())?.id == "p1")
            ws.send(.chatSend(ChatSend(id: "m1", text: "How can I sleep better? [[repeat:6]]")))
            let a = try #require(ack(try await ws.next()))
            #expect(a.id == "m1")
            let streamId = try #require(a.streamId)
            let conversationId = try #require(a.conversationId)
            let events = try await ws.readStream(streamId)
            #expect(events.map(\.seq) == Array(1...events.count).map { Optional($0) })
            guard case .streamStart(let start) = events.first, case .streamEnd(let end) = events.last else {
                Issue.record("expected stream.start … stream.end")
                return
            }
            #expect(start.conversationId == conversationId)
            #expect(start.model.provider == "scripted")
            #expect(start.model.demo)
            #expect(end.finishReason == .complete)
            let parts = chunks(events)
            #expect(parts.count > 1)
            #expect(parts.allSatisfy { !$0.text.isEmpty && $0.text.count <= 256 })
            // The stored answer is exactly what was streamed.
            let messages = json(try await server.request("/v1/conversations/\(conversationId)/messages", user: "alice"))["messages"] as? [[String: Any]]
            #expect(messages?.count == 2)
            #expect(messages?.last?["text"] as? String == parts.map(\.text).joined())
            #expect(messages?.last?["status"] as? String == "complete")
        }
    }

    @Test("emoji, CJK and combining marks arrive whole even when the model splits them")
    func graphemes() async throws {
        let text = String(repeating: "👩‍👩‍👧‍👦🇺🇸 漢字かな e\u{301} 👍🏽 z̸̢͓ ", count: 40)
        try await LiveServer.with(configure: { $0.chat.chunking = .init(maxCharacters: 16, maxDelay: .milliseconds(50)) }) { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            ws.send(.chatSend(ChatSend(id: "m1", text: "[[say:\(text)]][[delta:1]]")))
            let streamId = try #require(ack(try await ws.next())?.streamId)
            let parts = chunks(try await ws.readStream(streamId)).map(\.text)
            #expect(parts.joined() == text)
            #expect(parts.allSatisfy { $0.count <= 16 })
            // Every chunk boundary is a grapheme boundary of the whole text.
            var boundaries: Set<Int> = [0]
            var offset = 0
            for ch in text { offset += ch.unicodeScalars.count; boundaries.insert(offset) }
            offset = 0
            for part in parts {
                offset += part.unicodeScalars.count
                #expect(boundaries.contains(offset))
            }
        }
    }

    @Test("after a forced disconnect mid-answer, resume yields exactly the missing chunks, in order, once")
    func disconnectResume() async throws {
        try await LiveServer.with { server in
            let all = try await server.scenarios.resumeAfterDisconnect("[[repeat:20]][[delay:3]]")
            let stream = try await server.chat.stream(id: try #require(all.first?.streamId), userId: "alice")
            #expect(all == stream.events)
        }
    }

    @Test("two connections following one stream both see the whole answer")
    func twoSubscribers() async throws {
        try await LiveServer.with { server in
            let a = try await server.connect("alice")
            let b = try await server.connect("alice")
            defer { a.close(); b.close() }
            a.send(.chatSend(ChatSend(id: "m1", text: "[[repeat:10]][[delay:2]]")))
            let streamId = try #require(ack(try await a.next())?.streamId)
            b.send(.streamResume(StreamResume(id: "r1", streamId: streamId, after: 0)))
            #expect(ack(try await b.next())?.id == "r1")
            let ea = try await a.readStream(streamId)
            let eb = try await b.readStream(streamId)
            #expect(ea == eb)
            #expect(ea.count > 3)
        }
    }

    @Test("cancel ends the answer with finish reason cancelled and keeps what was sent")
    func cancel() async throws {
        try await LiveServer.with { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            ws.send(.chatSend(ChatSend(id: "m1", text: "[[repeat:100]][[delay:5]]")))
            let a = try #require(ack(try await ws.next()))
            let events = try await ws.readStream(try #require(a.streamId), cancellingAfter: 2)
            guard case .streamEnd(let end) = events.last else { Issue.record("expected stream.end"); return }
            #expect(end.finishReason == .cancelled)
            try await Task.sleep(for: .milliseconds(100))
            let messages = json(try await server.request("/v1/conversations/\(a.conversationId!)/messages", user: "alice"))["messages"] as? [[String: Any]]
            #expect(messages?.last?["status"] as? String == "cancelled")
            #expect(messages?.last?["text"] as? String == chunks(events).map(\.text).joined())
        }
    }

    @Test("model failures end the stream with a typed error: before the first chunk and mid-stream")
    func modelFailures() async throws {
        try await LiveServer.with { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            ws.send(.chatSend(ChatSend(id: "m1", text: "[[fail:before]]")))
            let s1 = try #require(ack(try await ws.next())?.streamId)
            let e1 = try await ws.readStream(s1)
            #expect(chunks(e1).isEmpty)
            let err1 = try #require(errorEvent(e1.last!))
            #expect(err1.code == .modelUnavailable && err1.retryable && err1.seq == 2)

            ws.send(.chatSend(ChatSend(id: "m2", text: "[[fail:after:8]][[delay:1]]")))
            let a2 = try #require(ack(try await ws.next()))
            let e2 = try await ws.readStream(a2.streamId!)
            let err2 = try #require(errorEvent(e2.last!))
            #expect(err2.code == .modelError && err2.retryable)
            #expect(!chunks(e2).isEmpty)
            try await Task.sleep(for: .milliseconds(100))
            let messages = json(try await server.request("/v1/conversations/\(a2.conversationId!)/messages", user: "alice"))["messages"] as? [[String: Any]]
            #expect(messages?.last?["status"] as? String == "failed")
            #expect(messages?.last?["text"] as? String == chunks(e2).map(\.text).joined())
        }
    }

    @Test("a retried chat.send re-attaches to the original stream without a second answer")
    func idempotentRetry() async throws {
        try await LiveServer.with { server in try await server.scenarios.idempotentRetry() }
    }

    @Test("another user's stream is not found over WebSocket")
    func isolation() async throws {
        try await LiveServer.with { server in
            let alice = try await server.connect("alice")
            let mallory = try await server.connect("mallory")
            defer { alice.close(); mallory.close() }
            alice.send(.chatSend(ChatSend(id: "m1", text: "private")))
            let a = try #require(ack(try await alice.next()))
            _ = try await alice.readStream(a.streamId!)
            mallory.send(.streamResume(StreamResume(id: "r", streamId: a.streamId!, after: 0)))
            #expect(errorEvent(try await mallory.next())?.code == .notFound)
            mallory.send(.streamCancel(StreamCancel(id: "c", streamId: a.streamId!)))
            #expect(errorEvent(try await mallory.next())?.code == .notFound)
            mallory.send(.chatSend(ChatSend(id: "m2", conversationId: a.conversationId!, text: "hi")))
            #expect(errorEvent(try await mallory.next())?.code == .notFound)
            mallory.send(.streamResume(StreamResume(id: "r2", streamId: "s_doesnotexist", after: 0)))
            #expect(errorEvent(try await mallory.next())?.code == .notFound)
        }
    }

    @Test("bad input of every kind gets a typed error and the connection keeps serving")
    func badInput() async throws {
        try await LiveServer.with(configure: { $0.chat.maxMessageCharacters = 500 }) { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            func expectError(_ code: ErrorCode, id: String? = nil) async throws {
                let e = try #require(errorEvent(try await ws.next()))
                #expect(e.code == code)
                #expect(e.retryable == code.retryable)
                if let id { #expect(e.id == id) }
                ws.send(.ping(Ping(id: "alive")))
                #expect(ack(try await ws.next())?.id == "alive")
            }
            ws.sendText("{not json")
            try await expectError(.malformedJSON)
            ws.sendText(#"{"type":"chat.explode","id":"x1"}"#)
            try await expectError(.unknownType, id: "x1")
            ws.sendText(#"{"type":"chat.send","id":"x2"}"#)
            try await expectError(.invalidCommand, id: "x2")
            ws.sendText(#"{"type":"stream.resume","id":"x3","streamId":"s","after":-1}"#)
            try await expectError(.invalidCommand, id: "x3")
            ws.sendText(#"{"type":"ping"}"#)
            try await expectError(.invalidCommand)
            ws.sendText(#"{"type":"ping","id":5}"#)
            try await expectError(.invalidCommand)
            ws.sendText(#"{"type":7,"id":"x4"}"#)
            try await expectError(.invalidCommand, id: "x4")
            ws.sendText("[1,2]")
            try await expectError(.malformedJSON)
            ws.sendFrame(.binary(ByteBuffer(bytes: [1, 2, 3])))
            try await expectError(.unsupportedFrame)
            ws.sendFrame(.custom(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: [0x7B, 0xFF, 0xFE, 0x7D]))))
            try await expectError(.invalidUTF8)
            ws.sendText(#"{"type":"ping","id":"big","pad":""# + String(repeating: "x", count: 70_000) + #""}"#)
            try await expectError(.frameTooLarge)
            ws.send(.chatSend(ChatSend(id: "long", text: String(repeating: "y", count: 501))))
            try await expectError(.messageTooLarge, id: "long")
            ws.send(.chatSend(ChatSend(id: "empty", text: "   ")))
            try await expectError(.emptyMessage, id: "empty")
            // A message split over continuation frames is reassembled.
            ws.sendFrame(.custom(WebSocketFrame(fin: false, opcode: .text, data: ByteBuffer(string: #"{"type":"pi"#))))
            ws.sendFrame(.custom(WebSocketFrame(fin: true, opcode: .continuation, data: ByteBuffer(string: #"ng","id":"frag"}"#))))
            #expect(ack(try await ws.next())?.id == "frag")
        }
    }

    @Test("without a valid token the socket only carries a typed error and closes with 4401; browsers authenticate with the subprotocol")
    func upgradeAuth() async throws {
        try await LiveServer.with { server in
            let token = try await server.token("alice")
            let expired = try await server.issuer.token(userId: "alice", lifetime: .seconds(60), now: Date().addingTimeInterval(-3600))
            let refused: [(HTTPFields, ErrorCode)] = [
                ([:], .unauthorized),
                ([.authorization: "Bearer nonsense"], .unauthorized),
                ([.authorization: "Basic abc"], .unauthorized),
                ([.authorization: "Bearer \(expired)"], .tokenExpired),
                // The bearer entry without the protocol name is refused too.
                ([.secWebSocketProtocol: "medview.bearer.\(token)"], .unauthorized),
            ]
            for (headers, code) in refused {
                let ws = try await WSTestClient.connect(url: server.wsURL, headers: headers)
                ws.send(.ping(Ping(id: "p")))
                let e = try #require(errorEvent(try await ws.next()), "\(headers)")
                #expect(e.code == code)
                guard case .closed(let frame) = try await ws.nextItem() else {
                    Issue.record("a socket without valid credentials must be closed")
                    continue
                }
                #expect(frame?.closeCode == .unknown(4401))
            }
            // The reason is a typed 401 on any HTTP endpoint with the same token.
            let response = try await server.client.execute(uri: "/v1/conversations", method: .get, headers: [.authorization: "Bearer \(expired)"])
            #expect(response.status == .unauthorized)
            #expect(json(response)["error"].flatMap { ($0 as? [String: Any])?["code"] as? String } == "token_expired")

            let browser = try await WSTestClient.connect(url: server.wsURL, headers: [.secWebSocketProtocol: "medview.v1, medview.bearer.\(token)"])
            defer { browser.close() }
            browser.send(.ping(Ping(id: "b")))
            #expect(ack(try await browser.next())?.id == "b")
        }
    }

    @Test("auth.refresh replaces the token on an open socket, for the same user only")
    func refresh() async throws {
        try await LiveServer.with { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            let minted = Date()
            let fresh = try await server.token("alice", lifetime: .seconds(7200))
            ws.send(.authRefresh(AuthRefresh(id: "r1", token: fresh)))
            let a = try #require(ack(try await ws.next()))
            #expect(a.id == "r1")
            // The new token's expiry, whenever a busy machine gets here.
            #expect((a.expiresAt ?? 0) >= minted.addingTimeInterval(7199).timeIntervalSince1970)
            ws.send(.authRefresh(AuthRefresh(id: "r2", token: try await server.token("mallory"))))
            #expect(errorEvent(try await ws.next())?.code == .unauthorized)
            ws.send(.authRefresh(AuthRefresh(id: "r3", token: "garbage")))
            #expect(errorEvent(try await ws.next())?.code == .unauthorized)
        }
    }

    @Test("a token that expires on an open socket closes it with token_expired")
    func expiry() async throws {
        try await LiveServer.with { server in
            // 10 s: a loaded machine still connects and answers the first ping in time.
            let token = try await server.issuer.token(userId: "alice", lifetime: .seconds(10))
            let ws = try await WSTestClient.connect(url: server.wsURL, headers: [.authorization: "Bearer \(token)"])
            ws.send(.ping(Ping(id: "p")))
            #expect(ack(try await ws.next())?.id == "p")
            let e = try #require(errorEvent(try await ws.next(timeout: .seconds(60))))
            #expect(e.code == .tokenExpired)
            guard case .closed(let frame) = try await ws.nextItem() else { Issue.record("expected close"); return }
            #expect(frame?.closeCode == .unknown(4401))
        }
    }

    @Test("an idle connection is closed with idle_timeout")
    func idle() async throws {
        // 5 s: long enough that a loaded CI machine answers the first ping before it (400 ms was
        // not), short enough to keep the test quick.
        try await LiveServer.with(configure: { $0.limits.idleTimeout = .seconds(5) }) { server in
            let ws = try await server.connect("alice")
            ws.send(.ping(Ping(id: "p")))
            #expect(ack(try await ws.next())?.id == "p")
            let e = try #require(errorEvent(try await ws.next()))
            #expect(e.code == .idleTimeout)
            guard case .closed(let frame) = try await ws.nextItem() else { Issue.record("expected close"); return }
            #expect(frame?.closeCode == .unknown(4408))
        }
    }

    @Test("keep-alive pings and token refreshes do not hold off idle logoff")
    func pingsDoNotCountAsActivity() async throws {
        try await LiveServer.with(configure: { $0.limits.idleTimeout = .seconds(2) }) { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            let opened = ContinuousClock.now
            var closedBy: ErrorEvent?
            // A page left open: a ping (or a refresh) every 150 ms, far more often than the timeout,
            // for at least 30 s, unless the idle logoff ends it.
            for i in 0..<200 where closedBy == nil {
                if i % 2 == 0 {
                    ws.send(.ping(Ping(id: "p\(i)")))
                } else {
                    ws.send(.authRefresh(AuthRefresh(id: "r\(i)", token: try await server.token("alice"))))
                }
                let answer = try await ws.next()
                if let e = errorEvent(answer) {
                    closedBy = e
                } else {
                    try await Task.sleep(for: .milliseconds(150))
                }
            }
            #expect(closedBy?.code == .idleTimeout)
            #expect(ContinuousClock.now - opened < .seconds(25))
        }
    }

    @Test("a patient command (chat.send) restarts the idle clock")
    func userCommandsCountAsActivity() async throws {
        try await LiveServer.with(configure: { $0.limits.idleTimeout = .seconds(10) }) { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            // Send at 1 s: without it the connection would close at 10 s (plus one sweep). The 9 s
            // margin keeps a loaded machine, which handles the message late, from closing first.
            try await Task.sleep(for: .milliseconds(1000))
            let sent = ContinuousClock.now
            ws.send(.chatSend(ChatSend(id: "m1", text: "hello")))
            var ended = false
            while !ended {
                let event = try await ws.next()
                if errorEvent(event)?.code == .idleTimeout { Issue.record("closed while answering"); return }
                if case .streamEnd = event { ended = true }
            }
            // The close comes a full idle timeout after the message, not 9 s after it.
            let e = try #require(errorEvent(try await ws.next(timeout: .seconds(40))))
            #expect(e.code == .idleTimeout)
            #expect(ContinuousClock.now - sent >= .seconds(10))
        }
    }

    @Test("connections beyond the per-user limit get too_many_connections and close 4429; other users are unaffected")
    func connectionLimit() async throws {
        try await LiveServer.with(configure: { $0.limits.maxConnectionsPerUser = 2 }) { server in
            let a = try await server.connect("alice")
            let b = try await server.connect("alice")
            defer { a.close(); b.close() }
            for ws in [a, b] {
                ws.send(.ping(Ping(id: "p")))
                #expect(ack(try await ws.next()) != nil)
            }
            let third = try await server.connect("alice")
            let e = try #require(errorEvent(try await third.next()))
            #expect(e.code == .tooManyConnections)
            #expect(e.retryable)
            guard case .closed(let frame) = try await third.nextItem() else { Issue.record("expected close"); return }
            #expect(frame?.closeCode == .unknown(4429))
            // Closing one frees a slot.
            a.close()
            try await Task.sleep(for: .milliseconds(200))
            let again = try await server.connect("alice")
            defer { again.close() }
            again.send(.ping(Ping(id: "p2")))
            #expect(ack(try await again.next())?.id == "p2")
            let bob = try await server.connect("bob")
            defer { bob.close() }
            bob.send(.ping(Ping(id: "p")))
            #expect(ack(try await bob.next()) != nil)
        }
    }
}
